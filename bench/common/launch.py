"""Starts one Python process per rank with the torch.distributed environment (as torchrun would),
either on this machine's loopback or inside the hosts of a running WAN lab, and collects rank 0's
output. Shared by the benchmarks under bench/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from torchwan._local_ranks import free_port, rank_environment, stop_all

from bench.common.host_tcp import OWNER_ENV


class Placement(Protocol):
    """Where rank r runs: the address it binds to and the command prefix that enters its host."""

    def host_address(self, rank: int) -> str: ...

    def command_prefix(self, rank: int) -> list[str]: ...

    def rank_env(self, rank: int) -> dict[str, str]: ...


@dataclass
class Loopback:
    def host_address(self, rank: int) -> str:
        return "127.0.0.1"

    def command_prefix(self, rank: int) -> list[str]:
        return []

    def rank_env(self, rank: int) -> dict[str, str]:
        return {}


@dataclass
class Namespaces:
    """Rank r runs in network namespace namespaces[r % len(namespaces)] with address addresses[...]."""

    namespaces: Sequence[str]
    addresses: Sequence[str]
    regions: Sequence[str] = ()

    def host_address(self, rank: int) -> str:
        return self.addresses[rank % len(self.addresses)]

    def command_prefix(self, rank: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[rank % len(self.namespaces)]]

    def rank_env(self, rank: int) -> dict[str, str]:
        # The first rank on each host is the one that may tune the host's TCP (host_tcp.py).
        env = {OWNER_ENV: "1" if rank < len(self.namespaces) else "0"}
        # The lab's region labels, for runs that compare hierarchical with flat collectives.
        if self.regions and self.regions[rank % len(self.regions)]:
            env["TORCHWAN_LAB_REGION"] = self.regions[rank % len(self.regions)]
        return env


@dataclass
class RankResult:
    returncodes: list[int]
    rank0_stdout: str
    stderr_tail: list[str] = field(default_factory=list)


def progress_line(line: str) -> str | None:
    """A short description of one of rank 0's JSON rows, or None for anything else."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict) or "seconds" not in row:
        return None
    what = " ".join(str(row[k]) for k in ("collective", "bytes", "backend") if k in row)
    return f"{what or 'row'}: {row['seconds'] * 1e3:.1f} ms"


def _read_rows(stream, lines: list[str], started: float) -> None:
    for line in stream:
        lines.append(line)
        described = progress_line(line)
        if described:
            print(f"[{time.monotonic() - started:6.1f} s] {described}", file=sys.stderr,
                  flush=True)


def run_world(
    script: str,
    script_args: Sequence[str],
    world_size: int,
    placement: Placement | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 3600.0,
) -> RankResult:
    """Runs `python3 script script_args` as ranks 0..world_size-1; raises if any rank fails."""
    placement = placement or Loopback()
    master = placement.host_address(0)
    port = free_port()
    processes = []
    # Files, not pipes, for stderr: a chatty rank must never block on a full pipe nobody reads.
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(world_size)]
    for rank in range(world_size):
        rank_env = {
            **os.environ,
            **(env or {}),
            **rank_environment(rank, world_size, master, port, placement.host_address(rank)),
            **placement.rank_env(rank),
        }
        command = [*placement.command_prefix(rank), sys.executable, script, *script_args]
        processes.append(
            subprocess.Popen(
                command,
                env=rank_env,
                stdout=subprocess.PIPE if rank == 0 else subprocess.DEVNULL,
                stderr=logs[rank],
                text=True,
            )
        )
    # Rank 0's output is read as it comes, so each measured row shows up at once on stderr
    # instead of minutes of silence until the whole run ends.
    started = time.monotonic()
    lines: list[str] = []
    reader = threading.Thread(target=_read_rows, args=(processes[0].stdout, lines, started),
                              daemon=True)
    reader.start()
    try:
        processes[0].wait(timeout=timeout)
        reader.join(timeout=10)
        rank0_stdout = "".join(lines)
        for process in processes[1:]:
            process.wait(timeout=120)
    finally:
        codes = stop_all(processes)
    stderr_tail = []
    for log in logs:
        log.seek(0)
        stderr_tail.append("\n".join(log.read().splitlines()[-15:]))
        log.close()
    if any(codes):
        raise RuntimeError(f"ranks exited with {codes}; rank stderr tails:\n" + "\n---\n".join(stderr_tail))
    return RankResult(codes, rank0_stdout, stderr_tail)
