"""The ``torchwan-coordinator`` console script: execs the native coordinator shipped in the wheel,
so signals (SIGTERM from a supervisor) reach it directly rather than a Python wrapper."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def coordinator_path() -> Path:
    """Where the wheel installed the coordinator executable."""
    # Not resolve(): the package directory, not wherever its files may be linked from.
    return Path(os.path.abspath(__file__)).parent.parent / "bin" / "torchwan-coordinator"


def main() -> None:
    path = coordinator_path()
    if not path.is_file():
        sys.exit(f"torchwan-coordinator: {path} is missing; reinstall torchwan")
    os.execv(path, [str(path), *sys.argv[1:]])


if __name__ == "__main__":
    main()
