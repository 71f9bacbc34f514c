"""One member of the soak job (started by bench/soak/soak.py): random collectives with random
sizes and dtypes over torchwan.elastic.ElasticGroup, every result checked exactly.

Every member draws the same collective for a step from (seed, step), and every rank's input is a
function of (step, rank), so each member computes the exact expected result itself, without
trusting anything it received. Values are small integers (quarters for floating types), so sums
over up to 4 members are exact in bfloat16 too and reduction order cannot matter. A mismatch ends
the process with exit code 3.

The state the members keep in sync is a hash chain over the steps applied, advanced only after a
step's result was checked: at the end it shows that every step was checked and applied exactly
once, in order, whatever the membership did. Prints JSON lines like examples/elastic_train.py,
plus "sample" events with RSS and open file descriptors.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

import torchwan  # noqa: F401  (loads the native layer)
from torchwan.elastic import ElasticGroup

KINDS = [
    "all_reduce_sum",
    "all_reduce_max",
    "broadcast",
    "all_gather",
    "reduce_scatter",
    "all_to_all",
]
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "int64": torch.int64,
    "bfloat16": torch.bfloat16,
}
MAX_BYTES = 4 << 20  # the largest buffer of a step
MISMATCH_EXIT = 3
GENESIS = "torchwan-soak"


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), "pid": os.getpid(), **fields}), flush=True)


@dataclass
class Plan:
    """What every member does at one step; kind and dtype do not depend on the world size, so the
    hash chain of applied steps is the same whatever the membership was."""

    step: int
    kind: str
    dtype_name: str
    chunk: int  # elements per rank (per destination for all_to_all)
    root: int = 0
    # all_to_all_single: splits[s][d] = elements rank s sends to rank d
    splits: list[list[int]] = field(default_factory=list)

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.dtype_name]


def make_plan(seed: int, step: int, world: int) -> Plan:
    rng = random.Random(f"{seed}:{step}")
    kind = rng.choice(KINDS)
    dtype_name = rng.choice(list(DTYPES))
    itemsize = torch.empty((), dtype=DTYPES[dtype_name]).element_size()
    # Log-uniform size of the step's largest buffer, from 1 element to MAX_BYTES.
    largest = max(1, int(2 ** rng.uniform(0, math.log2(MAX_BYTES // itemsize))))
    if kind in ("all_gather", "reduce_scatter", "all_to_all"):
        chunk = max(1, largest // world)
    else:
        chunk = largest
    plan = Plan(step, kind, dtype_name, chunk, root=rng.randrange(world))
    if kind == "all_to_all":
        if rng.random() < 0.5:  # uneven, some blocks empty
            plan.splits = [[rng.randint(0, chunk) for _ in range(world)] for _ in range(world)]
        else:
            plan.splits = [[chunk] * world for _ in range(world)]
    return plan


def integers(step: int, source: int, start: int, count: int) -> torch.Tensor:
    """Elements [start, start + count) of source's input at `step`, as integers in [-30, 30]."""
    index = torch.arange(start, start + count, dtype=torch.int64)
    return (index * 7 + (step * 31 + source * 101)) % 61 - 30


def as_dtype(ints: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Quarters for floating types: sums over 4 ranks stay within 30 in steps of 0.25, which
    bfloat16 holds exactly."""
    return ints.to(dtype) * 0.25 if dtype.is_floating_point else ints.to(dtype)


def values(step: int, source: int, start: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    return as_dtype(integers(step, source, start, count), dtype)


def summed(step: int, world: int, start: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    """Sum over every rank's inputs, in int64 then converted (exact, whatever the order)."""
    total = torch.zeros(count, dtype=torch.int64)
    for source in range(world):
        total += integers(step, source, start, count)
    return as_dtype(total, dtype)


def maxed(step: int, world: int, count: int, dtype: torch.dtype) -> torch.Tensor:
    best = integers(step, 0, 0, count)
    for source in range(1, world):
        best = torch.maximum(best, integers(step, source, 0, count))
    return as_dtype(best, dtype)


def block_source(source: int, destination: int, world: int) -> int:
    """all_to_all: the block rank `source` sends to `destination` has its own value stream."""
    return 1000 + source * world + destination


def run_step(group: dist.ProcessGroup, plan: Plan) -> list[str]:
    """Runs the step's collective (DistBackendError propagates); returns what did not match."""
    rank, world, step, dtype, n = group.rank(), group.size(), plan.step, plan.dtype, plan.chunk
    bad: list[str] = []

    def expect(what: str, got: torch.Tensor, want: torch.Tensor) -> None:
        if got.shape != want.shape or not torch.equal(got, want):
            wrong = (got != want).nonzero() if got.shape == want.shape else None
            where = int(wrong[0]) if wrong is not None and len(wrong) else -1
            bad.append(f"{what}: first wrong element {where} of {want.numel()}")

    if plan.kind in ("all_reduce_sum", "all_reduce_max"):
        tensor = values(step, rank, 0, n, dtype)
        options = dist.AllreduceOptions()
        is_sum = plan.kind == "all_reduce_sum"
        options.reduceOp = dist.ReduceOp.SUM if is_sum else dist.ReduceOp.MAX
        group.allreduce([tensor], options).wait()
        want = summed(step, world, 0, n, dtype) if is_sum else maxed(step, world, n, dtype)
        expect(plan.kind, tensor, want)
    elif plan.kind == "broadcast":
        root = plan.root
        if rank == root:
            tensor = values(step, rank, 0, n, dtype)
        else:  # a value no input has, so an element left unwritten shows
            tensor = torch.full((n,), 99, dtype=dtype)
        options = dist.BroadcastOptions()
        options.rootRank = root
        group.broadcast([tensor], options).wait()
        expect(f"broadcast from {root}", tensor, values(step, root, 0, n, dtype))
    elif plan.kind == "all_gather":
        mine = values(step, rank, 0, n, dtype)
        output = torch.full((world * n,), 99, dtype=dtype)
        group._allgather_base(output, mine).wait()
        for source in range(world):
            expect(f"all_gather from {source}", output[source * n : (source + 1) * n],
                   values(step, source, 0, n, dtype))  # fmt: skip
        expect("all_gather input", mine, values(step, rank, 0, n, dtype))
    elif plan.kind == "reduce_scatter":
        mine = values(step, rank, 0, world * n, dtype)
        output = torch.full((n,), 99, dtype=dtype)
        options = dist.ReduceScatterOptions()
        options.reduceOp = dist.ReduceOp.SUM
        group._reduce_scatter_base(output, mine, options).wait()
        expect("reduce_scatter", output, summed(step, world, rank * n, n, dtype))
    elif plan.kind == "all_to_all":
        splits = plan.splits
        sends = [splits[rank][d] for d in range(world)]
        receives = [splits[s][rank] for s in range(world)]
        send = torch.cat(
            [values(step, block_source(rank, d, world), 0, sends[d], dtype) for d in range(world)]
        )
        output = torch.full((sum(receives),), 99, dtype=dtype)
        group.alltoall_base(output, send, receives, sends, dist.AllToAllOptions()).wait()
        offset = 0
        for source in range(world):
            count = receives[source]
            expect(f"all_to_all from {source}", output[offset : offset + count],
                   values(step, block_source(source, rank, world), 0, count, dtype))  # fmt: skip
            offset += count
    else:
        raise ValueError(plan.kind)
    return bad


def chain_link(chain: str, plan: Plan) -> str:
    return hashlib.sha256(f"{chain}|{plan.step}:{plan.kind}:{plan.dtype_name}".encode()).hexdigest()


def expected_chain(seed: int, steps: int) -> str:
    chain = GENESIS
    for step in range(steps):
        chain = chain_link(chain, make_plan(seed, step, 1))
    return chain


class Ledger:
    """The synced state: how many steps were applied and the hash chain over them."""

    def __init__(self) -> None:
        self.applied = 0
        self.chain = GENESIS

    def state(self) -> dict[str, Any]:
        return {"applied": self.applied, "chain": self.chain}

    def load(self, state: dict[str, Any]) -> None:
        self.applied = state["applied"]
        self.chain = state["chain"]


def _malloc_trim() -> Callable[[], None]:
    """glibc keeps freed memory of the multi-MiB buffers mapped; trimming before each sample makes
    RSS follow live memory, so a leak shows and allocator caching does not."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


def sample(trim: Callable[[], None]) -> tuple[int, int]:
    """(resident bytes, open file descriptors) of this process."""
    trim()
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE"), len(os.listdir("/proc/self/fd"))


def read_stop_step(path: str | None) -> int | None:
    if not path:
        return None
    try:
        with open(path) as stop:
            return int(stop.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coordinator", required=True, help="host:port of torchwan-coordinator")
    parser.add_argument("--job", default="soak")
    parser.add_argument("--name", default=None)
    parser.add_argument("--seed", type=int, default=0, help="the same on every member")
    parser.add_argument("--steps", type=int, default=1 << 40, help="upper bound on steps")
    parser.add_argument(
        "--stop-file", default=None, help="once it exists: the step at which every member stops"
    )
    parser.add_argument("--sample-every", type=int, default=20)
    parser.add_argument("--heartbeat-ms", type=int, default=100)
    parser.add_argument("--timeout-s", type=float, default=30.0)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    ledger = Ledger()
    group = ElasticGroup(
        args.coordinator,
        args.job,
        name=args.name,
        get_state=ledger.state,
        set_state=ledger.load,
        timeout=timedelta(seconds=args.timeout_s),
        recovery_timeout=timedelta(seconds=2 * args.timeout_s),
        heartbeat_interval=timedelta(milliseconds=args.heartbeat_ms),
        coordinator_timeout=timedelta(milliseconds=max(2000, 4 * args.heartbeat_ms)),
    )
    trim = _malloc_trim()
    group.start()
    emit("started", name=group.name, epoch=group.epoch, rank=group.rank, step=group.step)
    checked = 0  # steps this process ran and verified itself
    adopted = group.step  # steps it took over from another member's state instead
    kinds: dict[str, int] = {}
    dtypes: dict[str, int] = {}
    stop_step = read_stop_step(args.stop_file)
    last_sample = -1

    def take_sample() -> None:
        nonlocal last_sample
        rss, fds = sample(trim)
        last_sample = group.step
        emit("sample", step=group.step, epoch=group.epoch, world_size=group.world_size,
             rss=rss, fds=fds)  # fmt: skip

    while group.step < min(args.steps, stop_step if stop_step is not None else args.steps):
        if group.step % args.sample_every == 0 and group.step != last_sample:
            take_sample()
        plan = make_plan(args.seed, group.step, group.world_size)
        before = group.step
        try:
            mismatches = run_step(group.process_group, plan)
        except dist.DistBackendError as error:
            emit("failure", step=group.step, epoch=group.epoch, error=str(error)[:300])
            group.recover(error)
            if group.step < before:
                emit("regression", before=before, after=group.step)
                group.close()
                return MISMATCH_EXIT
            adopted += group.step - before
            emit("recovered", step=group.step, epoch=group.epoch, world_size=group.world_size,
                 seconds=group.recoveries[-1][1])  # fmt: skip
            continue
        if mismatches:
            emit("mismatch", step=plan.step, kind=plan.kind, dtype=plan.dtype_name,
                 chunk=plan.chunk, world_size=group.world_size, errors=mismatches[:8])  # fmt: skip
            group.close()
            return MISMATCH_EXIT
        # Checked: apply it (the last thing a step does: nothing after it can fail).
        ledger.chain = chain_link(ledger.chain, plan)
        ledger.applied += 1
        checked += 1
        kinds[plan.kind] = kinds.get(plan.kind, 0) + 1
        dtypes[plan.dtype_name] = dtypes.get(plan.dtype_name, 0) + 1
        if group.commit():
            adopted += group.step - (before + 1)
            emit("new_epoch", step=group.step, epoch=group.epoch, world_size=group.world_size)
        emit("step", step=group.step, epoch=group.epoch, world_size=group.world_size)
        if stop_step is None:
            stop_step = read_stop_step(args.stop_file)
    take_sample()
    group.finish()
    exactly_once = ledger.applied == group.step and ledger.chain == expected_chain(
        args.seed, group.step
    )
    emit(
        "done",
        name=group.name,
        step=group.step,
        applied=ledger.applied,
        exactly_once=exactly_once,
        checked=checked,
        adopted=adopted,
        kinds=kinds,
        dtypes=dtypes,
        recoveries=group.recoveries,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
