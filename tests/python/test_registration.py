"""Importing registers the backend once; bad options and bad calls give clear errors."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.distributed as dist

import torchwan
from group_checks import group_still_works
from multiprocess import RankFailed, run_ranks


def test_import_registers_wan_once() -> None:
    assert "WAN" in dist.Backend._plugins
    importlib.reload(torchwan)  # a second registration attempt must be a no-op, not an error
    assert dist.Backend.WAN == "wan"


def test_options_reject_unknown_values() -> None:
    store = dist.HashStore()
    with pytest.raises(ValueError, match="transport 'carrier-pigeon' is unknown"):
        torchwan._C.ProcessGroupWan(
            store, 0, 1, __import__("datetime").timedelta(seconds=5), {"transport": "carrier-pigeon"}
        )
    with pytest.raises(ValueError, match="lanes"):
        torchwan._C.ProcessGroupWan(
            store, 0, 1, __import__("datetime").timedelta(seconds=5), {"lanes": "many"}
        )
    with pytest.raises(ValueError, match="option scratch_cache_bytes must not be negative"):
        torchwan._C.ProcessGroupWan(
            store, 0, 1, __import__("datetime").timedelta(seconds=5), {"scratch_cache_bytes": "-1"}
        )


def test_options_reach_the_backend() -> None:
    options = torchwan.Options(transport="zmq", lanes=3)
    assert options.transport_fields() == {"transport": "zmq", "lanes": "3"}


def bad_calls(rank: int, world_size: int) -> list[str]:
    problems = []
    checks = [
        (lambda: dist.all_reduce(torch.ones(4, dtype=torch.complex64), op=dist.ReduceOp.MAX), "MAX"),
        (lambda: dist.all_reduce(torch.ones(4, dtype=torch.int32), op=dist.ReduceOp.AVG), "AVG"),
        (lambda: dist.all_reduce(torch.ones(1).expand(4)), "memory"),
        (lambda: dist.broadcast(torch.ones(4), src=world_size + 3), "rank"),
    ]
    for call, expected_words in checks:
        try:
            call()
            problems.append(f"no error for a call expected to mention {expected_words!r}")
        except (RuntimeError, ValueError, TypeError) as error:
            if expected_words not in str(error):
                problems.append(f"error {error!r} does not mention {expected_words!r}")
    if not group_still_works(world_size):
        problems.append("group unusable after rejected calls")
    return problems


def test_bad_calls_raise_clear_errors_and_leave_group_usable() -> None:
    assert run_ranks(bad_calls, 2) == [[], []]


def fails_on_purpose(rank: int, world_size: int) -> None:
    raise ValueError(f"rank {rank} failed on purpose")


def test_harness_reports_rank_failures() -> None:
    with pytest.raises(RankFailed, match="failed on purpose"):
        run_ranks(fails_on_purpose, 2)
