"""Tunes the TCP of the WAN-lab host a benchmark rank runs in, the way the wan backend tunes its
own sockets (BBR, 64 MiB buffers), so that Gloo can be measured with the same help ("gloo-bbr").

/proc/sys/net is the view of the writer's network namespace, so a rank inside a lab host changes
that host only, never the machine. One rank per host (Namespaces.rank_env marks it) writes and
restores; the others only wait at the caller's barriers.

Socket buffers: TCP autotuning reads tcp_rmem/tcp_wmem's maximum while a connection runs, so a
group's connections get the large buffers only while they are raised. The congestion control is
fixed when a socket is created (accepted sockets inherit their listener's), so a group created
while BBR is the default keeps BBR after the default is restored. net.core.rmem_max/wmem_max
only limit explicit SO_RCVBUF/SO_SNDBUF (Gloo sets none); kernels that keep them machine-wide
refuse writes from a namespace, which `apply` records instead of failing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SYSCTL = Path("/proc/sys")
BIG_BUFFER = 64 << 20  # the wan backend's socket_buffer_bytes default
OWNER_ENV = "BENCH_LAB_HOST_TCP_OWNER"


def owns_host() -> bool:
    """True for the one rank per lab host that may change the host's sysctls."""
    return os.environ.get(OWNER_ENV) == "1"


def in_lab() -> bool:
    return OWNER_ENV in os.environ


def _path(key: str) -> Path:
    return SYSCTL / key.replace(".", "/")


def read(keys: list[str]) -> dict[str, str]:
    return {key: " ".join(_path(key).read_text().split()) for key in keys}


def apply(values: dict[str, str]) -> dict[str, str]:
    """Writes each value; returns what each key holds afterwards, or why it could not be set."""
    after = {}
    for key, value in values.items():
        try:
            _path(key).write_text(value)
            after[key] = " ".join(_path(key).read_text().split())
        except OSError as error:
            after[key] = f"unchanged ({error.strerror} in this namespace)"
    return after


def congestion(name: str) -> dict[str, str]:
    return {"net.ipv4.tcp_congestion_control": name}


def big_buffers() -> dict[str, str]:
    return {"net.core.rmem_max": str(BIG_BUFFER), "net.core.wmem_max": str(BIG_BUFFER),
            "net.ipv4.tcp_rmem": f"4096 131072 {BIG_BUFFER}",
            "net.ipv4.tcp_wmem": f"4096 16384 {BIG_BUFFER}"}


def connections_of(pid: int) -> dict[tuple[str, str], str]:
    """This namespace's established TCP connections of process `pid`: (local, peer) -> the
    congestion control the kernel runs on it (from `ss -tinp`)."""
    listing = subprocess.run(["ss", "-tinpH", "state", "established"], capture_output=True,
                             text=True, check=True).stdout.splitlines()
    found = {}
    # ss prints each socket on two lines: addresses and owner, then a tab-indented TCP_INFO line
    # that starts with the congestion control's name.
    for head, info in zip(listing, listing[1:]):
        fields = head.split()
        if head.startswith((" ", "\t")) or f"pid={pid}," not in head or len(fields) < 4:
            continue
        found[(fields[2], fields[3])] = info.split()[0] if info.strip() else "?"
    return found
