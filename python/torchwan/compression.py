"""Gradient codecs on CPU float32 tensors (wire format and error bounds: docs/compression.md).

A thin typed layer over ``torchwan._C.compression``: the native functions read and write the
tensors' memory directly and release the GIL. Payloads are 1-D ``torch.uint8`` tensors that start
with a self-describing 40-byte header, so ``decode`` needs nothing but the bytes. Malformed
payloads and invalid parameters raise ``ValueError``; tensors of the wrong device or dtype raise
``TypeError``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import torch

from . import _C

_native = _C.compression

#: Codec names, in wire-format order: fp16 and bf16 casts, int8 and fp8 (e4m3) with one scale per
#: block, sign (1 bit per element plus a scale per block), topk (the largest magnitudes).
CODECS: tuple[str, ...] = tuple(_native.codecs)
#: The codec table (csrc/compression/codec_table.cc) by name: wire_id, alias (an older spelling
#: also accepted), needs_error_feedback, blocked, stochastic_rounding, cuda, description.
CODEC_TABLE: dict[str, dict[str, Any]] = {row["name"]: dict(row) for row in _native.codec_table}
HEADER_SIZE: int = int(_native.header_size)


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    codec: str = "int8"
    #: Elements per scale (int8, fp8, sign): a power of two in [32, 2**20]; ignored otherwise.
    block_size: int = 256
    #: topk: fraction of the elements kept, in (0, 1].
    topk_fraction: float = 0.01
    #: int8 only: unbiased rounding, its random numbers a pure function of (seed, index).
    stochastic_rounding: bool = False
    seed: int = 0

    def native_kwargs(self) -> dict[str, Any]:
        return {
            "codec": self.codec,
            "block_size": self.block_size,
            "topk_fraction": self.topk_fraction,
            "stochastic_rounding": self.stochastic_rounding,
            "seed": self.seed,
        }


def encoded_size(element_count: int, config: CodecConfig = CodecConfig()) -> int:
    """Exact payload size in bytes (header included) for ``element_count`` elements."""
    return int(
        _native.encoded_size(
            element_count,
            codec=config.codec,
            block_size=config.block_size,
            topk_fraction=config.topk_fraction,
            stochastic_rounding=config.stochastic_rounding,
        )
    )


def encode(
    tensor: torch.Tensor, config: CodecConfig = CodecConfig(), out: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """The payload of ``tensor``; written into the front of ``out`` (returned as a view) if given."""
    return _native.encode(tensor, out=out, **config.native_kwargs())


def encode_with_error_feedback(
    tensor: torch.Tensor,
    residual: torch.Tensor,
    config: CodecConfig = CodecConfig(),
    out: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Encodes ``tensor + residual`` and sets ``residual`` (in place) to what decoding loses."""
    return _native.encode_with_error_feedback(tensor, residual, out=out, **config.native_kwargs())


def decode(payload: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The float32 values of ``payload``, written into ``out`` when given."""
    return _native.decode(payload, out=out)


def decode_accumulate(payload: torch.Tensor, accumulator: torch.Tensor) -> None:
    """``accumulator += decode(payload)``, in place, one float addition per element."""
    _native.decode_accumulate(payload, accumulator)


def allreduce_bytes_sent(element_count: int, world_size: int, rank: int,
                         config: CodecConfig = CodecConfig()) -> int:
    """Payload bytes ``rank`` sends for one compressed allreduce of ``element_count`` floats over
    ``world_size`` ranks (both phases; the headers of pieces after a shard's first not counted)."""
    return int(_native.allreduce_bytes_sent(element_count, world_size, rank, codec=config.codec,
                                            block_size=config.block_size,
                                            topk_fraction=config.topk_fraction))


def inspect(payload: torch.Tensor) -> dict[str, Any]:
    """Validates the header against the payload's length and returns its fields."""
    return dict(_native.inspect(payload))


__all__ = [
    "CODECS",
    "CODEC_TABLE",
    "HEADER_SIZE",
    "allreduce_bytes_sent",
    "CodecConfig",
    "decode",
    "decode_accumulate",
    "encode",
    "encode_with_error_feedback",
    "encoded_size",
    "inspect",
]
