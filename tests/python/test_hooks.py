"""torchwan.compression bindings and the torchwan.hooks DDP communication hooks.

The hook tests train one small model per codec in a single 4-process world (starting processes
is the expensive part) and check that every rank ends with the same parameters, that the loss
falls, and that the near-lossless codecs stay close to uncompressed DDP."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torchwan  # noqa: F401  (loads the native module)
from multiprocess import run_ranks
from torchwan import compression
from torchwan.compression import CodecConfig

WORLD = 4
STEPS = 30
SEED = 1234
CODECS = ["int8", "fp8", "fp16", "bf16", "sign", "topk"]


# --- bindings -------------------------------------------------------------------------------------


def sample(n: int = 1000) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    return torch.randn(n, generator=generator) * torch.linspace(0.01, 3.0, n)


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip(codec: str) -> None:
    x = sample()
    config = CodecConfig(codec=codec, topk_fraction=0.1)
    payload = compression.encode(x, config)
    assert payload.dtype == torch.uint8 and payload.numel() == compression.encoded_size(
        x.numel(), config
    )
    header = compression.inspect(payload)
    assert header["codec"] == codec and header["element_count"] == x.numel()
    y = compression.decode(payload)
    if codec in ("sign", "topk"):
        # Biased codecs: only the signs of the kept or sign-coded elements are certain.
        kept = y != 0
        assert kept.any() and torch.equal(torch.sign(y[kept]), torch.sign(x[kept]))
    else:
        tolerance = {"fp16": 2**-10, "bf16": 2**-7, "int8": 0.02, "fp8": 0.07}[codec]
        assert (y - x).abs().max() <= tolerance * x.abs().max()
    total = torch.ones_like(x)
    compression.decode_accumulate(payload, total)
    assert torch.equal(total, y + 1)


@pytest.mark.parametrize("codec", CODECS)
def test_error_feedback_keeps_what_was_lost(codec: str) -> None:
    x = sample()
    residual = torch.full_like(x, 0.01)
    t = x + residual
    config = CodecConfig(codec=codec)
    payload = compression.encode_with_error_feedback(x, residual, config)
    assert torch.equal(payload, compression.encode(t, config))
    assert torch.equal(residual, t - compression.decode(payload))


def test_the_codec_table_names_every_codec_once() -> None:
    assert list(compression.CODEC_TABLE) == list(compression.CODECS) == [
        "fp16", "bf16", "int8", "fp8", "sign", "topk"]
    assert [row["wire_id"] for row in compression.CODEC_TABLE.values()] == [1, 2, 3, 4, 5, 6]
    biased = {name for name, row in compression.CODEC_TABLE.items() if row["needs_error_feedback"]}
    assert biased == {"sign", "topk"}
    # The older spellings still work and decode under the one name.
    x = sample()
    for alias, name in (("int8_block", "int8"), ("fp8_e4m3_block", "fp8"), ("sign_block", "sign")):
        assert compression.CODEC_TABLE[name]["alias"] == alias
        payload = compression.encode(x, CodecConfig(codec=alias))
        assert torch.equal(payload, compression.encode(x, CodecConfig(codec=name)))
        assert compression.inspect(payload)["codec"] == name


def test_writes_into_given_memory() -> None:
    x = sample()
    out = torch.empty(compression.encoded_size(x.numel()) + 16, dtype=torch.uint8)
    payload = compression.encode(x, out=out)
    assert payload.data_ptr() == out.data_ptr() and payload.numel() == out.numel() - 16
    decoded = torch.empty_like(x)
    assert compression.decode(payload, out=decoded).data_ptr() == decoded.data_ptr()


def test_malformed_payloads_raise_value_error() -> None:
    payload = compression.encode(sample())
    with pytest.raises(ValueError, match="truncated"):
        compression.decode(payload[:-1].clone())
    with pytest.raises(ValueError, match="oversize"):
        compression.decode(torch.cat([payload, torch.zeros(1, dtype=torch.uint8)]))
    with pytest.raises(ValueError, match="magic"):
        bad = payload.clone()
        bad[0] ^= 0xFF
        compression.decode(bad)
    with pytest.raises(ValueError, match="checksum"):
        bad = payload.clone()
        bad[16] ^= 0x01  # element count: caught by the header checksum
        compression.decode(bad)
    with pytest.raises(ValueError):
        compression.decode(payload[:10].clone())
    with pytest.raises(ValueError):
        compression.decode(payload, out=torch.empty(3))  # wrong element count
    bad_index = compression.encode(sample(), CodecConfig(codec="topk", topk_fraction=0.01))
    bad_index[compression.HEADER_SIZE:compression.HEADER_SIZE + 4] = 0xFF  # index >= n
    with pytest.raises(ValueError):
        compression.decode(bad_index)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="codec"):
        compression.encode(sample(), CodecConfig(codec="int4"))
    with pytest.raises(ValueError):
        compression.encode(sample(), CodecConfig(block_size=100))
    with pytest.raises(TypeError):
        compression.encode(sample().double())
    with pytest.raises(TypeError):
        compression.decode(torch.zeros(64, dtype=torch.int8))
    with pytest.raises(ValueError, match="residual"):
        compression.encode_with_error_feedback(sample(), torch.zeros(3))
    with pytest.raises(ValueError, match="out"):
        compression.encode(sample(), out=torch.empty(8, dtype=torch.uint8))


# --- hooks on 4 processes -------------------------------------------------------------------------


def make_model() -> nn.Module:
    torch.manual_seed(SEED)
    return nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, 4))  # fmt: skip


def make_data(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random teacher; each rank sees its own inputs."""
    teacher = torch.Generator().manual_seed(99)
    w = torch.randn(16, 4, generator=teacher)
    generator = torch.Generator().manual_seed(SEED + rank)
    x = torch.randn(STEPS, 32, 16, generator=generator)
    return x, torch.tanh(x @ w)


def train(rank: int, codec: str | None) -> dict:
    import torchwan.hooks as hooks

    # Small buckets, so every step runs several hooks of different sizes.
    model = nn.parallel.DistributedDataParallel(make_model(), bucket_cap_mb=0.01)
    state = None
    if codec is not None:
        state = hooks.State(codec=codec, topk_fraction=0.05)
        model.register_comm_hook(state, hooks.compressed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = make_data(rank)
    losses = []
    for step in range(STEPS):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x[step]), y[step])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return {
        "losses": losses,
        # Plain lists: tensors would travel through shared memory, gone once the rank exits.
        "params": flat.tolist(),
        "ratio": state.bytes_dense / state.bytes_sent if state else 1.0,
    }


def per_codec_hook(rank: int) -> None:
    """The per-codec functions train exactly like compressed() with that codec."""
    import torchwan.hooks as hooks

    def params(hook, codec: str) -> torch.Tensor:
        model = nn.parallel.DistributedDataParallel(make_model())
        model.register_comm_hook(hooks.State(codec=codec), hook)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = make_data(rank)
        for step in range(3):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x[step]), y[step]).backward()
            optimizer.step()
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    assert torch.equal(params(hooks.int8, "fp16"), params(hooks.compressed, "int8"))
    assert torch.equal(params(hooks.sign, "int8"), params(hooks.compressed, "sign"))


def all_codecs(rank: int, world_size: int) -> dict:
    import time

    start = time.perf_counter()
    results = {codec: train(rank, codec) for codec in [None, *CODECS]}
    per_codec_hook(rank)
    results["seconds"] = time.perf_counter() - start
    return results


@pytest.fixture(scope="module")
def trained() -> list[dict]:
    return run_ranks(all_codecs, WORLD, timeout=180)


@pytest.mark.parametrize("codec", [None, *CODECS])
def test_ranks_agree_and_loss_falls(trained: list[dict], codec: str | None) -> None:
    for rank in range(1, WORLD):
        assert trained[rank][codec]["params"] == trained[0][codec]["params"], rank
    losses = [trained[rank][codec]["losses"] for rank in range(WORLD)]
    first = sum(run[0] for run in losses) / WORLD
    last = sum(sum(run[-5:]) / 5 for run in losses) / WORLD
    assert last < 0.5 * first, (codec, first, last)


@pytest.mark.parametrize("codec", ["int8", "fp16", "bf16"])
def test_close_to_uncompressed(trained: list[dict], codec: str) -> None:
    reference = trained[0][None]
    got = trained[0][codec]
    expected = torch.tensor(reference["params"])
    drift = (torch.tensor(got["params"]) - expected).norm() / expected.norm()
    assert drift < 0.02, (codec, float(drift))
    assert abs(got["losses"][-1] - reference["losses"][-1]) < 0.1 * reference["losses"][-1] + 1e-3


def test_bytes_on_wire(trained: list[dict]) -> None:
    ratios = {codec: trained[0][codec]["ratio"] for codec in CODECS}
    assert 1.9 < ratios["fp16"] <= 2.0 and 1.9 < ratios["bf16"] <= 2.0, ratios
    assert 3.0 < ratios["int8"] < 4.0 and 3.0 < ratios["fp8"] < 4.0, ratios
    assert ratios["sign"] > 10, ratios
    assert ratios["topk"] > 2, ratios


def hook_returns_before_communication(rank: int, world_size: int) -> dict:
    """Rank 1 starts its backward a second late: rank 0's hook must return its future before the
    bucket's collectives can complete, and the result must still be the right mean."""
    import time

    import torch.distributed as dist
    import torchwan.hooks as hooks

    returned_done = []

    def watching_hook(state, bucket):
        future = hooks.compressed(state, bucket)
        returned_done.append(future.done())
        return future

    model = nn.parallel.DistributedDataParallel(nn.Linear(64, 64, bias=False))
    model.register_comm_hook(hooks.State(codec="fp16"), watching_hook)
    with torch.no_grad():
        model.module.weight.zero_()
    x = torch.full((1, 64), float(rank + 1))
    dist.barrier()
    if rank == 1:
        time.sleep(1.0)
    model(x).sum().backward()  # d/dW of sum(W x) is x repeated per row
    grad = model.module.weight.grad
    expected = torch.full((64, 64), sum(r + 1 for r in range(world_size)) / world_size)
    return {"returned_done": returned_done, "grad_ok": torch.equal(grad, expected)}


def test_the_hook_does_not_wait_for_the_network() -> None:
    results = run_ranks(hook_returns_before_communication, 2, timeout=120)
    assert results[0]["returned_done"] == [False], results
    assert all(result["grad_ok"] for result in results), results


def hook_and_option(rank: int, world_size: int) -> dict:
    """The hooks' allreduce and Options(compression=...) are one engine path: on the first call
    (residuals still zero) both give the same bits."""
    import torch.distributed as dist
    import torchwan.hooks as hooks

    group = dist.new_group(backend="wan", pg_options=torchwan.Options(compression="int8"))
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(rank)) * 3
    through_option = x.clone()
    dist.all_reduce(through_option, op=dist.ReduceOp.AVG, group=group)
    results = {}
    for error_feedback in (False, True):
        through_hook = x.clone()
        state = hooks.State(codec="int8", error_feedback=error_feedback)
        hooks.compressed_allreduce(state, "int8", 0, through_hook).wait()
        results[error_feedback] = torch.equal(through_hook, through_option)
    with pytest.raises(ValueError, match="error feedback"):
        hooks.compressed_allreduce(hooks.State(error_feedback=False), "sign", 0, x.clone())
    return results


def test_the_hook_and_the_compression_option_share_one_allreduce() -> None:
    for result in run_ranks(hook_and_option, 3, timeout=120):
        assert result == {False: True, True: True}, result
