"""The backend's transparent compression (torchwan.Options(compression=...), TORCHWAN_COMPRESSION):
large floating-point SUM/AVG allreduces go through a codec, within two quantisations of each
256-element block of Gloo's exact-ish result and bit-identical on every rank; integer tensors,
other ops and small tensors stay exact. One 4-process world checks everything."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

import torchwan
from multiprocess import run_ranks

WORLD = 4
CODECS = ["int8", "fp8", "bf16"]
# Error of one quantisation of a block, as a fraction of the block's absmax (docs/compression.md).
STAGE_ERROR = {"int8": 1 / 254, "fp8": 2**-4, "bf16": 2**-8}
BLOCK = 256
COUNT = 100_003  # not a multiple of the block or of the world size


def digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def block_absmax(tensor: torch.Tensor) -> torch.Tensor:
    padded = torch.nn.functional.pad(tensor.abs().double(), (0, -tensor.numel() % BLOCK))
    return padded.view(-1, BLOCK).amax(dim=1)


def worst_error(got: torch.Tensor, expected: torch.Tensor, inputs: list[torch.Tensor],
                codec: str, scale: float, storage_error: float = 0.0) -> float:
    """Largest |got - expected| over the allowed error, per block: each rank's shard is quantised
    once, the fp32 sum once more; `scale` is 1 for SUM and 1/W for AVG. `storage_error` is the
    relative rounding of a narrower tensor dtype, paid on the way in and on the way out."""
    allowed = sum(block_absmax(x) for x in inputs) * scale + block_absmax(expected)
    allowed = allowed * (STAGE_ERROR[codec] + storage_error + 2**-20) + 1e-30
    error = torch.nn.functional.pad((got.double() - expected.double()).abs(),
                                    (0, -got.numel() % BLOCK)).view(-1, BLOCK).amax(dim=1)
    return float((error / allowed).max())


def scenarios(rank: int, world_size: int) -> dict:
    gloo = dist.new_group(backend="gloo", timeout=timedelta(seconds=60))
    generator = torch.Generator().manual_seed(100 + rank)
    # Blocks of very different magnitudes: the bound is relative to each block's absmax.
    x = torch.randn(COUNT, generator=generator) * torch.linspace(0.001, 50.0, COUNT)
    inputs = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(inputs, x, group=gloo)
    exact_sum = x.clone()
    dist.all_reduce(exact_sum, group=gloo)
    out: dict = {}
    for codec in CODECS:
        group = dist.new_group(backend="wan", pg_options=torchwan.Options(compression=codec),
                               timeout=timedelta(seconds=60))
        result: dict = {"backend": group._get_backend(torch.device("cpu")).compression}
        summed = x.clone()
        dist.all_reduce(summed, group=group)
        result["sum_error"] = worst_error(summed, exact_sum, inputs, codec, 1.0)
        result["sum_digest"] = digest(summed)
        result["sum_changed"] = not torch.equal(summed, exact_sum)  # really went through the codec
        averaged = x.clone()
        dist.all_reduce(averaged, op=dist.ReduceOp.AVG, group=group)
        result["avg_error"] = worst_error(averaged, exact_sum / world_size, inputs, codec,
                                          1 / world_size)
        result["avg_digest"] = digest(averaged)
        # Other floating dtypes go through an fp32 copy.
        half = x.to(torch.bfloat16)
        dist.all_reduce(half, group=group)
        result["bf16_error"] = worst_error(half.float(), exact_sum, inputs, codec, 1.0,
                                           storage_error=2**-8)
        result["bf16_digest"] = digest(half)

        # Exact cases: the same bits as the uncompressed "wan" group (the default one).
        integers = (x * 1000).to(torch.int64)
        reference = integers.clone()
        dist.all_reduce(integers, group=group)
        dist.all_reduce(reference)
        result["int_exact"] = torch.equal(integers, reference)
        largest, reference = x.clone(), x.clone()
        dist.all_reduce(largest, op=dist.ReduceOp.MAX, group=group)
        dist.all_reduce(reference, op=dist.ReduceOp.MAX)
        result["max_exact"] = torch.equal(largest, reference)
        # 4 KB: latency-bound, not compressed. Whole numbers, so that every summation order gives
        # the same bits: the two groups may pick different algorithms from their measured round
        # trips, while compression would still change the values.
        small = (x[:1000] * 1000).round()
        reference = small.clone()
        dist.all_reduce(small, group=group)
        dist.all_reduce(reference)
        result["small_exact"] = torch.equal(small, reference)
        out[codec] = result
    return out


@pytest.fixture(scope="module")
def results() -> list[dict]:
    return run_ranks(scenarios, WORLD, timeout=180)


@pytest.mark.parametrize("codec", CODECS)
def test_within_codec_error_bound(results: list[dict], codec: str) -> None:
    for rank, result in enumerate(results):
        got = result[codec]
        assert got["backend"] == codec
        assert got["sum_changed"], (rank, codec)
        assert got["sum_error"] <= 1.0, (rank, codec, got["sum_error"])
        assert got["avg_error"] <= 1.0, (rank, codec, got["avg_error"])
        # bf16 storage adds its own rounding (2^-8 relative) on top of the codec's.
        assert got["bf16_error"] <= 1.0, (rank, codec, got["bf16_error"])


@pytest.mark.parametrize("codec", CODECS)
def test_identical_on_every_rank(results: list[dict], codec: str) -> None:
    for key in ("sum_digest", "avg_digest", "bf16_digest"):
        assert len({result[codec][key] for result in results}) == 1, (codec, key)


@pytest.mark.parametrize("codec", CODECS)
def test_integers_other_ops_and_small_tensors_stay_exact(results: list[dict], codec: str) -> None:
    for rank, result in enumerate(results):
        assert result[codec]["int_exact"], (rank, codec)
        assert result[codec]["max_exact"], (rank, codec)
        assert result[codec]["small_exact"], (rank, codec)


def test_rejects_unknown_and_stateful_codecs() -> None:
    store = dist.HashStore()
    for bad, message in (("int4", "unknown compression"), ("sign", "error feedback")):
        with pytest.raises(ValueError, match=message):
            torchwan._C.ProcessGroupWan(store, 0, 1, timedelta(seconds=5),
                                        torchwan.Options(compression=bad).transport_fields())
