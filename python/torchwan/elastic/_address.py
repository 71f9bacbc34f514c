"""Which local address to announce to the other members."""

from __future__ import annotations

import os
import socket


def local_address_towards(host: str, port: int) -> str:
    """The local IP the kernel would use to reach host:port (no packet is sent). Overridden by
    TORCHWAN_HOST, which the data plane honours too, so both planes announce the same address."""
    override = os.environ.get("TORCHWAN_HOST")
    if override:
        return override
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, port))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def split_endpoint(endpoint: str, default_port: int = 29400) -> tuple[str, int]:
    """'host:port', 'tcp://host:port' or 'host' → (host, port)."""
    text = endpoint.removeprefix("tcp://")
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    return host, int(port)


def split_endpoints(endpoints: str, default_port: int = 29400) -> list[tuple[str, int]]:
    """'h1:p1,h2:p2' (the active coordinator, then its standbys) → [(h1, p1), (h2, p2)]; a single
    endpoint gives a list of one. Refuses an empty entry or one named twice."""
    entries = [entry.strip() for entry in endpoints.split(",")]
    if not endpoints.strip() or any(not entry for entry in entries):
        raise ValueError(f"coordinator list {endpoints!r} has an empty entry")
    parsed = [split_endpoint(entry, default_port) for entry in entries]
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"coordinator list {endpoints!r} names a coordinator twice")
    return parsed


def member_endpoints(endpoints: list[tuple[str, int]]) -> str:
    """The list as the native member takes it: 'tcp://h1:p1,tcp://h2:p2'."""
    return ",".join(f"tcp://{host}:{port}" for host, port in endpoints)
