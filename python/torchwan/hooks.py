"""DDP communication hooks that compress gradients with torchwan's codecs.

::

    state = torchwan.hooks.State(codec="int8")          # or fp8, fp16, bf16, sign, topk
    model.register_comm_hook(state, torchwan.hooks.compressed)
    # equivalently, one function per codec (the codec in the state is then ignored):
    model.register_comm_hook(torchwan.hooks.State(), torchwan.hooks.int8)

The result is the average over ranks, as with DDP's default hook. The group must use the wan
backend.

Every codec runs the backend's one compressed allreduce (csrc/compressed_allreduce.h), the same the
``compression`` option uses, here with error feedback: each rank encodes the other ranks' shards of
its bucket (adding back what its last encode lost), an all-to-all hands shard j to rank j, which
sums the W contributions in fp32, re-encodes the sum (with a second residual) and sends it to every
rank. Each element is quantised twice whatever the world size, each rank sends about 2·(W−1)/W of
the bucket's compressed size, and every rank gets the same bits.

The hook returns at once with the backend's own future: the bucket is queued on the group's
collective thread like any collective (in the order DDP hands buckets over, the same on every
rank), so DDP overlaps its communication with the rest of backward. Gradients on a GPU are encoded
and decoded there, on the backend's communication stream, with their residuals on the GPU; only
the compressed payloads cross PCIe (``torchwan.stats()["pcie_bytes"]``).
"""

import dataclasses
from typing import Optional

import torch
import torch.distributed as dist

from . import _C, compression
from .compression import CodecConfig

_MASK64 = (1 << 64) - 1


def _mix(*values: int) -> int:
    """A 64-bit hash of the values: distinct seeds for every (step, key), because the codec's
    random numbers depend only on (seed, element index); the backend mixes in the rank, stage
    and piece of each encode."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h ^= value & _MASK64
        h = (h * 0xBF58476D1CE4E5B9) & _MASK64
        h ^= h >> 31
    return h


@dataclasses.dataclass(eq=False)
class State:
    """Per-model hook state: the codec settings and, per DDP bucket, the error-feedback residuals.

    ``bytes_sent`` and ``bytes_dense`` count, for this rank, the payload bytes the hook sent to
    other ranks and what a ring allreduce of the same fp32 buckets would send; their ratio is the
    saving on the wire."""

    process_group: Optional[dist.ProcessGroup] = None
    codec: str = "int8"
    block_size: int = 256
    error_feedback: bool = True
    topk_fraction: float = 0.01
    seed: int = 0
    stochastic_rounding: bool = False
    step: int = dataclasses.field(default=0, init=False)
    # Key (bucket index, DiLoCo fragment) -> the error-feedback residuals the backend's compressed
    # allreduce keeps for it: what this rank's encodes of the other ranks' shards lost, and what
    # the re-encode of the shard this rank sums lost (both the key's length).
    residuals: dict[int, torch.Tensor] = dataclasses.field(
        default_factory=dict, init=False, repr=False)
    shard_residuals: dict[int, torch.Tensor] = dataclasses.field(
        default_factory=dict, init=False, repr=False)
    bytes_sent: int = dataclasses.field(default=0, init=False)
    bytes_dense: int = dataclasses.field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.codec not in compression.CODECS:
            raise ValueError(f"torchwan.hooks: unknown codec {self.codec!r}, expected one of "
                             f"{', '.join(compression.CODECS)}")

    def config(self, codec: str, seed: int) -> CodecConfig:
        return CodecConfig(
            codec=codec,
            block_size=self.block_size,
            topk_fraction=self.topk_fraction,
            stochastic_rounding=(self.stochastic_rounding
                                 and compression.CODEC_TABLE[codec]["stochastic_rounding"]),
            seed=seed,
        )

    def residual(self, table: dict[int, torch.Tensor], bucket: int,
                 like: torch.Tensor) -> torch.Tensor:
        """The bucket's residual, zeroed when new or resized (DDP rebuilds its buckets after the
        first iteration, so an index may then name different parameters). It lives where the
        backend encodes the bucket: on its GPU when the codecs run there, else on the CPU (one
        restored from a state dict elsewhere is moved there)."""
        device = (like.device if like.is_cuda and _C.compression.device_codecs
                  else torch.device("cpu"))
        residual = table.get(bucket)
        if residual is None or residual.numel() != like.numel():
            residual = torch.zeros(like.numel(), dtype=torch.float32, device=device)
            table[bucket] = residual
        elif residual.device != device:
            residual = residual.to(device)
            table[bucket] = residual
        return residual

    def reset_bucket(self, bucket: int) -> None:
        """Forgets a bucket's residuals. (After a non-finite result the backend zeroes them
        itself: NaN or Inf kept there would poison every later step.)"""
        self.residuals.pop(bucket, None)
        self.shard_residuals.pop(bucket, None)


def _backend(group: Optional[dist.ProcessGroup]) -> "_C.ProcessGroupWan":
    """The wan backend behind ``group`` (default: the default group)."""
    if isinstance(group, _C.ProcessGroupWan):
        return group
    group = group if group is not None else dist.group.WORLD
    if group is None:
        raise RuntimeError("torchwan.hooks: no default process group; set State.process_group")
    try:
        backend = group._get_backend(torch.device("cpu"))
    except RuntimeError as error:
        raise ValueError(f"torchwan.hooks: the group has no CPU backend: {error}") from None
    if not isinstance(backend, _C.ProcessGroupWan):
        raise ValueError("torchwan.hooks: the process group must use the 'wan' backend (its CPU "
                         f"backend is {type(backend).__name__})")
    return backend


def compressed_allreduce(
    state: State, codec: str, key: int, tensor: torch.Tensor, step: Optional[int] = None
) -> torch.futures.Future:
    """Queues the mean over ``state.process_group`` of the contiguous floating-point ``tensor``
    (same length on every rank; CPU or GPU), in place, sent through ``codec`` with the
    error-feedback residuals stored under ``key``, and returns the backend's future (its value:
    ``[tensor]``); bit-identical on every rank. Counts ``state.bytes_sent``. ``step`` (default
    ``state.step``) seeds the codecs' random numbers."""
    step = state.step if step is None else step
    backend = _backend(state.process_group)
    numel = tensor.numel()
    config = state.config(codec, _mix(state.seed, step, key))
    contribution = reduction = None
    if state.error_feedback:
        contribution = state.residual(state.residuals, key, tensor)
        reduction = state.residual(state.shard_residuals, key, tensor)
    future = _C.compression.allreduce(backend, tensor, contribution, reduction, average=True,
                                      **config.native_kwargs())
    state.bytes_sent += compression.allreduce_bytes_sent(numel, backend.size(), backend.rank(),
                                                         config)
    return future


def compressed_mean(
    state: State, codec: str, key: int, flat: torch.Tensor, step: Optional[int] = None
) -> torch.Tensor:
    """:func:`compressed_allreduce` of the float32 vector ``flat``, waited for; returns ``flat``
    holding the mean. Shared by the DDP hooks' tests and torchwan.DiLoCo (key: the fragment)."""
    compressed_allreduce(state, codec, key, flat, step).wait()
    return flat


def _run(state: State, bucket: dist.GradBucket, codec: str) -> torch.futures.Future[torch.Tensor]:
    grad = bucket.buffer()
    world = _backend(state.process_group).size()
    # Read on the caller's thread: the step and bucket order are what every rank agrees on.
    step = state.step
    index = bucket.index()
    if bucket.is_last():
        state.step += 1
    if world <= 1 or grad.numel() == 0:
        future: torch.futures.Future[torch.Tensor] = torch.futures.Future(
            devices=[grad.device] if grad.device.type != "cpu" else None)
        future.set_result(grad)
        return future
    queued = compressed_allreduce(state, codec, index, grad, step)
    state.bytes_dense += 2 * (world - 1) * grad.numel() * 4 // world
    return queued.then(lambda done: done.value()[0])


# DDP inspects the hook's annotations: the bucket must be annotated as dist.GradBucket (or not at
# all) and the result as torch.futures.Future[torch.Tensor] (or not at all), so none are strings.
def compressed(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """The codec named in ``state``."""
    return _run(state, bucket, state.codec)


def _codec_hook(codec: str):
    """The hook that always uses ``codec`` (``state.codec`` is then ignored); its documentation is
    the codec's line of the codec table."""

    def hook(state: State, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        return _run(state, bucket, codec)

    hook.__name__ = hook.__qualname__ = codec
    hook.__doc__ = compression.CODEC_TABLE[codec]["description"]
    return hook


int8 = _codec_hook("int8")
fp8 = _codec_hook("fp8")
fp16 = _codec_hook("fp16")
bf16 = _codec_hook("bf16")
sign = _codec_hook("sign")
topk = _codec_hook("topk")


__all__ = ["State", "bf16", "compressed", "compressed_allreduce", "compressed_mean", "fp16", "fp8",
           "int8", "sign", "topk"]
