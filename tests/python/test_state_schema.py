"""The state schema: real model and optimizer states round-trip exactly; anything that is not a
tensor, plain value or container is refused on both sides, and a hostile schema never constructs
anything but those."""

from __future__ import annotations

import collections
import json
import math

import pytest
import torch

from torchwan.elastic import state_schema
from torchwan.elastic.state_schema import StateSchemaError


def _model_and_adam_state() -> dict:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 8)).square().sum().backward()
        optimizer.step()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": 3}


def _round_trip(state):
    schema, tensors, _ = state_schema.encode(state)
    wire = json.loads(json.dumps(schema, allow_nan=False))  # as it travels
    copies = [t.clone() for t in tensors]
    return state_schema.decode(wire, copies)


def _bytes(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor's bytes, so that NaN payloads and -0.0 compare exactly."""
    return tensor.reshape(-1).view(torch.uint8) if tensor.numel() else tensor.reshape(-1)


def _assert_identical(a, b, path="state"):
    assert type(a) is type(b), f"{path}: {type(a)} vs {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(_bytes(a), _bytes(b)), path
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), path
        for key in a:
            _assert_identical(a[key], b[key], f"{path}[{key!r}]")
        assert getattr(a, "_metadata", None) == getattr(b, "_metadata", None), path
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path


def test_model_and_adamw_state_round_trip_exactly_and_load() -> None:
    state = _model_and_adam_state()
    received = _round_trip(state)
    _assert_identical(state, received)
    # The received state loads into fresh objects (module _metadata included).
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )
    model.load_state_dict(received["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    optimizer.load_state_dict(received["optimizer"])
    assert optimizer.state_dict()["param_groups"][0]["betas"] == (0.9, 0.95)


def test_builtin_optimizers_round_trip() -> None:
    for make in (
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        lambda p: torch.optim.Adam(p, lr=1e-3, amsgrad=True),
        lambda p: torch.optim.RMSprop(p, lr=1e-3, centered=True),
        lambda p: torch.optim.Adagrad(p, lr=1e-2),
    ):
        model = torch.nn.Linear(4, 4)
        optimizer = make(model.parameters())
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()
        state = optimizer.state_dict()
        _assert_identical(state, _round_trip(state))


def test_checkpoint_style_nesting_and_plain_values() -> None:
    state = {
        "app": {"model": {"w": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)}},
        "extra": [1, 2**80, -0.0, float("inf"), float("nan"), 1e-310, None, True, "text", (1, "a")],
        3: torch.tensor(True),
        "scalars": torch.tensor(2.5, dtype=torch.float64),
        "empty": torch.empty(0, 4),
        "fp8": torch.randn(4).to(torch.float8_e4m3fn),
        "complex": torch.randn(3, dtype=torch.complex64),
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
    }
    _assert_identical(state, _round_trip(state))


@pytest.mark.parametrize(
    "value",
    [object(), {1.5: torch.ones(1)}, torch.ones(2).to_sparse(), {"f": lambda: 0}, b"bytes"],
)
def test_unsendable_values_are_named(value) -> None:
    with pytest.raises(StateSchemaError, match="state"):
        state_schema.encode({"x": value})


@pytest.mark.parametrize(
    "schema, words",
    [
        ({"t": "pickle", "v": "cos\nsystem\n"}, "unknown node type"),
        ({"t": "tensor", "i": 5}, "tensor index"),
        ({"t": "dict", "k": [{"t": "float", "v": "0x1p+0"}], "v": [{"t": "none"}]}, "key"),
        ({"t": "int", "v": "1" * 5000}, "int node"),
        ({"t": "float", "v": "__import__('os')"}, "float node"),
        ({"t": "list", "v": "notalist"}, "without items"),
        ("just a string", "typed object"),
        ({"t": "dict", "k": [{"t": "str", "v": "a"}] * 2, "v": [{"t": "none"}] * 2}, "duplicate"),
    ],
)
def test_hostile_schemas_are_refused_with_the_path(schema, words) -> None:
    with pytest.raises(StateSchemaError, match=words):
        state_schema.decode(schema, [])


def test_deep_nesting_is_refused() -> None:
    schema: dict = {"t": "none"}
    for _ in range(state_schema.MAX_DEPTH + 2):
        schema = {"t": "list", "v": [schema]}
    with pytest.raises(StateSchemaError, match="deeper"):
        state_schema.decode(schema, [])


@pytest.mark.parametrize(
    "table, total, words",
    [
        ([["torch.Tensor", [2]]], 8, "unknown dtype"),
        ([["float32", [-1]]], 4, "invalid shape"),
        ([["float32", [2**40, 2**40]]], 4, "more than"),
        ([["float32", [2]]], 4, "more than"),
        ([["float32", [1]]], 8, "announced"),
        ("x", 0, "not a list"),
    ],
)
def test_hostile_tensor_tables_are_refused(table, total, words) -> None:
    with pytest.raises(StateSchemaError, match=words):
        state_schema.parse_tensor_specs(table, total)
