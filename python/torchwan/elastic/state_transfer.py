"""Streams a state dict from one member to the others over a process group, tensor bytes only.

Messages, all broadcasts from the source:
  1. preamble (fixed 64 bytes): magic, format version, schema length, total tensor bytes, chunk
     size, and the schema's digest;
  2. the schema (JSON, see state_schema.py): structure, plain values, tensor dtypes and shapes;
  3. the tensors' bytes back to back, cut into chunks of `chunk_bytes`, each followed by the
     CRC-32 of that chunk, several chunks in flight at once.
The checksums catch corrupted, truncated or stray bytes; they are no authentication (whoever can
inject a chunk can inject its checksum too), which is the data plane's job (encryption), so a
cryptographic hash, 4-6x slower here, would buy nothing.
A receiver checks the preamble and the schema before it touches any state, checks each chunk's
checksum before writing it, and writes straight into its own existing tensors where path, dtype and
shape match (so memory grows by a few chunks, not by a copy of the state). Whatever a receiver
finds wrong, it keeps draining the chunks so the group stays in step, and at the end one small
all-reduce tells every member, the source included, whether each receiver succeeded; all then
raise the same StateTransferError naming the source rank. Nothing received is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import time
import zlib
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist

from . import state_schema

MAGIC = b"TWSTATE\x00"
FORMAT_VERSION = 1
# magic, version, schema bytes, tensor bytes, chunk bytes, schema digest
_PREAMBLE = struct.Struct("<8sIIQQ32s")
PREAMBLE_BYTES = 64
CHECKSUM_BYTES = 4
DEFAULT_CHUNK_BYTES = 16 << 20
# Chunks in flight: enough to keep a long link busy, few enough to bound memory.
DEFAULT_WINDOW = 4
MAX_SCHEMA_BYTES = 256 << 20
MAX_CHUNK_BYTES = 1 << 30

StateDict = dict[str, Any]


class StateTransferError(RuntimeError):
    """State could not be transferred; names the source rank and, where known, the cause."""

    def __init__(self, message: str, source: int) -> None:
        super().__init__(message)
        self.source = source


def _digest(data: memoryview | bytes, size: int) -> bytes:
    return hashlib.blake2b(data, digest_size=size).digest()


def _checksum(data) -> bytes:
    return struct.pack("<I", zlib.crc32(data))


def _byte_view(tensor: torch.Tensor) -> torch.Tensor:
    """A flat uint8 view of a contiguous tensor's bytes (no copy)."""
    flat = tensor.reshape(-1)
    if flat.numel() == 0:
        return torch.empty(0, dtype=torch.uint8, device=tensor.device)
    return flat.view(torch.uint8)


def _preamble_tensor(schema_bytes: int, total: int, chunk_bytes: int, digest: bytes) -> torch.Tensor:
    packed = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, schema_bytes, total, chunk_bytes, digest)
    tensor = torch.zeros(PREAMBLE_BYTES, dtype=torch.uint8)
    tensor[: len(packed)] = torch.frombuffer(bytearray(packed), dtype=torch.uint8)
    return tensor


class _Span:
    """One tensor's place in the byte stream."""

    __slots__ = ("start", "end", "index")

    def __init__(self, start: int, end: int, index: int) -> None:
        self.start, self.end, self.index = start, end, index


def _spans(sizes: list[int]) -> list[_Span]:
    spans, offset = [], 0
    for index, size in enumerate(sizes):
        spans.append(_Span(offset, offset + size, index))
        offset += size
    return spans


class _ChunkCursor:
    """Walks the tensors' byte stream chunk by chunk, yielding (span, lo, hi, chunk offset)."""

    def __init__(self, spans: list[_Span]) -> None:
        self._spans = [s for s in spans if s.end > s.start]
        self._next = 0

    def pieces(self, begin: int, end: int):
        while self._next < len(self._spans) and self._spans[self._next].end <= begin:
            self._next += 1
        position = self._next
        while position < len(self._spans) and self._spans[position].start < end:
            span = self._spans[position]
            lo, hi = max(begin, span.start), min(end, span.end)
            yield span, lo - span.start, hi - span.start, lo - begin
            position += 1


def _broadcast(group: dist.ProcessGroup, tensor: torch.Tensor, source: int) -> Any:
    options = dist.BroadcastOptions()
    options.rootRank = source
    return group.broadcast([tensor], options)


class Stats:
    """What a transfer did, for logs and benchmarks."""

    def __init__(self) -> None:
        self.bytes = 0
        self.tensors = 0
        self.in_place = 0
        self.seconds = 0.0


def send_or_receive(
    group: dist.ProcessGroup,
    source: int,
    get_state: Callable[[], StateDict],
    set_state: Callable[[StateDict], None],
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    window: int = DEFAULT_WINDOW,
    stats: Optional[Stats] = None,
) -> None:
    """Copies the state of rank `source` to every other member of `group` (a collective: every
    member calls it with the same source). Raises StateTransferError on every member if any
    receiver could not take the state; a receiver's set_state is then not called."""
    started = time.monotonic()
    stats = stats or Stats()
    error: Optional[StateTransferError] = None
    if group.rank() == source:
        _send(group, source, get_state(), chunk_bytes, window, stats)
    else:
        error = _receive(group, source, get_state, set_state, window, stats)
    # Everyone learns whether every receiver succeeded, so no member continues alone.
    flags = torch.zeros(group.size(), dtype=torch.int64)
    flags[group.rank()] = int(error is not None)
    options = dist.AllreduceOptions()
    options.reduceOp = dist.ReduceOp.SUM
    group.allreduce([flags], options).wait()
    stats.seconds = time.monotonic() - started
    if error is not None:
        raise error
    bad = [rank for rank, flag in enumerate(flags.tolist()) if flag]
    if bad:
        raise StateTransferError(
            f"state transfer from rank {source} failed at rank(s) {bad}; see their errors",
            source,
        )


# ------------------------------------------------------------------------------------- source
def _send(
    group: dist.ProcessGroup,
    source: int,
    state: StateDict,
    chunk_bytes: int,
    window: int,
    stats: Stats,
) -> None:
    try:
        schema, tensors, _ = state_schema.encode(state)
    except state_schema.StateSchemaError as cause:
        # Tell the receivers (an empty schema) so they fail now instead of at their deadline.
        _broadcast(group, _preamble_tensor(0, 0, 0, bytes(32)), source).wait()
        raise StateTransferError(f"rank {source} cannot send its state: {cause}", source) from cause
    # Strided tensors are made contiguous one at a time, on their own device, while they are sent.
    sources: list[Optional[torch.Tensor]] = [t if t.is_contiguous() else None for t in tensors]
    specs = [state_schema.TensorSpec(t.dtype, tuple(t.shape)) for t in tensors]
    total = sum(spec.nbytes for spec in specs)
    header = json.dumps(
        {"schema": schema, "tensors": [spec.to_wire() for spec in specs]},
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    preamble = _preamble_tensor(len(header), total, chunk_bytes, _digest(header, 32))
    _broadcast(group, preamble, source).wait()
    _broadcast(group, torch.frombuffer(bytearray(header), dtype=torch.uint8), source).wait()

    cursor = _ChunkCursor(_spans([spec.nbytes for spec in specs]))
    in_flight: list[Any] = []
    buffers = [torch.empty(chunk_bytes + CHECKSUM_BYTES, dtype=torch.uint8) for _ in range(window)]
    for number, begin in enumerate(range(0, total, chunk_bytes)):
        end = min(begin + chunk_bytes, total)
        if len(in_flight) == window:
            in_flight.pop(0).wait()
        buffer = buffers[number % window]
        for span, lo, hi, at in cursor.pieces(begin, end):
            tensor = sources[span.index]
            if tensor is None:
                tensor = tensors[span.index].contiguous()
                sources[span.index] = tensor  # kept for the tensor's remaining chunks
            buffer[at : at + hi - lo].copy_(_byte_view(tensor)[lo:hi])
            if hi == span.end - span.start:
                sources[span.index] = None  # sent: release a contiguous copy at once
        size = end - begin
        buffer[size : size + CHECKSUM_BYTES] = torch.frombuffer(
            bytearray(_checksum(buffer[:size].numpy())), dtype=torch.uint8
        )
        in_flight.append(_broadcast(group, buffer[: size + CHECKSUM_BYTES], source))
    for work in in_flight:
        work.wait()
    stats.bytes, stats.tensors = total, len(tensors)


# ----------------------------------------------------------------------------------- receiver
def _existing_tensors(get_state: Callable[[], StateDict]) -> dict[str, torch.Tensor]:
    """This member's current tensors by path, to be written in place when they match."""
    try:
        _, tensors, paths = state_schema.encode(get_state())
    except state_schema.StateSchemaError:
        return {}
    return dict(zip(paths, tensors))


def _parse_preamble(raw: bytes, source: int) -> tuple[int, int, int, bytes]:
    magic, version, schema_bytes, total, chunk_bytes, digest = _PREAMBLE.unpack_from(raw)
    if magic != MAGIC:
        raise StateTransferError(
            f"state from rank {source} is not in torchwan's state format (bad magic); "
            "refused without decoding it",
            source,
        )
    if version != FORMAT_VERSION:
        raise StateTransferError(
            f"state from rank {source} has format version {version}, this member reads "
            f"{FORMAT_VERSION}",
            source,
        )
    if schema_bytes == 0:
        raise StateTransferError(f"rank {source} could not send its state (see its error)", source)
    if not 0 < schema_bytes <= MAX_SCHEMA_BYTES or not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
        raise StateTransferError(
            f"state from rank {source} announces out-of-range sizes (schema {schema_bytes} "
            f"bytes, chunks {chunk_bytes} bytes)",
            source,
        )
    return schema_bytes, total, chunk_bytes, digest


def _receive(
    group: dist.ProcessGroup,
    source: int,
    get_state: Callable[[], StateDict],
    set_state: Callable[[StateDict], None],
    window: int,
    stats: Stats,
) -> Optional[StateTransferError]:
    """Returns the error to raise (after the group's final agreement) or None on success. A
    preamble that cannot be read raises at once: without it the stream cannot be drained."""
    preamble = torch.empty(PREAMBLE_BYTES, dtype=torch.uint8)
    _broadcast(group, preamble, source).wait()
    schema_bytes, total, chunk_bytes, schema_digest = _parse_preamble(
        preamble.numpy().tobytes(), source
    )
    header = torch.empty(schema_bytes, dtype=torch.uint8)
    _broadcast(group, header, source).wait()

    error: Optional[StateTransferError] = None
    targets: list[torch.Tensor] = []
    schema: Any = None
    try:
        raw = header.numpy().tobytes()
        if _digest(raw, 32) != schema_digest:
            raise state_schema.StateSchemaError("schema digest does not match the announced one")
        parsed = json.loads(raw)
        if not isinstance(parsed, dict) or set(parsed) != {"schema", "tensors"}:
            raise state_schema.StateSchemaError("schema is not {schema, tensors}")
        specs = state_schema.parse_tensor_specs(parsed["tensors"], total)
        schema = parsed["schema"]
        state_schema.decode(schema, [None] * len(specs))  # checks every node before any write
        existing = _existing_tensors(get_state)
        for spec, path in zip(specs, state_schema.paths_of(schema)):
            mine = existing.get(path)
            if mine is not None and spec.matches(mine) and mine.is_contiguous():
                targets.append(mine)
                stats.in_place += 1
            else:
                targets.append(torch.empty(spec.shape, dtype=spec.dtype))
        sizes = [spec.nbytes for spec in specs]
    except (state_schema.StateSchemaError, ValueError, RecursionError) as cause:
        error = StateTransferError(
            f"state from rank {source} refused before any of it was applied: {cause}", source
        )
        sizes = [total]

    cursor = _ChunkCursor(_spans(sizes))
    buffers = [torch.empty(chunk_bytes + CHECKSUM_BYTES, dtype=torch.uint8) for _ in range(window)]
    in_flight: list[tuple[Any, torch.Tensor, int, int]] = []

    def settle() -> None:
        nonlocal error
        work, buffer, begin, end = in_flight.pop(0)
        work.wait()
        if error is not None:
            return  # keep draining, write nothing
        size = end - begin
        announced = buffer[size : size + CHECKSUM_BYTES].numpy().tobytes()
        if _checksum(buffer[:size].numpy()) != announced:
            error = StateTransferError(
                f"state from rank {source}: bytes {begin}-{end} do not match the checksum the "
                "source announced; the transfer was corrupted or tampered with. Tensors "
                "before that point were already updated; the state was not applied",
                source,
            )
            return
        for span, lo, hi, at in cursor.pieces(begin, end):
            _byte_view(targets[span.index])[lo:hi].copy_(buffer[at : at + hi - lo])

    next_report = time.monotonic() + 2.0  # a long transfer says how far it got, every ~2 s
    for number, begin in enumerate(range(0, total, chunk_bytes)):
        end = min(begin + chunk_bytes, total)
        if time.monotonic() >= next_report:
            next_report = time.monotonic() + 2.0
            logging.getLogger("torchwan.elastic").info(
                "state transfer from rank %d: %d/%d MiB", source, begin >> 20, total >> 20)
        if len(in_flight) == window:
            settle()
        buffer = buffers[number % window][: end - begin + CHECKSUM_BYTES]
        in_flight.append((_broadcast(group, buffer, source), buffer, begin, end))
    while in_flight:
        settle()
    if error is not None:
        return error
    try:
        set_state(state_schema.decode(schema, targets))
    except Exception as cause:  # noqa: BLE001  (the member's own loader; every member must hear)
        return StateTransferError(
            f"state from rank {source} arrived intact but set_state refused it: {cause}", source
        )
    stats.bytes, stats.tensors = total, len(targets)
    return None
