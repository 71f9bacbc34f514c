"""State transfer between real processes over the wan backend, on both transports: a model with
AdamW state arrives bit-exact and in place; a hostile source (a crafted pickle, a schema that is
not one, corrupted chunks) is refused on every member, runs no code, and leaves the receiver's
state as it was."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from multiprocess import run_ranks

WORLD = 3
TRANSPORTS = ["ucx", "zmq"]


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Embedding(300, 32), torch.nn.Linear(32, 64), torch.nn.LayerNorm(64),
        torch.nn.Linear(64, 5),
    ).to(torch.float32)


def _trained(seed: int, steps: int):
    model = _model(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        optimizer.zero_grad()
        tokens = torch.randint(0, 300, (8, 4), generator=generator)
        model(tokens).square().mean().backward()
        optimizer.step()
    return model, optimizer


def _state(model, optimizer) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "mixed": {"half": torch.arange(7, dtype=torch.float16), "flags": torch.tensor([1, 0], dtype=torch.bool),
                  "strided": torch.arange(12, dtype=torch.int64).reshape(3, 4).t()},
        "step": 17,
    }


def _fingerprint(state) -> list:
    """Everything in a state, flattened to comparable plain values (tensor bytes included)."""
    out = []

    def walk(value, path):
        if isinstance(value, torch.Tensor):
            data = value.contiguous().reshape(-1)
            out.append((path, str(value.dtype), tuple(value.shape), data.view(torch.uint8).tolist() if data.numel() else []))
        elif isinstance(value, dict):
            for key in value:
                walk(value[key], f"{path}[{key!r}]")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")
        else:
            out.append((path, repr(value)))

    walk(state, "state")
    return out


def transfer_model_and_adam(rank: int, world_size: int) -> dict:
    from torchwan.elastic import state_transfer

    group = dist.group.WORLD
    # Rank 1 is the source, 3 steps ahead; rank 0 already has the same structure (in place),
    # rank 2 is a fresh joiner whose optimizer has no state yet (allocated).
    model, optimizer = _trained(seed=rank, steps=3 if rank == 1 else (1 if rank == 0 else 0))
    expected = _fingerprint(_state(*_trained(seed=1, steps=3)))
    pointers_before = [p.data_ptr() for p in model.parameters()]

    def set_state(state):
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        received["state"] = state

    received: dict = {}
    stats = state_transfer.Stats()
    # Small chunks: tensors span chunks and chunks hold many tensors.
    state_transfer.send_or_receive(
        group, 1, lambda: _state(model, optimizer), set_state, chunk_bytes=4096 + 13, stats=stats
    )
    after = _fingerprint(_state(model, optimizer))
    return {
        "matches": after == expected,
        "received_matches": rank == 1 or _fingerprint(received["state"]) == expected,
        "same_storage": pointers_before == [p.data_ptr() for p in model.parameters()],
        "in_place": stats.in_place,
        "tensors": stats.tensors,
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_model_and_adam_state_arrive_bit_exact(transport: str) -> None:
    results = run_ranks(transfer_model_and_adam, WORLD, env={"TORCHWAN_TRANSPORT": transport})
    for rank, result in enumerate(results):
        assert result["matches"], f"rank {rank} state differs from the source's"
        assert result["received_matches"], rank
        assert result["same_storage"], f"rank {rank}: parameters were reallocated"
    # Same structure: everything is written in place except the one strided (transposed) tensor.
    assert results[0]["in_place"] == results[0]["tensors"] - 1 > 10
    assert 0 < results[2]["in_place"] < results[2]["tensors"]  # joiner: model yes, Adam state no


class _CreatesFile:
    """A pickle that would create a file when unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _broadcast_bytes(data: bytes, size: int | None = None) -> None:
    tensor = torch.zeros(size or len(data), dtype=torch.uint8)
    tensor[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    dist.broadcast(tensor, src=0)


def hostile_source(rank: int, world_size: int, attack: str, marker: str) -> dict:
    from torchwan.elastic import state_transfer
    from torchwan.elastic.state_transfer import StateTransferError, _PREAMBLE, _digest

    payload = pickle.dumps({"model": _CreatesFile(marker)})
    model = _model(seed=5)
    before = _fingerprint(model.state_dict())
    applied = []
    error = None
    if rank == 0:
        # The hostile "source" speaks the wire directly.
        if attack == "pickle-as-preamble":
            _broadcast_bytes(payload[:64], 64)
        else:
            if attack == "pickle-as-schema":
                schema, total, chunks = payload, 0, 1
            else:  # corrupt-chunk: a valid schema, then a chunk whose checksum does not match
                schema = (
                    b'{"schema":{"t":"dict","k":[{"t":"str","v":"w"}],"v":[{"t":"tensor","i":0}]},'
                    b'"tensors":[["float32",[4]]]}'
                )
                total, chunks = 16, 1 << 20
            preamble = _PREAMBLE.pack(b"TWSTATE\x00", 1, len(schema), total, chunks, _digest(schema, 32))
            _broadcast_bytes(preamble, 64)
            _broadcast_bytes(schema)
            if total:
                _broadcast_bytes(b"\x01" * 16 + b"\x00" * 4)  # data + a wrong checksum
            flags = torch.zeros(world_size, dtype=torch.int64)
            dist.all_reduce(flags)
            error = f"flags {flags.tolist()}"
    else:
        try:
            state_transfer.send_or_receive(
                dist.group.WORLD, 0, model.state_dict, lambda s: applied.append(s)
            )
        except StateTransferError as refused:
            error = f"{type(refused).__name__}: {refused} (source {refused.source})"
    return {
        "error": error,
        "applied": bool(applied),
        "untouched": _fingerprint(model.state_dict()) == before,
        "file_created": os.path.exists(marker),
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("attack", ["pickle-as-preamble", "pickle-as-schema", "corrupt-chunk"])
def test_hostile_source_is_refused_and_runs_nothing(transport: str, attack: str, tmp_path: Path) -> None:
    marker = str(tmp_path / "pwned")
    results = run_ranks(
        hostile_source, WORLD, attack, marker, env={"TORCHWAN_TRANSPORT": transport}
    )
    assert not os.path.exists(marker), "a received pickle ran code"
    for rank, result in enumerate(results[1:], start=1):
        assert result["error"] and "rank 0" in result["error"], (rank, result)
        assert "source 0" in result["error"], result
        assert not result["applied"], rank
        assert result["untouched"], f"rank {rank}: state changed"
        assert not result["file_created"]
    if attack != "pickle-as-preamble":
        # Every receiver reported its failure to the group, the hostile source included.
        assert results[0]["error"] == f"flags {[0] + [1] * (WORLD - 1)}"
    words = {"pickle-as-preamble": "bad magic", "pickle-as-schema": "refused before any",
             "corrupt-chunk": "do not match the checksum"}[attack]
    assert words in results[1]["error"]
