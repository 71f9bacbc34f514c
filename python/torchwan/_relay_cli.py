"""The ``torchwan-relay`` console script: execs the native relay shipped in the wheel, so signals
(SIGTERM from a supervisor) reach it directly rather than a Python wrapper (docs/relay.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def relay_path() -> Path:
    """Where the wheel installed the relay executable."""
    # Not resolve(): the package directory, not wherever its files may be linked from.
    return Path(os.path.abspath(__file__)).parent / "bin" / "torchwan-relay"


def main() -> None:
    path = relay_path()
    if not path.is_file():
        sys.exit(f"torchwan-relay: {path} is missing; reinstall torchwan")
    os.execv(path, [str(path), *sys.argv[1:]])


if __name__ == "__main__":
    main()
