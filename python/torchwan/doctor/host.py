"""What one host contributes to the doctor's report: its kernel's TCP settings, its TCP counters
and how fast its CPU runs the int8 codec.

Everything under /proc/sys/net and /proc/net is the view of the reader's network namespace, so a
rank in a container or a WAN-lab host reads its own host, not the machine's.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

PROC_SYS = Path("/proc/sys")
SNMP = Path("/proc/net/snmp")


def _read_words(key: str) -> list[str]:
    try:
        return (PROC_SYS / key.replace(".", "/")).read_text().split()
    except OSError:
        return []


def _read_int(key: str, index: int = 0) -> int:
    words = _read_words(key)
    try:
        return int(words[index])
    except (IndexError, ValueError):
        return 0


def _torchwan_option(name: str) -> str:
    """An option as this rank's backend resolves it: the environment, else the registry default."""
    from ..options import REGISTRY

    option = next(o for o in REGISTRY if o["name"] == name)
    return os.environ.get(option["env"], option["default"])


def tcp_settings() -> dict[str, Any]:
    """The kernel settings that bound one TCP connection's rate on a long link, and what torchwan
    asks the kernel for on its own sockets."""
    return {
        "congestion_control": " ".join(_read_words("net.ipv4.tcp_congestion_control")),
        "available_congestion_control": _read_words("net.ipv4.tcp_available_congestion_control"),
        "rmem_max": _read_int("net.core.rmem_max"),
        "wmem_max": _read_int("net.core.wmem_max"),
        "tcp_rmem_max": _read_int("net.ipv4.tcp_rmem", 2),
        "tcp_wmem_max": _read_int("net.ipv4.tcp_wmem", 2),
        "torchwan_congestion": _torchwan_option("congestion"),
        "socket_buffer_bytes": int(_torchwan_option("socket_buffer_bytes") or 0),
    }


def host_identity() -> dict[str, Any]:
    """Names the host: ranks that share a hostname and a network namespace share every setting
    read here (WAN-lab hosts share the machine's hostname, hence the namespace)."""
    try:
        netns = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        netns = 0
    return {"hostname": socket.gethostname(), "netns": netns,
            "address": os.environ.get("TORCHWAN_HOST", "")}


def tcp_counters() -> dict[str, int]:
    """This network namespace's TCP segment counters (Tcp: OutSegs, RetransSegs), summed over
    every connection of the host: the kernel keeps per-socket counts only inside the transport's
    sockets, which Python cannot reach."""
    try:
        lines = SNMP.read_text().splitlines()
    except OSError:
        return {"OutSegs": 0, "RetransSegs": 0}
    rows = [line.split() for line in lines if line.startswith("Tcp:")]
    if len(rows) < 2:
        return {"OutSegs": 0, "RetransSegs": 0}
    values = dict(zip(rows[0][1:], rows[1][1:]))
    return {key: int(values.get(key, 0)) for key in ("OutSegs", "RetransSegs")}


def int8_codec_gbps(elements: int = 1 << 22, repeats: int = 3) -> float:
    """GB/s of float32 input that this CPU encodes to int8 and decodes back (best of `repeats`),
    what compressing an allreduce costs per byte on this host."""
    import torch

    from .. import compression

    data = torch.randn(elements)
    out = torch.empty_like(data)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        compression.decode(compression.encode(data), out=out)
        best = min(best, time.perf_counter() - start)
    return data.numel() * 4 / best / 1e9


def describe() -> dict[str, Any]:
    """Everything this host reports, as JSON-friendly values."""
    return {**host_identity(), **tcp_settings(), "int8_codec_gbps": int8_codec_gbps()}
