"""Every collective x dtype x reduce op of the wan backend on 2, 3 and 4 real processes and both
transports. Each rank can rebuild every other rank's input from the seed, so results are checked
against an exact local reduction for every case, and against Gloo (run on the same inputs in the
same processes) wherever Gloo has the dtype and op. One process group per world size and
transport runs the whole matrix: starting processes that import torch is the expensive part."""

from __future__ import annotations

import functools
import hashlib

import pytest
import torch
import torch.distributed as dist

from conftest import TRANSPORTS
from multiprocess import run_ranks

DTYPES = [
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
]
OPS = ["SUM", "AVG", "PREMUL_SUM", "PREMUL_SUM_TENSOR", "PRODUCT", "MIN", "MAX", "BAND", "BOR", "BXOR"]
SIZES = [0, 1, 37]
LARGE = 70_001  # float32 / bfloat16 only: the pipelined ring path
GLOO_DTYPES = {torch.uint8, torch.int8, torch.int32, torch.int64, torch.float32, torch.float64}
GLOO_OPS = {"SUM", "PRODUCT", "MIN", "MAX", "BAND", "BOR", "BXOR"}
PREMUL_FACTOR = 0.5
TOLERANCE = {
    torch.float16: dict(rtol=2e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=1e-2, atol=1e-2),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.complex64: dict(rtol=1e-5, atol=1e-5),
    torch.complex128: dict(rtol=1e-12, atol=1e-12),
    # Narrow floats round after every pairwise step (as the engine documents): a few ulps.
    torch.float8_e4m3fn: dict(rtol=0.15, atol=0.15),
    torch.float8_e5m2: dict(rtol=0.3, atol=0.3),
}


def is_float(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point or dtype.is_complex


def op_defined(dtype: torch.dtype, op: str) -> bool:
    if op in ("AVG", "PREMUL_SUM", "PREMUL_SUM_TENSOR"):
        return is_float(dtype)
    if op in ("MIN", "MAX"):
        return not dtype.is_complex
    if op in ("BAND", "BOR", "BXOR"):
        return not is_float(dtype)
    return True


def reduce_op(op: str):
    if op == "PREMUL_SUM":
        return dist._make_nccl_premul_sum(PREMUL_FACTOR)
    if op == "PREMUL_SUM_TENSOR":
        return dist._make_nccl_premul_sum(torch.tensor(PREMUL_FACTOR, dtype=torch.float64))
    return getattr(dist.ReduceOp, op)


def make_input(seed: int, rank: int, dtype: torch.dtype, numel: int, op: str) -> torch.Tensor:
    """Values whose reductions are exact in every dtype (small integers for narrow types)."""
    gen = torch.Generator().manual_seed(seed * 131 + rank)
    if dtype == torch.bool:
        return torch.randint(0, 2, (numel,), generator=gen).bool()
    if dtype.is_complex:
        return torch.randn(numel, generator=gen, dtype=dtype)
    if dtype in (torch.float32, torch.float64) and op != "PRODUCT":
        return torch.randn(numel, generator=gen, dtype=dtype)
    low, high = (-2, 3) if op == "PRODUCT" else (-4, 5)
    if dtype == torch.uint8:
        low, high = (0, 4) if op == "PRODUCT" else (0, 60)
    values = torch.randint(low, high, (numel,), generator=gen)
    if op == "PRODUCT" and is_float(dtype):
        values = torch.where(values == 0, torch.ones_like(values), values)
    return values.to(dtype)


def random_bits(seed: int, rank: int, dtype: torch.dtype, numel: int) -> torch.Tensor:
    """Arbitrary bit patterns (NaNs included): data movement must carry them unchanged."""
    gen = torch.Generator().manual_seed(seed * 977 + rank)
    if dtype == torch.bool:
        return torch.randint(0, 2, (numel,), generator=gen).bool()
    itemsize = torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (numel * itemsize,), generator=gen, dtype=torch.uint8)
    return raw.view(dtype)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(
        a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8)
    )


def local_reduction(inputs: list[torch.Tensor], op: str, dtype: torch.dtype) -> torch.Tensor:
    """The exact answer computed in a wide type from every rank's input."""
    n = len(inputs)
    if dtype == torch.bool:
        stacked = torch.stack(inputs).long()
        result = {
            "SUM": stacked.sum(0) > 0,
            "MAX": stacked.amax(0) > 0,
            "BOR": stacked.amax(0) > 0,
            "PRODUCT": stacked.prod(0) > 0,
            "MIN": stacked.amin(0) > 0,
            "BAND": stacked.amin(0) > 0,
            "BXOR": stacked.sum(0) % 2 == 1,
        }[op]
        return result
    wide = torch.complex128 if dtype.is_complex else (torch.float64 if is_float(dtype) else torch.int64)
    stacked = torch.stack([t.to(wide) for t in inputs])
    if op == "SUM":
        result = stacked.sum(0)
    elif op == "AVG":
        result = stacked.sum(0) / n
    elif op.startswith("PREMUL_SUM"):
        result = (stacked * PREMUL_FACTOR).sum(0)
    elif op == "PRODUCT":
        result = stacked.prod(0)
    elif op == "MIN":
        result = stacked.amin(0)
    elif op == "MAX":
        result = stacked.amax(0)
    else:
        bitwise = {"BAND": torch.bitwise_and, "BOR": torch.bitwise_or, "BXOR": torch.bitwise_xor}[op]
        result = functools.reduce(bitwise, list(stacked))
    return result.to(dtype)


def close(result: torch.Tensor, expected: torch.Tensor) -> bool:
    if result.shape != expected.shape or result.dtype != expected.dtype:
        return False
    if not is_float(result.dtype):
        return torch.equal(result, expected)
    wide = torch.complex128 if result.dtype.is_complex else torch.float64
    return torch.allclose(result.to(wide), expected.to(wide), **TOLERANCE[result.dtype])


def digest(tensor: torch.Tensor) -> str:
    # hashlib, not hash(): str/bytes hashing is salted differently in every process.
    return hashlib.sha256(tensor.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


class Matrix:
    """Runs cases on the wan default group and records failures as readable strings."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world
        self.pg = dist.group.WORLD
        self.gloo = dist.new_group(backend="gloo")
        self.failures: list[str] = []
        self.seed = 0
        self.digests: list[tuple[str, str]] = []

    def next_seed(self) -> int:
        self.seed += 1
        return self.seed

    def inputs(self, seed, dtype, numel, op):
        return [make_input(seed, r, dtype, numel, op) for r in range(self.world)]

    def expect(self, case: str, result: torch.Tensor, expected: torch.Tensor) -> None:
        if not close(result, expected):
            self.failures.append(f"{case}: got {result.flatten()[:6]} expected {expected.flatten()[:6]}")

    def expect_error(self, case: str, call) -> None:
        try:
            call()
        except (ValueError, TypeError):
            return
        self.failures.append(f"{case}: no ValueError/TypeError for an undefined op")

    # --- reductions ---------------------------------------------------------------------------
    def allreduce(self, dtype, op, numel) -> None:
        seed = self.next_seed()
        case = f"allreduce {op} {dtype} n={numel}"
        inputs = self.inputs(seed, dtype, numel, op)
        tensor = inputs[self.rank].clone()
        opts = dist.AllreduceOptions()
        opts.reduceOp = reduce_op(op)
        if not op_defined(dtype, op):
            self.expect_error(case, lambda: self.pg.allreduce([tensor], opts))
            return
        self.pg.allreduce([tensor], opts).wait()
        self.expect(case, tensor, local_reduction(inputs, op, dtype))
        if dtype in GLOO_DTYPES and op in GLOO_OPS:
            theirs = inputs[self.rank].clone()
            dist.all_reduce(theirs, op=getattr(dist.ReduceOp, op), group=self.gloo)
            self.expect(case + " vs gloo", tensor, theirs)
        self.digests.append((case, digest(tensor)))

    def reduce(self, dtype, op, numel) -> None:
        seed = self.next_seed()
        root = seed % self.world
        case = f"reduce {op} {dtype} n={numel} root={root}"
        inputs = self.inputs(seed, dtype, numel, op)
        tensor = inputs[self.rank].clone()
        opts = dist.ReduceOptions()
        opts.reduceOp = reduce_op(op)
        opts.rootRank = root
        if not op_defined(dtype, op):
            self.expect_error(case, lambda: self.pg.reduce([tensor], opts))
            return
        self.pg.reduce([tensor], opts).wait()
        expected = local_reduction(inputs, op, dtype) if self.rank == root else inputs[self.rank]
        self.expect(case, tensor, expected)

    def reduce_scatter(self, dtype, op, numel) -> None:
        seed = self.next_seed()
        case = f"reduce_scatter_tensor {op} {dtype} n={numel}"
        inputs = self.inputs(seed, dtype, numel * self.world, op)
        output = torch.empty(numel, dtype=dtype)
        opts = dist.ReduceScatterOptions()
        opts.reduceOp = reduce_op(op)
        if not op_defined(dtype, op):
            self.expect_error(
                case, lambda: self.pg._reduce_scatter_base(output, inputs[self.rank].clone(), opts)
            )
            return
        mine = inputs[self.rank].clone()
        self.pg._reduce_scatter_base(output, mine, opts).wait()
        full = local_reduction(inputs, op, dtype)
        self.expect(case, output, full[self.rank * numel : (self.rank + 1) * numel])
        if not same_bits(mine, inputs[self.rank]):
            self.failures.append(f"{case}: the input changed")
        if dtype in GLOO_DTYPES and op in {"SUM", "MIN", "MAX", "PRODUCT"}:
            theirs = torch.empty(numel, dtype=dtype)
            dist.reduce_scatter_tensor(
                theirs, inputs[self.rank].clone(), op=getattr(dist.ReduceOp, op), group=self.gloo
            )
            self.expect(case + " vs gloo", output, theirs)

    def reduce_scatter_list(self, dtype, op, numel) -> None:
        seed = self.next_seed()
        case = f"reduce_scatter {op} {dtype} n={numel}"
        inputs = self.inputs(seed, dtype, numel * self.world, op)
        output = torch.empty(numel, dtype=dtype)
        dist.reduce_scatter(output, list(inputs[self.rank].clone().chunk(self.world)), op=reduce_op(op))
        full = local_reduction(inputs, op, dtype)
        self.expect(case, output, full[self.rank * numel : (self.rank + 1) * numel])

    def coalesced(self, dtype, op) -> None:
        seed = self.next_seed()
        case = f"coalesced {op} {dtype}"
        sizes = [3, 0, 5]
        per_tensor = [self.inputs(seed * 7 + i, dtype, n * self.world, op) for i, n in enumerate(sizes)]
        tensors = [inputs[self.rank].clone() for inputs in per_tensor]
        opts = dist.AllreduceCoalescedOptions()
        opts.reduceOp = reduce_op(op)
        self.pg.allreduce_coalesced(tensors, opts).wait()
        for i, inputs in enumerate(per_tensor):
            self.expect(f"allreduce_{case} #{i}", tensors[i], local_reduction(inputs, op, dtype))
        outputs = [torch.empty(n, dtype=dtype) for n in sizes]
        rs_opts = dist.ReduceScatterOptions()
        rs_opts.reduceOp = reduce_op(op)
        self.pg.reduce_scatter_tensor_coalesced(
            outputs, [inputs[self.rank].clone() for inputs in per_tensor], rs_opts
        ).wait()
        for i, (n, inputs) in enumerate(zip(sizes, per_tensor)):
            full = local_reduction(inputs, op, dtype)
            self.expect(f"reduce_scatter_{case} #{i}", outputs[i], full[self.rank * n : (self.rank + 1) * n])

    # --- data movement ------------------------------------------------------------------------
    def movement(self, dtype, numel) -> None:
        seed = self.next_seed()
        world, rank = self.world, self.rank
        bits = [random_bits(seed, r, dtype, numel) for r in range(world)]
        root = seed % world
        tag = f"{dtype} n={numel} root={root}"

        tensor = bits[rank].clone()
        opts = dist.BroadcastOptions()
        opts.rootRank = root
        self.pg.broadcast([tensor], opts).wait()
        if not same_bits(tensor, bits[root]):
            self.failures.append(f"broadcast {tag}")
        if dtype in GLOO_DTYPES:
            theirs = bits[rank].clone()
            dist.broadcast(theirs, src=root, group=self.gloo)
            if not same_bits(tensor, theirs):
                self.failures.append(f"broadcast {tag} vs gloo")

        outputs = [torch.empty(numel, dtype=dtype) for _ in range(world)]
        self.pg.allgather([outputs], [bits[rank].clone()]).wait()
        if not all(same_bits(o, b) for o, b in zip(outputs, bits)):
            self.failures.append(f"all_gather {tag}")

        flat = torch.empty(numel * world, dtype=dtype)
        dist.all_gather_into_tensor(flat, bits[rank].clone())
        if not same_bits(flat, torch.cat(bits)):
            self.failures.append(f"all_gather_into_tensor {tag}")
        if dtype in GLOO_DTYPES:
            theirs = torch.empty(numel * world, dtype=dtype)
            dist.all_gather_into_tensor(theirs, bits[rank].clone(), group=self.gloo)
            if not same_bits(flat, theirs):
                self.failures.append(f"all_gather_into_tensor {tag} vs gloo")

        gather_opts = dist.GatherOptions()
        gather_opts.rootRank = root
        gathered = [torch.empty(numel, dtype=dtype) for _ in range(world)] if rank == root else []
        self.pg.gather([gathered] if rank == root else [], [bits[rank].clone()], gather_opts).wait()
        if rank == root and not all(same_bits(g, b) for g, b in zip(gathered, bits)):
            self.failures.append(f"gather {tag}")
        flat_gather = torch.empty(numel * world if rank == root else 0, dtype=dtype)
        self.pg.gather_into_tensor(flat_gather, bits[rank].clone(), gather_opts).wait()
        if rank == root and not same_bits(flat_gather, torch.cat(bits)):
            self.failures.append(f"gather_into_tensor {tag}")

        scatter_opts = dist.ScatterOptions()
        scatter_opts.rootRank = root
        chunks = [random_bits(seed + 5000, r, dtype, numel) for r in range(world)]
        received = torch.empty(numel, dtype=dtype)
        self.pg.scatter([received], [chunks] if rank == root else [], scatter_opts).wait()
        if not same_bits(received, chunks[rank]):
            self.failures.append(f"scatter {tag}")

        # Uneven all-to-all: rank s sends rows(s, d) rows of width 2 to rank d.
        def rows(s: int, d: int) -> int:
            return (s + 2 * d + numel) % 3

        def block(s: int, d: int) -> torch.Tensor:
            return random_bits(seed * 31 + s * 7 + d, 0, dtype, rows(s, d) * 2).view(-1, 2)

        send = torch.cat([block(rank, d) for d in range(world)])
        recv = torch.empty(sum(rows(s, rank) for s in range(world)), 2, dtype=dtype)
        dist.all_to_all_single(
            recv,
            send,
            output_split_sizes=[rows(s, rank) for s in range(world)],
            input_split_sizes=[rows(rank, d) for d in range(world)],
        )
        if not same_bits(recv, torch.cat([block(s, rank) for s in range(world)])):
            self.failures.append(f"all_to_all_single uneven {tag}")
        if dtype in GLOO_DTYPES:
            theirs = torch.empty_like(recv)
            dist.all_to_all_single(
                theirs,
                send,
                output_split_sizes=[rows(s, rank) for s in range(world)],
                input_split_sizes=[rows(rank, d) for d in range(world)],
                group=self.gloo,
            )
            if not same_bits(recv, theirs):
                self.failures.append(f"all_to_all_single {tag} vs gloo")
        outs = [torch.empty(rows(s, rank), 2, dtype=dtype) for s in range(world)]
        dist.all_to_all(outs, [block(rank, d) for d in range(world)])
        if not all(same_bits(o, block(s, rank)) for s, o in enumerate(outs)):
            self.failures.append(f"all_to_all list {tag}")

        sizes = [2, 0, numel]
        ins = [random_bits(seed * 3 + i, rank, dtype, n) for i, n in enumerate(sizes)]
        outs = [torch.empty(n * world, dtype=dtype) for n in sizes]
        self.pg.allgather_into_tensor_coalesced(outs, [t.clone() for t in ins]).wait()
        for i, n in enumerate(sizes):
            expected = torch.cat([random_bits(seed * 3 + i, r, dtype, n) for r in range(world)])
            if not same_bits(outs[i], expected):
                self.failures.append(f"allgather_into_tensor_coalesced #{i} {tag}")

    def check_replicas_agree(self) -> None:
        everyone = [None] * self.world
        dist.all_gather_object(everyone, self.digests, group=self.gloo)
        for i, (case, _) in enumerate(self.digests):
            if len({other[i][1] for other in everyone}) != 1:
                self.failures.append(f"{case}: ranks disagree bitwise")


def check_matrix(rank: int, world: int) -> list[str]:
    m = Matrix(rank, world)
    for dtype in DTYPES:
        for op in OPS:
            for numel in SIZES + ([LARGE] if dtype in (torch.float32, torch.bfloat16) else []):
                m.allreduce(dtype, op, numel)
            for numel in SIZES:
                m.reduce(dtype, op, numel)
                m.reduce_scatter(dtype, op, numel)
            if op_defined(dtype, op):
                m.reduce_scatter_list(dtype, op, 5)
                m.coalesced(dtype, op)
        for numel in (0, 7):
            m.movement(dtype, numel)
    m.movement(torch.float32, 300_001)
    # Past the tree thresholds: chain broadcast and the large-message reduce path.
    m.reduce(torch.float32, "SUM", 1_200_001)
    big = torch.full((1_200_001,), float(rank)) if rank == world - 1 else torch.zeros(1_200_001)
    dist.broadcast(big, src=world - 1)
    if not torch.equal(big, torch.full((1_200_001,), float(world - 1))):
        m.failures.append("broadcast of 4.8 MB")
    m.check_replicas_agree()
    dist.barrier()
    return m.failures


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_collective_matrix_matches_reference_and_gloo(transport: str, world_size: int) -> None:
    results = run_ranks(check_matrix, world_size, env={"TORCHWAN_TRANSPORT": transport})
    assert results == [[]] * world_size, "\n".join(f for r in results for f in r[:40])
