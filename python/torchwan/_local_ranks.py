"""Running a job's ranks as child processes of this one, with the environment torchrun would give
them: what the launchers that do it themselves share (``torchwan-doctor --local``, the benchmarks
under bench/, the tests)."""

from __future__ import annotations

import socket
import subprocess
from typing import Sequence


def free_port() -> int:
    """A TCP port free on loopback now, for the job's store."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rank_environment(
    rank: int, world_size: int, master_addr: str, master_port: int, host: str
) -> dict[str, str]:
    """The variables torchrun sets for `rank` (env:// rendezvous at master_addr:master_port, one
    process per rank), plus TORCHWAN_HOST: the address the rank's transport binds to."""
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "TORCHWAN_HOST": host,
    }


def stop_all(processes: Sequence[subprocess.Popen]) -> list[int]:
    """Kills and reaps every process that still runs; returns every process's exit status."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    return [process.returncode for process in processes]
