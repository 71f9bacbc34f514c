"""What torch's own distributed test suite expects of a backend, checked against Gloo in the same
world: all_gather_coalesced, sparse all_reduce (also under DDP with nn.Embedding(sparse=True)),
and the words timeouts and monitored_barrier failures use, which torch's tests and tools match on.
The last test runs a subset of torch's suite itself (tests/torch_suite/run.py) on "wan"."""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from multiprocess import run_ranks

# The regular expressions torch's distributed_test.py asserts with.
TIMEOUT_WORDS = re.compile(" (Timed out|closed|timeout) ")


def gather_coalesced_like_gloo(rank: int, world: int) -> list[str]:
    gloo = dist.new_group(backend="gloo")
    failures = []
    cases = {
        "mixed shapes": [torch.arange(6.0).reshape(2, 3), torch.tensor(7.0), torch.ones(5)],
        "with empty": [torch.empty(0), torch.arange(4.0), torch.empty(2, 0)],
        "int64": [torch.arange(3, dtype=torch.int64), torch.arange(10, dtype=torch.int64)],
        "complex": [torch.complex(torch.arange(3.0), torch.ones(3)), torch.ones(2, 2) * 1j],
    }
    for name, template in cases.items():
        inputs = [(t * (rank + 1) + rank).to(t.dtype) if t.numel() else t for t in template]
        results = {}
        for label, group in (("wan", None), ("gloo", gloo)):
            outputs = [[torch.full_like(t, -1) for t in inputs] for _ in range(world)]
            dist.all_gather_coalesced(outputs, inputs, group=group)
            results[label] = outputs
        for r in range(world):
            for i, tensor in enumerate(template):
                expected = (tensor * (r + 1) + r).to(tensor.dtype) if tensor.numel() else tensor
                got, gloo_got = results["wan"][r][i], results["gloo"][r][i]
                if not torch.equal(got, gloo_got) or not torch.equal(got, expected):
                    failures.append(f"{name}: output [{r}][{i}] {got} (gloo {gloo_got})")
    # Work and async_op behave as with Gloo.
    inputs = [torch.full((4,), float(rank))]
    outputs = [[torch.empty(4)] for _ in range(world)]
    work = dist.all_gather_coalesced(outputs, inputs, async_op=True)
    work.wait()
    if [o[0][0].item() for o in outputs] != [float(r) for r in range(world)]:
        failures.append(f"async_op: {outputs}")
    # Bad lists are refused on the calling rank, naming the problem.
    for label, bad_outputs, fragment in (
        ("too few lists", [[torch.empty(4)]] * (world - 1), "one output list per rank"),
        ("wrong shape", [[torch.empty(5)] for _ in range(world)], "shape"),
    ):
        try:
            dist.group.WORLD.allgather_coalesced(bad_outputs, inputs)
            failures.append(f"{label}: no error")
        except ValueError as error:
            if fragment not in str(error):
                failures.append(f"{label}: {error}")
    return failures


def test_all_gather_coalesced_matches_gloo() -> None:
    assert run_ranks(gather_coalesced_like_gloo, 3) == [[]] * 3


def random_sparse(rank: int, seed: int, nnz: int, size, dense=(), dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed * 100 + rank)
    indices = torch.stack([torch.randint(0, s, (nnz,), generator=generator) for s in size])
    values = torch.randn((nnz, *dense), generator=generator).to(dtype)
    return torch.sparse_coo_tensor(indices, values, (*size, *dense), check_invariants=True)


def sparse_allreduce_like_gloo(rank: int, world: int) -> list[str]:
    gloo = dist.new_group(backend="gloo")
    failures = []
    # Each case's arguments for a given rank (some ranks hold more nonzeros than others).
    cases = [
        ("overlapping 1-d", lambda r: dict(nnz=20 + 7 * r, size=(30,))),
        ("2-d with duplicates", lambda r: dict(nnz=50, size=(6, 5))),
        ("hybrid (dense rows)", lambda r: dict(nnz=4 + r, size=(8,), dense=(3,))),
        ("float64", lambda r: dict(nnz=9, size=(40,), dtype=torch.float64)),
        ("empty on rank 1", lambda r: dict(nnz=0 if r == 1 else 5, size=(10,))),
        ("empty everywhere", lambda r: dict(nnz=0, size=(10, 2))),
    ]
    for seed, (name, arguments) in enumerate(cases):
        mine = random_sparse(rank, seed, **arguments(rank))
        on_wan, on_gloo = mine.clone(), mine.clone()
        work = dist.all_reduce(on_wan, async_op=True)
        work.wait()
        dist.all_reduce(on_gloo, group=gloo)
        dense_sum = sum(random_sparse(r, seed, **arguments(r)).to_dense() for r in range(world))
        if not (on_wan.is_coalesced() and on_gloo.is_coalesced()):
            failures.append(f"{name}: coalesced wan {on_wan.is_coalesced()}")
        elif not torch.equal(on_wan._indices(), on_gloo._indices()):
            failures.append(f"{name}: indices {on_wan._indices()} vs gloo {on_gloo._indices()}")
        elif not torch.equal(on_wan._values(), on_gloo._values()):
            failures.append(f"{name}: values {on_wan._values()} vs gloo {on_gloo._values()}")
        elif not torch.allclose(on_wan.to_dense(), dense_sum):
            failures.append(f"{name}: not the sum of every rank's tensor")
        result = work.result()[0]
        if not torch.equal(result.to_dense(), on_wan.to_dense()):
            failures.append(f"{name}: the Work's result differs from the tensor")
    try:
        dist.all_reduce(random_sparse(rank, 0, 3, (4,)), op=dist.ReduceOp.MAX)
        failures.append("sparse MAX: no error")
    except ValueError as error:
        if "SUM" not in str(error):
            failures.append(f"sparse MAX: {error}")
    return failures


def test_sparse_all_reduce_matches_gloo() -> None:
    assert run_ranks(sparse_allreduce_like_gloo, 3) == [[]] * 3


class SparseModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(50, 8, sparse=True)
        self.head = torch.nn.Linear(8, 1)

    def forward(self, ids):
        return self.head(self.embedding(ids).mean(dim=1))


def ddp_sparse_embedding_like_gloo(rank: int, world: int) -> list[str]:
    from torch.nn.parallel import DistributedDataParallel as DDP

    gloo = dist.new_group(backend="gloo")
    torch.manual_seed(0)
    template = SparseModel()
    models, optimizers = {}, {}
    for label, group in (("wan", None), ("gloo", gloo)):
        model = SparseModel()
        model.load_state_dict(template.state_dict())
        models[label] = DDP(model, process_group=group)
        optimizers[label] = torch.optim.SGD(model.parameters(), lr=0.5)
    failures = []
    generator = torch.Generator().manual_seed(rank)
    for step in range(4):
        ids = torch.randint(0, 50, (6, 3), generator=generator)
        target = torch.randn(6, 1, generator=generator)
        for label in ("wan", "gloo"):
            optimizers[label].zero_grad()
            loss = torch.nn.functional.mse_loss(models[label](ids), target)
            loss.backward()
            if label == "wan" and not models[label].module.embedding.weight.grad.is_sparse:
                failures.append(f"step {step}: the embedding's gradient is not sparse")
            optimizers[label].step()
        for (name, ours), theirs in zip(
            models["wan"].module.named_parameters(), models["gloo"].module.parameters()
        ):
            if not torch.equal(ours, theirs):
                difference = (ours - theirs).abs().max().item()
                failures.append(f"step {step}: {name} differs from Gloo's by {difference}")
    return failures


def test_ddp_with_sparse_embedding_matches_gloo() -> None:
    assert run_ranks(ddp_sparse_embedding_like_gloo, 2) == [[]] * 2


def error_words(rank: int, world: int) -> list[str]:
    gloo = dist.new_group(backend="gloo")
    failures = []

    def expect(label, pattern, call, keeps=("torchwan",)):
        try:
            call()
            failures.append(f"{label}: no error")
        except RuntimeError as error:
            text = str(error)
            if not re.search(pattern, text):
                failures.append(f"{label}: {text!r} does not match {pattern!r}")
            missing = [word for word in keeps if word not in text]
            failures.extend(f"{label}: {text!r} lacks {word!r}" for word in missing)

    # A barrier only rank 0 enters: torch's _test_barrier_timeout regex, and Gloo's phrase.
    short = dist.new_group(timeout=timedelta(seconds=1))
    if rank == 0:
        expect("barrier timeout", TIMEOUT_WORDS, lambda: dist.barrier(group=short))
        expect("barrier timeout", "Timed out waiting 1000ms", lambda: dist.barrier(group=short))
        opts = dist.AllreduceOptions()
        opts.timeout = timedelta(milliseconds=700)
        expect(
            "all_reduce timeout",
            "Timed out waiting 700ms for rank 1",
            lambda: dist.group.WORLD.allreduce([torch.ones(3)], opts).wait(),
            keeps=("torchwan all_reduce", "rank 0/"),
        )
    dist.barrier(group=gloo)

    def on_a_fresh_group(callers, label, pattern, call, keeps=("torchwan",), timeout=None):
        """Every rank makes a new group; only `callers` run `call(group)`, which must fail."""
        group = dist.new_group() if timeout is None else dist.new_group(timeout=timeout)
        if rank in callers:
            expect(label, pattern, lambda: call(group), keeps)
        dist.barrier(group=gloo)

    # Rank 1 never arrives: rank 0 names it (test_monitored_barrier_gloo).
    on_a_fresh_group(
        {0},
        "monitored_barrier",
        "Rank 1 failed to pass monitoredBarrier",
        lambda group: dist.monitored_barrier(group, timeout=timedelta(seconds=1)),
        keeps=("torchwan monitored_barrier", "rank 1 did not arrive"),
    )
    # Neither 1 nor 2 arrives: with wait_all_ranks, rank 0 names both.
    on_a_fresh_group(
        {0},
        "monitored_barrier wait_all_ranks",
        "Ranks 1, 2 failed to pass monitoredBarrier",
        lambda group: dist.monitored_barrier(group, timeout=0.5, wait_all_ranks=True),
    )
    # No time at all (test_monitored_barrier_gloo_rank_0_timeout).
    on_a_fresh_group(
        {0},
        "monitored_barrier of 0 s",
        "Rank 0 timed out in monitoredBarrier",
        lambda group: group.monitored_barrier(timedelta(seconds=0)),
    )
    # Rank 0 never arrives: the others say they reached it and blame rank 0.
    on_a_fresh_group(
        set(range(1, world)),
        "monitored_barrier without rank 0",
        f"Rank {rank} successfully reached monitoredBarrier, but received errors while "
        "waiting for send/recv from rank 0",
        lambda group: dist.monitored_barrier(group, timeout=timedelta(seconds=1)),
        timeout=timedelta(seconds=1),
    )

    # And a monitored barrier everyone enters still passes, here and on a fresh group.
    healthy = dist.new_group()
    dist.monitored_barrier(healthy, timeout=timedelta(seconds=30), wait_all_ranks=True)
    dist.monitored_barrier(healthy, timeout=timedelta(seconds=30))
    return failures


def test_timeouts_and_monitored_barrier_use_gloos_words() -> None:
    assert run_ranks(error_words, 3, timeout=180) == [[]] * 3


def test_torch_suite_subset_passes_on_wan() -> None:
    """The CI subset of torch's own suite; the whole suite is `python3 tests/torch_suite/run.py`."""
    pytest.importorskip("expecttest", reason="torch's test suite needs `pip install expecttest`")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "torch_suite"))
    from run import CI_SUBSET, run_backend

    records, _ = run_backend("wan", CI_SUBSET)
    outcomes = {name: records.get(name, {}).get("status", "not run") for name in CI_SUBSET}
    failed = {n: records[n]["detail"] for n, status in outcomes.items() if status == "failed"}
    assert not failed, failed
    assert set(outcomes.values()) == {"passed"}, outcomes
