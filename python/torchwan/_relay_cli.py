"""The ``torchwan-relay`` console script: execs the native relay shipped in the wheel
(docs/relay.md)."""

from __future__ import annotations

from torchwan._native_cli import exec_native


def main() -> None:
    exec_native("torchwan-relay")


if __name__ == "__main__":
    main()
