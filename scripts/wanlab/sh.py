"""Running commands, in the root namespace or inside a lab host's namespace."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from .errors import LabError


def in_ns(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def run(argv: Sequence[str], *, check: bool = True, input: str | None = None,
        timeout: float | None = 30) -> subprocess.CompletedProcess[str]:
    """Runs argv and captures text output; on failure raises LabError naming command and stderr."""
    try:
        p = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        raise LabError(f"{argv[0]}: not found ({e})") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout}s: {shlex.join(argv)}") from e
    if check and p.returncode != 0:
        raise LabError(f"failed ({p.returncode}): {shlex.join(argv)}\n{p.stderr.strip()}")
    return p


def run_ns(ns: str, argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return run(in_ns(ns, argv), **kw)  # type: ignore[arg-type]
