"""Runs a function on N real processes that form a torch.distributed world, and brings back each
rank's return value or its exception. Each test spawns one world and checks many things in it,
because starting processes that import torch is the expensive part."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import traceback
from datetime import timedelta
from typing import Any, Callable

import torch.distributed as dist


class RankFailed(AssertionError):
    pass


def _rank_main(fn, rank, world_size, init_file, env, args, results):
    os.environ.update(env)
    try:
        import torchwan  # noqa: F401  registers "wan" in the child

        store = dist.FileStore(init_file, world_size)
        dist.init_process_group(
            "wan", store=store, rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
        )
        try:
            value = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        results.put((rank, True, value))
    except BaseException:  # report everything, including assertion failures, to the parent
        results.put((rank, False, traceback.format_exc()))


def run_ranks(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    env: dict[str, str] | None = None,
    timeout: float = 240.0,
) -> list[Any]:
    """Runs fn(rank, world_size, *args) on world_size processes after init_process_group("wan")
    (a default group of the wan backend); returns the per-rank return values."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child_env = {"TORCHWAN_HOST": "127.0.0.1", **(env or {})}
    with tempfile.TemporaryDirectory() as directory:
        init_file = os.path.join(directory, "store")
        processes = [
            context.Process(
                target=_rank_main,
                args=(fn, rank, world_size, init_file, child_env, args, results),
                daemon=True,
            )
            for rank in range(world_size)
        ]
        for process in processes:
            process.start()
        collected: dict[int, tuple[bool, Any]] = {}
        try:
            for _ in range(world_size):
                rank, ok, value = results.get(timeout=timeout)
                collected[rank] = (ok, value)
        except Exception:
            raise RankFailed(
                f"only ranks {sorted(collected)} of {world_size} reported within {timeout} s: "
                + "; ".join(str(v) for ok, v in collected.values() if not ok)
            )
        finally:
            for process in processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()
    failures = [f"rank {rank}:\n{value}" for rank, (ok, value) in sorted(collected.items()) if not ok]
    if failures:
        raise RankFailed("\n".join(failures))
    return [collected[rank][1] for rank in range(world_size)]
