"""Builds the NFQUEUE delayer with the system C compiler, once per source version.

The binary lives outside the source tree, keyed by a hash of source and flags, so a changed
delayer is rebuilt and concurrent labs (other engineers, parallel test runs) share one build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import LabUnavailable

SOURCE = Path(__file__).resolve().parent / "delayer" / "nfq_delay.c"
CFLAGS = ["-O2", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror"]
LIBS = ["-lnetfilter_queue", "-lnfnetlink"]
HEADER = Path("/usr/include/libnetfilter_queue/libnetfilter_queue.h")


def cache_dir() -> Path:
    """TORCHWAN_WANLAB_CACHE, else /var/cache/torchwan/wanlab, else a per-user temp folder."""
    env = os.environ.get("TORCHWAN_WANLAB_CACHE")
    candidates = [Path(env)] if env else []
    candidates += [Path("/var/cache/torchwan/wanlab"),
                   Path(tempfile.gettempdir()) / f"torchwan-wanlab-{os.getuid()}"]
    for d in candidates:
        try:
            d.mkdir(parents=True, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise LabUnavailable("no writable cache folder for the delayer build (set TORCHWAN_WANLAB_CACHE)")


def _compiler() -> str | None:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def binary_path() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS + LIBS).encode()).hexdigest()
    return cache_dir() / f"nfq_delay-{digest[:12]}"


def build_reasons() -> list[str]:
    """Why the delayer cannot be built here (empty when it can, or is already built)."""
    if binary_path().exists():
        return []
    reasons = []
    if _compiler() is None:
        reasons.append("no C compiler (apt-get install gcc)")
    if not HEADER.exists():
        reasons.append("libnetfilter_queue headers missing (apt-get install libnetfilter-queue-dev)")
    return reasons


def ensure_delayer() -> Path:
    """Returns the path of a built delayer, compiling it first if this version is not cached."""
    out = binary_path()
    if out.exists():
        return out
    reasons = build_reasons()
    if reasons:
        raise LabUnavailable("cannot build the NFQUEUE delayer: " + "; ".join(reasons))
    cc = _compiler()
    assert cc is not None
    # Build to a private name, then rename: concurrent builders never see a half-written file.
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    p = subprocess.run([cc, *CFLAGS, "-o", str(tmp), str(SOURCE), *LIBS],
                       capture_output=True, text=True)
    if p.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise LabUnavailable(f"delayer build failed with {cc}:\n{p.stderr.strip()}")
    os.replace(tmp, out)
    # Older versions are dead weight; a delayer still running keeps its unlinked inode.
    for old in out.parent.glob("nfq_delay-*"):
        if old != out and "." not in old.name:
            old.unlink(missing_ok=True)
    return out
