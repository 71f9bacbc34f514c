"""What the console scripts of the native executables shipped in the wheel (torchwan/bin) share:
they exec the executable, so signals (SIGTERM from a supervisor) reach it directly rather than a
Python wrapper."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def native_path(name: str) -> Path:
    """Where the wheel installed the executable `name`."""
    # Not resolve(): the package directory, not wherever its files may be linked from.
    return Path(os.path.abspath(__file__)).parent / "bin" / name


def exec_native(name: str) -> None:
    """Replaces this process with the executable `name`, passing on this process's arguments."""
    path = native_path(name)
    if not path.is_file():
        sys.exit(f"{name}: {path} is missing; reinstall torchwan")
    os.execv(path, [str(path), *sys.argv[1:]])
