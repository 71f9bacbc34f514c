"""DDP communication hooks that compress gradients with torchwan's codecs.

::

    state = torchwan.hooks.State(codec="int8")          # or fp8, fp16, bf16, sign, topk
    model.register_comm_hook(state, torchwan.hooks.compressed)
    # equivalently, one function per codec (the codec in the state is then ignored):
    model.register_comm_hook(torchwan.hooks.State(), torchwan.hooks.int8)

The result is the average over ranks, as with DDP's default hook.

int8, fp8, sign, fp16, bf16 quantise twice end to end, whatever the world size: each rank encodes
its bucket in W shards (with error feedback), an all-to-all hands shard j to rank j, which sums
the W payloads in fp32, re-encodes the mean (with a second error-feedback residual) and all-gathers
it. Each rank thus sends about 2·(W−1)/W of the bucket's compressed size, as a ring allreduce does
of the uncompressed one. topk all-gathers every rank's sparse payload and sums in fp32: one
quantisation, and bytes growing with W, which is fine while W·fraction stays small.

The hook returns at once: one thread per State encodes, communicates and decodes the buckets in
the order DDP hands them over (the same on every rank, so every rank issues the same collectives
in the same order) and completes each bucket's future, while backward goes on computing the next
buckets' gradients. Gradients on a GPU are copied to the CPU on the caller's thread, where DDP
guarantees they are ready, and back by that thread (the CUDA codecs are not wired in yet).
"""

import concurrent.futures
import math
import threading
from typing import Optional

import torch
import torch.distributed as dist

from . import compression
from .compression import CodecConfig

_MASK64 = (1 << 64) - 1


def _mix(*values: int) -> int:
    """A 64-bit hash of the values: distinct seeds for every (step, bucket, rank, stage, shard),
    because the codec's random numbers depend only on (seed, element index)."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h ^= value & _MASK64
        h = (h * 0xBF58476D1CE4E5B9) & _MASK64
        h ^= h >> 31
    return h


class State:
    """Per-model hook state: the codec settings and, per DDP bucket, the error-feedback residuals.

    ``bytes_sent`` and ``bytes_dense`` count, for this rank, the payload bytes the hook sent to
    other ranks and what a ring allreduce of the same fp32 buckets would send; their ratio is the
    saving on the wire."""

    def __init__(
        self,
        process_group: Optional[dist.ProcessGroup] = None,
        codec: str = "int8",
        block_size: int = 256,
        error_feedback: bool = True,
        topk_fraction: float = 0.01,
        seed: int = 0,
        stochastic_rounding: bool = False,
    ) -> None:
        if codec not in compression.CODECS:
            raise ValueError(f"torchwan.hooks: unknown codec {codec!r}, expected one of "
                             f"{', '.join(compression.CODECS)}")
        self.process_group = process_group
        self.codec = codec
        self.block_size = block_size
        self.error_feedback = error_feedback
        self.topk_fraction = topk_fraction
        self.seed = seed
        self.stochastic_rounding = stochastic_rounding
        self.step = 0
        # Bucket index -> residual of what this rank's encode lost (padded bucket length), and of
        # what the re-encode of the shard this rank reduces lost (shard length).
        self.residuals: dict[int, torch.Tensor] = {}
        self.shard_residuals: dict[int, torch.Tensor] = {}
        self.bytes_sent = 0
        self.bytes_dense = 0
        self._worker: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._worker_lock = threading.Lock()

    def worker(self) -> concurrent.futures.ThreadPoolExecutor:
        """The thread that runs this state's buckets one after another, started on first use."""
        with self._worker_lock:
            if self._worker is None:
                self._worker = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="torchwan-hook")
            return self._worker

    def config(self, codec: str, seed: int) -> CodecConfig:
        return CodecConfig(
            codec=codec,
            block_size=self.block_size,
            topk_fraction=self.topk_fraction,
            stochastic_rounding=self.stochastic_rounding and codec == "int8",
            seed=seed,
        )

    def residual(self, table: dict[int, torch.Tensor], bucket: int, numel: int) -> torch.Tensor:
        """The bucket's residual, zeroed when new or resized (DDP rebuilds its buckets after the
        first iteration, so an index may then name different parameters)."""
        residual = table.get(bucket)
        if residual is None or residual.numel() != numel:
            residual = torch.zeros(numel, dtype=torch.float32)
            table[bucket] = residual
        return residual

    def reset_bucket(self, bucket: int) -> None:
        """Forgets a bucket's residuals: after a non-finite gradient they hold NaN or Inf, which
        would otherwise poison every later step even when the optimizer skips this one."""
        self.residuals.pop(bucket, None)
        self.shard_residuals.pop(bucket, None)


def _encode(
    config: CodecConfig, tensor: torch.Tensor, residual: Optional[torch.Tensor], out: torch.Tensor
) -> None:
    if residual is None:
        compression.encode(tensor, config, out=out)
    else:
        compression.encode_with_error_feedback(tensor, residual, config, out=out)


def _sharded_allreduce(
    state: State, codec: str, group: Optional[dist.ProcessGroup], bucket: int, flat: torch.Tensor,
    rank: int, world: int, step: int,
) -> torch.Tensor:
    """Two quantisations: encode W shards, all-to-all, reduce one shard in fp32, re-encode it,
    all-gather, decode. Returns the mean."""
    n = flat.numel()
    # Equal shards give equal payload sizes, so plain equal-split collectives suffice; the zero
    # padding (under W elements) encodes to zeros and keeps a zero residual. Shards are not
    # rounded to whole blocks: a partial last block costs one scale, padding could cost a block.
    shard = math.ceil(n / world)
    padded = torch.zeros(world * shard, dtype=torch.float32)
    padded[:n].copy_(flat)
    use_ef = state.error_feedback
    residual = state.residual(state.residuals, bucket, world * shard) if use_ef else None

    payload_size = compression.encoded_size(shard, state.config(codec, 0))
    send = torch.empty(world, payload_size, dtype=torch.uint8)
    for j in range(world):
        piece = slice(j * shard, (j + 1) * shard)
        config = state.config(codec, _mix(state.seed, step, bucket, rank, 0, j))
        _encode(config, padded[piece], None if residual is None else residual[piece], send[j])
    received = torch.empty_like(send)
    dist.all_to_all_single(received, send, group=group)

    reduced = torch.zeros(shard, dtype=torch.float32)
    for j in range(world):
        compression.decode_accumulate(received[j], reduced)
    reduced.div_(world)

    shard_residual = state.residual(state.shard_residuals, bucket, shard) if use_ef else None
    mine = torch.empty(payload_size, dtype=torch.uint8)
    _encode(state.config(codec, _mix(state.seed, step, bucket, rank, 1)), reduced,
            shard_residual, mine)
    gathered = torch.empty(world * payload_size, dtype=torch.uint8)
    dist.all_gather_into_tensor(gathered, mine, group=group)

    result = torch.empty(world * shard, dtype=torch.float32)
    for j in range(world):
        compression.decode(gathered[j * payload_size:(j + 1) * payload_size],
                           out=result[j * shard:(j + 1) * shard])
    state.bytes_sent += 2 * (world - 1) * payload_size
    return result[:n]


def _topk_allreduce(
    state: State, group: Optional[dist.ProcessGroup], bucket: int, flat: torch.Tensor, rank: int,
    world: int, step: int,
) -> torch.Tensor:
    """One quantisation: every rank's top-k payload is all-gathered and summed in fp32."""
    n = flat.numel()
    config = state.config("topk", _mix(state.seed, step, bucket, rank))
    payload_size = compression.encoded_size(n, config)
    residual = state.residual(state.residuals, bucket, n) if state.error_feedback else None
    mine = torch.empty(payload_size, dtype=torch.uint8)
    _encode(config, flat, residual, mine)
    gathered = torch.empty(world * payload_size, dtype=torch.uint8)
    dist.all_gather_into_tensor(gathered, mine, group=group)
    total = torch.zeros(n, dtype=torch.float32)
    for j in range(world):
        compression.decode_accumulate(gathered[j * payload_size:(j + 1) * payload_size], total)
    state.bytes_sent += (world - 1) * payload_size
    return total.div_(world)


def compressed_mean(
    state: State, codec: str, key: int, flat: torch.Tensor, step: Optional[int] = None
) -> torch.Tensor:
    """The mean over ``state.process_group`` of the float32 CPU vector ``flat`` (same length on
    every rank), sent through ``codec`` with the error-feedback residuals stored under ``key``;
    bit-identical on every rank. Counts ``state.bytes_sent``. Shared by the DDP hooks (key: the
    bucket index) and torchwan.DiLoCo (key: the fragment). ``step`` (default ``state.step``)
    seeds the codecs' random numbers."""
    step = state.step if step is None else step
    group = state.process_group
    # The group's own rank and size: a torchwan.elastic epoch's group is built without
    # init_process_group, so torch.distributed's registry (dist.get_rank) does not know it.
    world = group.size() if group is not None else dist.get_world_size()
    rank = group.rank() if group is not None else dist.get_rank()
    if codec == "topk":
        mean = _topk_allreduce(state, group, key, flat, rank, world, step)
    else:
        mean = _sharded_allreduce(state, codec, group, key, flat, rank, world, step)
    if not bool(torch.isfinite(mean).all()):
        state.reset_bucket(key)
    return mean


def _run(state: State, bucket: dist.GradBucket, codec: str) -> torch.futures.Future[torch.Tensor]:
    grad = bucket.buffer()
    world = dist.get_world_size(state.process_group)
    # Read on the caller's thread: the step and bucket order are what every rank agrees on.
    step = state.step
    index = bucket.index()
    if bucket.is_last():
        state.step += 1
    future: torch.futures.Future[torch.Tensor] = torch.futures.Future(
        devices=[grad.device] if grad.device.type != "cpu" else None)
    if world <= 1 or grad.numel() == 0:
        future.set_result(grad)
        return future
    # A copy is needed anyway for non-fp32 or device buckets; fp32 CPU ones are used in place
    # (DDP leaves the bucket alone until its future completes).
    flat = grad.detach().reshape(-1).to(device="cpu", dtype=torch.float32)

    def reduce() -> None:
        try:
            mean = compressed_mean(state, codec, index, flat, step)
            grad.copy_(mean.view_as(grad))
            state.bytes_dense += 2 * (world - 1) * grad.numel() * 4 // world
            future.set_result(grad)
        except BaseException as error:  # the bucket's future carries it to DDP's wait
            future.set_exception(error)

    state.worker().submit(reduce)
    return future


# DDP inspects the hook's annotations: the bucket must be annotated as dist.GradBucket (or not at
# all) and the result as torch.futures.Future[torch.Tensor] (or not at all), so none are strings.
def compressed(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """The codec named in ``state``."""
    return _run(state, bucket, state.codec)


def int8(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """int8 codes with one absmax scale per block (3.94x smaller than fp32 at block 256)."""
    return _run(state, bucket, "int8")


def fp8(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """fp8 e4m3 codes with one scale per block (3.94x)."""
    return _run(state, bucket, "fp8")


def fp16(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """IEEE half (2x)."""
    return _run(state, bucket, "fp16")


def bf16(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """bfloat16 (2x)."""
    return _run(state, bucket, "bf16")


def sign(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """One bit per element and a mean-magnitude scale per block (28x); needs error feedback."""
    return _run(state, bucket, "sign")


def topk(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """The ``topk_fraction`` largest magnitudes per rank; needs error feedback."""
    return _run(state, bucket, "topk")


__all__ = ["State", "bf16", "compressed", "compressed_mean", "fp16", "fp8", "int8", "sign", "topk"]
