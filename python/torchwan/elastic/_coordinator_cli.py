"""The ``torchwan-coordinator`` console script: execs the native coordinator shipped in the
wheel."""

from __future__ import annotations

from torchwan._native_cli import exec_native


def main() -> None:
    exec_native("torchwan-coordinator")


if __name__ == "__main__":
    main()
