"""Where a running lab is recorded, and idempotent teardown by prefix.

Every object a lab creates is a network namespace named "<prefix>-<something>", and every
process it starts lives inside one of them. Tearing down a prefix therefore needs nothing but the
namespace list: kill what runs inside each namespace, delete it, forget the state file. That works
after a crash, twice in a row, or for a lab whose state file is gone.

The state file (under /run, so a reboot forgets it together with the namespaces) is written
before the first namespace exists; it records the owning process so that a lab whose owner died
(a killed pytest run) is reaped by the next lab that comes up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ.get("TORCHWAN_WANLAB_STATE", "/run/torchwan-wanlab"))
PREFIX_RE = re.compile(r"twl[a-z0-9]{0,8}")


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"lab prefix {prefix!r} must match {PREFIX_RE.pattern} (e.g. 'twl', 'twlci1')")
    return prefix


def state_file(prefix: str) -> Path:
    return STATE_DIR / f"{prefix}.json"


def log_dir(prefix: str) -> Path:
    return STATE_DIR / prefix


def write(prefix: str, data: dict[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = state_file(prefix).with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, state_file(prefix))


def read(prefix: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(state_file(prefix).read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def namespaces() -> list[str]:
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def lab_namespaces(prefix: str) -> list[str]:
    return [ns for ns in namespaces() if ns.startswith(prefix + "-")]


def known_prefixes() -> set[str]:
    """Prefixes with a state file or with at least one namespace left behind."""
    found = {f.stem for f in STATE_DIR.glob("*.json")} if STATE_DIR.exists() else set()
    for ns in namespaces():
        head = ns.split("-", 1)[0]
        if "-" in ns and PREFIX_RE.fullmatch(head):
            found.add(head)
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ns_pids(ns: str) -> list[int]:
    p = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def teardown(prefix: str) -> list[str]:
    """Removes everything of one lab; safe to call any number of times. Returns what it removed."""
    check_prefix(prefix)
    removed = []
    spaces = lab_namespaces(prefix)
    for sig, wait_s in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 1.0)):
        pids = [pid for ns in spaces for pid in _ns_pids(ns)]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _pid_alive(pid)]
            time.sleep(0.02)
        if not pids:
            break
    for ns in spaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        removed.append(ns)
    state_file(prefix).unlink(missing_ok=True)
    d = log_dir(prefix)
    if d.is_dir():
        for f in d.iterdir():
            f.unlink(missing_ok=True)
        d.rmdir()
    return removed


def is_stale(prefix: str) -> bool:
    """A lab nobody owns any more: its owner process died, or its state file is gone."""
    data = read(prefix)
    if data is None:
        return True
    owner = int(data.get("owner_pid", 0))
    return owner != 0 and not _pid_alive(owner)


def reap_stale() -> list[str]:
    reaped = []
    for prefix in sorted(known_prefixes()):
        if PREFIX_RE.fullmatch(prefix) and is_stale(prefix):
            teardown(prefix)
            reaped.append(prefix)
    return reaped
