"""Failures must be clear errors, never hangs or wrong answers: bad arguments raise at once on the
calling rank; ranks that disagree about a call all fail with a torchwan.errors class naming the
disagreement; an operation a peer never joins fails with a timeout; monitored_barrier names the
missing rank; abort() fails pending work at once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from conftest import TRANSPORTS
from group_checks import group_still_works
from multiprocess import run_ranks


def check_bad_arguments(rank: int, world: int) -> list[str]:
    import torchwan.errors as errors  # noqa: F401  (imported so the classes resolve)

    pg = dist.group.WORLD
    failures = []

    def expect(name, exception_types, call, fragment=None):
        try:
            call()
        except exception_types as error:
            if fragment and fragment not in str(error):
                failures.append(f"{name}: message {str(error)!r} lacks {fragment!r}")
            return
        except Exception as error:  # noqa: BLE001  (reported as the wrong type)
            failures.append(f"{name}: raised {type(error).__name__}: {error}")
            return
        failures.append(f"{name}: no error")

    t = torch.ones(4)
    outs_short = [torch.empty(4) for _ in range(world - 1)]
    expect("all_gather list length", ValueError, lambda: pg.allgather([outs_short], [t]), "world size")
    expect(
        "all_gather_into_tensor size",
        ValueError,
        lambda: pg._allgather_base(torch.empty(4 * world + 1), t),
        "elements",
    )
    expect(
        "all_gather output dtype",
        TypeError,
        lambda: pg._allgather_base(torch.empty(4 * world, dtype=torch.float64), t),
        "dtype",
    )
    bopts = dist.BroadcastOptions()
    bopts.rootRank = world
    expect("broadcast invalid root", ValueError, lambda: pg.broadcast([t], bopts), "root")
    ropts = dist.ReduceOptions()
    ropts.rootRank = -1
    expect("reduce invalid root", ValueError, lambda: pg.reduce([t], ropts), "root")
    expect(
        "reduce_scatter_tensor size",
        ValueError,
        lambda: pg._reduce_scatter_base(torch.empty(3), torch.empty(4 * world)),
        "elements",
    )
    sopts = dist.ScatterOptions()
    sopts.rootRank = 0
    if rank != 0:
        expect(
            "scatter input on a non-root",
            ValueError,
            lambda: pg.scatter([t], [[t] * world], sopts),
            "root",
        )
    gopts = dist.GatherOptions()
    gopts.rootRank = 0
    if rank == 0:
        expect("gather output list length", ValueError, lambda: pg.gather([[t]], [t], gopts), "world size")
    expect(
        "all_to_all_single splits",
        ValueError,
        lambda: pg.alltoall_base(torch.empty(world), torch.empty(world), [1] * world, [2] * world,
                                 dist.AllToAllOptions()),
        "split",
    )
    expect("expanded output", ValueError, lambda: dist.all_reduce(torch.ones(1).expand(4)), "memory")
    expect("send to self", ValueError, lambda: pg.send([t], rank, 0), "peer")
    expect("negative tag", ValueError, lambda: pg.send([t], (rank + 1) % world, -1), "tag")
    expect("unsupported dtype", TypeError, lambda: dist.all_reduce(torch.ones(2, dtype=torch.uint16)), "dtype")
    opts = dist.AllreduceOptions()
    opts.reduceOp = dist.ReduceOp.AVG
    expect("AVG on integers", ValueError, lambda: pg.allreduce([torch.ones(2, dtype=torch.int32)], opts))
    opts.reduceOp = dist.ReduceOp.BAND
    expect("BAND on floats", ValueError, lambda: pg.allreduce([torch.ones(2)], opts))
    sparse = torch.ones(2).to_sparse()
    expect("sparse MAX", ValueError, lambda: dist.all_reduce(sparse, op=dist.ReduceOp.MAX), "SUM")
    # None of the rejected calls consumed a sequence number: the group still works.
    if not group_still_works(world):
        failures.append("group unusable after rejected calls")
    return failures


def check_mismatches(rank: int, world: int) -> list[str]:
    from torchwan.errors import WanError

    pg = dist.group.WORLD
    failures = []

    def expect_everywhere(name, call):
        try:
            work = call()
            work.wait()
        except WanError as error:
            if not isinstance(error, dist.DistBackendError):
                failures.append(f"{name}: {type(error).__name__} is not a DistBackendError")
            return str(error)
        except Exception as error:  # noqa: BLE001
            failures.append(f"{name}: raised {type(error).__name__}: {error}")
            return None
        failures.append(f"{name}: rank {rank} saw no error")
        return None

    def allreduce(numel, dtype=torch.float32, op=dist.ReduceOp.SUM):
        opts = dist.AllreduceOptions()
        opts.reduceOp = op
        return pg.allreduce([torch.ones(numel, dtype=dtype)], opts)

    def broadcast(root):
        opts = dist.BroadcastOptions()
        opts.rootRank = root
        return pg.broadcast([torch.ones(10)], opts)

    expect_everywhere("size", lambda: allreduce(10 if rank == 0 else 11))
    expect_everywhere("dtype", lambda: allreduce(10, torch.float32 if rank == 0 else torch.float64))
    expect_everywhere("op", lambda: allreduce(10, op=dist.ReduceOp.SUM if rank == 0 else dist.ReduceOp.MAX))
    expect_everywhere("root", lambda: broadcast(0 if rank == 0 else 1))
    message = expect_everywhere("collective", lambda: allreduce(10) if rank == 0 else broadcast(0))
    if message is not None and "all_reduce" not in message and "broadcast" not in message:
        failures.append(f"collective mismatch message names neither call: {message}")
    # Every rank failed the same calls, so the group is still in step.
    if not group_still_works(world):
        failures.append("group unusable after mismatches")
    return failures


def check_timeout(rank: int, world: int) -> list[str]:
    from torchwan.errors import WanAbortedError, WanPeerLostError, WanTimeoutError

    gloo = dist.new_group(backend="gloo")
    failures = []
    if rank == 0:
        opts = dist.AllreduceOptions()
        opts.timeout = timedelta(seconds=2)
        start = time.monotonic()
        try:
            dist.group.WORLD.allreduce([torch.ones(10)], opts).wait()
            failures.append("allreduce without peers did not fail")
        except WanTimeoutError as error:
            elapsed = time.monotonic() - start
            if not 1.5 < elapsed < 30:
                failures.append(f"timeout after {elapsed:.1f} s, asked for 2 s")
            if "all_reduce" not in str(error):
                failures.append(f"timeout message does not name the op: {error}")
            if error.peer != 1:
                failures.append(f"timeout blames peer {error.peer!r}, not rank 1: {error}")
        except Exception as error:  # noqa: BLE001
            failures.append(f"raised {type(error).__name__}: {error}")
    # The other ranks never call; everyone meets on Gloo once rank 0 has seen its timeout.
    dist.barrier(group=gloo)
    if rank == 0:
        # monitored_barrier names the rank that did not arrive instead of just timing out.
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=1))
            failures.append("monitored_barrier without rank 1 passed")
        except WanTimeoutError as error:
            if "rank 1" not in str(error):
                failures.append(f"monitored_barrier error does not name rank 1: {error}")
        except Exception as error:  # noqa: BLE001
            failures.append(f"monitored_barrier raised {type(error).__name__}: {error}")
    dist.barrier(group=gloo)
    # abort() fails pending work at once instead of letting it wait for its deadline.
    pending = dist.irecv(torch.empty(4), src=(rank + 1) % world, tag=77)
    start = time.monotonic()
    dist.group.WORLD.abort()
    try:
        pending.wait()
        failures.append("a pending receive survived abort()")
    except (WanAbortedError, WanPeerLostError):  # aborted here, or by the peer's abort first
        if time.monotonic() - start > 10:
            failures.append("abort() took more than 10 s to fail pending work")
    except Exception as error:  # noqa: BLE001
        failures.append(f"pending receive after abort raised {type(error).__name__}: {error}")
    return failures


def check_arguments_and_mismatches(rank: int, world: int) -> list[str]:
    return check_bad_arguments(rank, world) + check_mismatches(rank, world)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_arguments_and_mismatched_calls_raise_clear_errors(transport: str) -> None:
    results = run_ranks(
        check_arguments_and_mismatches, 3, env={"TORCHWAN_TRANSPORT": transport}, timeout=120
    )
    assert results == [[]] * 3, results


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_operation_a_peer_never_joins_times_out(transport: str) -> None:
    results = run_ranks(check_timeout, 2, env={"TORCHWAN_TRANSPORT": transport}, timeout=120)
    assert results == [[]] * 2, results
