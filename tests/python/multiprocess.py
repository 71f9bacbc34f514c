"""Runs a function on N real processes that form a torch.distributed world, and brings back each
rank's return value or its exception. Each test starts one world and checks many things in it,
because starting processes is the expensive part."""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from datetime import timedelta
from typing import Any, Callable

import torch.distributed as dist


class RankFailed(AssertionError):
    pass


def _redirect_stderr(path: str) -> None:
    """Points this process's fd 2 (where spdlog and torch's C++ warnings go) at `path`."""
    sys.stderr.flush()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(descriptor, 2)
    os.close(descriptor)


def _wait_for_everyone(store, world_size: int) -> None:
    """Meets the other ranks through the store (not the backend under test) before tearing the
    group down, so no rank closes its connections while a peer still waits for its last message.
    Bounded: a rank that failed early must not hang the others here."""
    store.add("torchwan-test-done", 1)
    deadline = time.monotonic() + 30
    while store.add("torchwan-test-done", 0) < world_size and time.monotonic() < deadline:
        time.sleep(0.01)


def _rank_main(fn, rank, world_size, init_file, env, args, results, stderr_path, before_init):
    os.environ.update(env)
    if "TORCHWAN_HOST_ID" not in env:
        # Every rank its own host: the tests exercise the network algorithms that ranks on
        # separate machines run, unless they ask for one host (run_ranks(one_host=True)).
        os.environ["TORCHWAN_HOST_ID"] = f"test-host-{rank}"
    if stderr_path:
        _redirect_stderr(stderr_path)
    try:
        if before_init is not None:
            before_init(rank)
        import torchwan  # noqa: F401  registers "wan" in the child

        store = dist.FileStore(init_file, world_size)
        dist.init_process_group(
            "wan", store=store, rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
        )
        try:
            value = fn(rank, world_size, *args)
        finally:
            _wait_for_everyone(store, world_size)
            dist.destroy_process_group()
        if stderr_path:
            sys.stderr.flush()
            with open(stderr_path, encoding="utf-8", errors="replace") as captured:
                value = (value, captured.read())
        results.put((rank, True, value))
    except BaseException:  # report everything, including assertion failures, to the parent
        results.put((rank, False, traceback.format_exc()))


def _context():
    """A forkserver that has already imported torch: each rank then starts in a fraction of a
    second instead of importing torch again (the bulk of a test's time on a small machine)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "torch.distributed"])
    return context


def run_ranks(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    env: dict[str, str] | None = None,
    timeout: float = 240.0,
    capture_stderr: bool = False,
    one_host: bool = False,
    before_init: Callable[[int], None] | None = None,
) -> list[Any]:
    """Runs fn(rank, world_size, *args) on world_size processes after init_process_group("wan")
    (a default group of the wan backend); returns the per-rank return values. With
    capture_stderr, each value is (return value, what the rank wrote to fd 2 up to and including
    destroy_process_group). Each rank counts as a host of its own (TORCHWAN_HOST_ID) unless
    `one_host` or `env` sets otherwise; before_init(rank) runs in each rank before it joins."""
    context = _context()
    results = context.Queue()
    child_env = {"TORCHWAN_HOST": "127.0.0.1", **(env or {})}
    if one_host:
        child_env.setdefault("TORCHWAN_HOST_ID", "test-host")
    with tempfile.TemporaryDirectory() as directory:
        init_file = os.path.join(directory, "store")
        processes = [
            context.Process(
                target=_rank_main,
                args=(
                    fn,
                    rank,
                    world_size,
                    init_file,
                    child_env,
                    args,
                    results,
                    os.path.join(directory, f"stderr.{rank}") if capture_stderr else None,
                    before_init,
                ),
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
