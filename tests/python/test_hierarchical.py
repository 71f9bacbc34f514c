"""Regions of a wan group (TORCHWAN_REGION / Options(region=..., topology=...)) and the
hierarchical allreduce they turn on, on 4 real processes: results equal Gloo's on the same inputs,
every rank reports the same regions, and misconfigurations fail on every rank with a clear error.
With root and the WAN lab's tools, also that "auto" finds the regions of the lab's `regions`
scenario from measured round-trip times."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import tempfile
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torchwan
from wanlab_fixture import wanlab_fixture

from conftest import TRANSPORTS
from multiprocess import run_ranks

# Element counts: latency path (leaders) below 64 KiB, striped path above it for float32.
SIZES = [1, 37, 5_000, 70_001, 1_000_003]
DTYPES = [torch.float32, torch.float64, torch.int32, torch.int64, torch.uint8]
OPS = ["SUM", "MAX", "MIN"]


def make_input(seed: int, rank: int, dtype: torch.dtype, numel: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 131 + rank)
    if dtype.is_floating_point:
        return torch.randn(numel, generator=gen, dtype=torch.float64).to(dtype)
    high = 50 if dtype == torch.uint8 else 1000
    return torch.randint(0, high, (numel,), generator=gen).to(dtype)


def backend_of(group) -> object:
    return group._get_backend(torch.device("cpu"))


def compare_with_gloo(rank: int, group, gloo, label: str) -> list[str]:
    failures = []
    seed = 0
    for dtype in DTYPES:
        for numel in SIZES:
            for op in OPS:
                seed += 1
                ours = make_input(seed, rank, dtype, numel)
                theirs = ours.clone()
                dist.all_reduce(ours, op=getattr(dist.ReduceOp, op), group=group)
                dist.all_reduce(theirs, op=getattr(dist.ReduceOp, op), group=gloo)
                if dtype.is_floating_point:
                    ok = torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5)
                else:
                    ok = torch.equal(ours, theirs)
                if not ok:
                    failures.append(f"{label} allreduce {op} {dtype} n={numel}")
    return failures


def _regions_world(rank: int, world: int) -> dict:
    gloo = dist.new_group(backend="gloo")
    # Two regions of two from the environment, as a launcher would set it per host.
    os.environ["TORCHWAN_REGION"] = "eu" if rank < 2 else "us"
    env_group = dist.new_group(backend="wan")
    del os.environ["TORCHWAN_REGION"]
    failures = compare_with_gloo(rank, env_group, gloo, "2x2")
    # Unequal regions take the leader path at every size.
    uneven = dist.new_group(
        backend="wan", pg_options=torchwan.Options(region="a" if rank < 3 else "b")
    )
    failures += compare_with_gloo(rank, uneven, gloo, "3+1")
    flat = dist.new_group(
        backend="wan",
        pg_options=torchwan.Options(region=str(rank // 2), topology="flat"),
    )
    result = {
        "failures": failures,
        "env": (backend_of(env_group).regions, backend_of(env_group).topology_source),
        "uneven": backend_of(uneven).regions,
        "flat": (backend_of(flat).regions, backend_of(flat).topology_source),
        # The default group: no labels, on loopback every round trip is alike: one region.
        "default": (
            backend_of(dist.group.WORLD).regions,
            backend_of(dist.group.WORLD).topology_source,
        ),
    }
    # Labels on only some ranks: every rank fails, naming the ranks on both sides.
    try:
        dist.new_group(
            backend="wan", pg_options=torchwan.Options(region="x" if rank < 2 else None)
        )
        result["partial"] = None
    except Exception as error:  # noqa: BLE001  the message is what the test checks
        result["partial"] = str(error)
    return result


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_regions_allreduce_matches_gloo(transport: str) -> None:
    results = run_ranks(_regions_world, 4, env={"TORCHWAN_TRANSPORT": transport})
    for rank, result in enumerate(results):
        assert result["failures"] == [], f"rank {rank}: {result['failures']}"
        assert result["env"] == ([0, 0, 1, 1], "labels")
        assert result["uneven"] == [0, 0, 0, 1]
        assert result["flat"] == ([0, 0, 0, 0], "flat")
        # Measured: on a loaded machine a loopback round trip can look like a long one, so only
        # the source and the agreement between ranks are certain.
        assert result["default"][1] == "rtt"
        assert result["default"] == results[0]["default"]
        message = result["partial"]
        assert message is not None, f"rank {rank}: partial labels were accepted"
        assert "ranks 0,1 set a region label but ranks 2,3 did not" in message, message


def _regions_required(rank: int, world: int) -> str | None:
    try:
        dist.new_group(backend="wan", pg_options=torchwan.Options(topology="regions"))
    except Exception as error:  # noqa: BLE001
        return str(error)
    return None


def test_topology_regions_requires_labels() -> None:
    for message in run_ranks(_regions_required, 3):
        assert message is not None and "TORCHWAN_REGION" in message, message


def test_bad_topology_option_is_rejected() -> None:
    with pytest.raises(ValueError, match="topology"):
        torchwan._C.ProcessGroupWan(
            dist.HashStore(), 0, 1, timedelta(seconds=5),
            torchwan.Options(topology="rings").transport_fields(),
        )


# ---- the WAN lab: "auto" clusters measured round-trip times --------------------------------

regions_lab = wanlab_fixture("regions")

_AUTO_RANK = textwrap.dedent(
    """
    import json, os, sys
    from datetime import timedelta
    import torch, torch.distributed as dist
    import torchwan
    dist.init_process_group("wan", timeout=timedelta(seconds=120))
    backend = dist.group.WORLD._get_backend(torch.device("cpu"))
    tensor = torch.full((300_000,), float(dist.get_rank() + 1))
    dist.all_reduce(tensor)
    ok = bool(torch.all(tensor == 10.0))
    if dist.get_rank() == 0:
        print(json.dumps({"regions": backend.regions, "source": backend.topology_source,
                          "rtt_ms": backend.rtt_ms, "ok": ok}), flush=True)
    dist.barrier()
    dist.destroy_process_group()
    """
)


def test_auto_finds_lab_regions(regions_lab) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, root)
    from bench.common.launch import Namespaces, run_world

    hosts = regions_lab.hosts
    placement = Namespaces(namespaces=[regions_lab.ns(h.index) for h in hosts],
                           addresses=[h.ip for h in hosts])
    with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
        script.write(_AUTO_RANK)
        script.flush()
        result = run_world(script.name, [], len(hosts), placement, timeout=240,
                           env={"TORCHWAN_REGION": "", "TORCHWAN_TOPOLOGY": ""})
    record = json.loads(result.rank0_stdout.strip().splitlines()[-1])
    expected = [0 if h.region == hosts[0].region else 1 for h in hosts]
    assert record["source"] == "rtt", record
    assert record["regions"] == expected, record
    assert record["ok"], record
