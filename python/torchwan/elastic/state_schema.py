"""A state dict as a schema of plain values plus a list of tensors, and back, without pickle.

The receiving side of a state transfer must never construct an object a peer chose, so the
nested structure travels as JSON whose every node names one of a closed set of types:

    {"t": "dict", "k": [key, ...], "v": [node, ...]}        keys: {"t": "str"|"int", ...} nodes
    {"t": "odict", ...same..., "meta": node}                 OrderedDict (+ nn.Module _metadata)
    {"t": "list" | "tuple", "v": [node, ...]}
    {"t": "tensor", "i": index}                              index into the tensor table
    {"t": "str", "v": "..."}   {"t": "int", "v": "123"}       ints as text: any size, exact
    {"t": "float", "v": "0x1.8p+1"}                           float.hex(): exact, inf and nan too
    {"t": "bool", "v": true}   {"t": "none"}

Tensors are described as (dtype name, shape) from an allow-list of dtypes and sent as raw bytes
elsewhere. Decoding checks every node and bounds the depth and the counts, and raises
StateSchemaError naming the path of the first bad node.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Optional

import torch

# Dtypes a state may hold, by the name used on the wire; nothing else is ever constructed.
WIRE_DTYPES: dict[str, torch.dtype] = {
    name: getattr(torch, name)
    for name in (
        "bool",
        "uint8",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
    )
    if isinstance(getattr(torch, name, None), torch.dtype)
}
_DTYPE_NAMES = {dtype: name for name, dtype in WIRE_DTYPES.items()}

# Bounds on what a decoder accepts: far above any real state dict, far below trouble.
MAX_DEPTH = 64
MAX_TENSOR_DIMS = 32
MAX_INT_DIGITS = 4300  # Python's own default limit for int(str)


class StateSchemaError(ValueError):
    """A state that cannot be sent (an unsupported type) or a received schema that is invalid."""


class TensorSpec:
    """What the receiver needs to allocate or check a tensor: dtype and shape."""

    __slots__ = ("dtype", "shape")

    def __init__(self, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
        self.dtype = dtype
        self.shape = shape

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * _element_size(self.dtype)

    def to_wire(self) -> list:
        return [_DTYPE_NAMES[self.dtype], list(self.shape)]

    def matches(self, tensor: torch.Tensor) -> bool:
        return tensor.dtype == self.dtype and tuple(tensor.shape) == self.shape


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


# ------------------------------------------------------------------------------------- encode
def encode(state: Any) -> tuple[dict, list[torch.Tensor], list[str]]:
    """Returns (schema, tensors in schema order, each tensor's path for messages)."""
    tensors: list[torch.Tensor] = []
    paths: list[str] = []

    def node(value: Any, path: str, depth: int) -> dict:
        if depth > MAX_DEPTH:
            raise StateSchemaError(f"state nests deeper than {MAX_DEPTH} levels at {path}")
        if isinstance(value, torch.Tensor):
            if type(value) is not torch.Tensor and not isinstance(value, torch.nn.Parameter):
                raise StateSchemaError(
                    f"{path}: tensor subclass {type(value).__name__} cannot be sent; "
                    "convert it to a plain tensor (e.g. DTensor.full_tensor())"
                )
            if value.is_sparse or value.layout != torch.strided:
                raise StateSchemaError(f"{path}: only dense (strided) tensors can be sent")
            if value.dtype not in _DTYPE_NAMES:
                raise StateSchemaError(f"{path}: dtype {value.dtype} cannot be sent")
            tensors.append(value.detach())
            paths.append(path)
            return {"t": "tensor", "i": len(tensors) - 1}
        if isinstance(value, bool):
            return {"t": "bool", "v": value}
        if isinstance(value, int):
            return {"t": "int", "v": str(value)}
        if isinstance(value, float):
            return {"t": "float", "v": value.hex()}
        if isinstance(value, str):
            return {"t": "str", "v": value}
        if value is None:
            return {"t": "none"}
        if isinstance(value, dict):
            keys, values = [], []
            for key, item in value.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise StateSchemaError(
                        f"{path}: dict key {key!r} of type {type(key).__name__} cannot be sent"
                    )
                keys.append(node(key, f"{path}[{key!r}]", depth + 1))
                values.append(node(item, f"{path}[{key!r}]", depth + 1))
            encoded = {"t": "dict", "k": keys, "v": values}
            if isinstance(value, collections.OrderedDict):
                encoded["t"] = "odict"
                metadata = getattr(value, "_metadata", None)
                if metadata is not None:
                    encoded["meta"] = node(metadata, f"{path}._metadata", depth + 1)
            return encoded
        if isinstance(value, (list, tuple)):
            kind = "list" if isinstance(value, list) else "tuple"
            items = [node(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
            return {"t": kind, "v": items}
        raise StateSchemaError(
            f"{path}: values of type {type(value).__name__} cannot be sent; a state may hold "
            "tensors, dicts, lists, tuples, str, int, float, bool and None"
        )

    schema = node(state, "state", 0)
    return schema, tensors, paths


# ------------------------------------------------------------------------------------- decode
def parse_tensor_specs(table: Any, limit_bytes: int) -> list[TensorSpec]:
    """Checks the wire tensor table: known dtypes, sane shapes, total no more than announced."""
    if not isinstance(table, list):
        raise StateSchemaError("tensor table is not a list")
    specs = []
    total = 0
    for index, entry in enumerate(table):
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not isinstance(entry[1], list)
        ):
            raise StateSchemaError(f"tensor {index}: entry is not [dtype, shape]")
        dtype = WIRE_DTYPES.get(entry[0])
        if dtype is None:
            raise StateSchemaError(f"tensor {index}: unknown dtype {entry[0][:40]!r}")
        shape = entry[1]
        if len(shape) > MAX_TENSOR_DIMS or not all(
            type(d) is int and 0 <= d < (1 << 48) for d in shape
        ):
            raise StateSchemaError(f"tensor {index}: invalid shape")
        spec = TensorSpec(dtype, tuple(shape))
        total += spec.nbytes
        if total > limit_bytes:
            raise StateSchemaError(
                f"tensor table needs more than the {limit_bytes} bytes the source announced"
            )
        specs.append(spec)
    if total != limit_bytes:
        raise StateSchemaError(
            f"tensor table holds {total} bytes but the source announced {limit_bytes}"
        )
    return specs


def decode(schema: Any, tensors: list[Optional[torch.Tensor]]) -> Any:
    """Rebuilds the state from a checked schema; every tensor index must be used exactly once."""
    used = [False] * len(tensors)

    def fail(path: str, why: str) -> StateSchemaError:
        return StateSchemaError(f"{path}: {why}")

    def node(value: Any, path: str, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise fail(path, f"nests deeper than {MAX_DEPTH} levels")
        if not isinstance(value, dict) or not isinstance(value.get("t"), str):
            raise fail(path, "node is not a typed object")
        kind = value["t"]
        if kind == "tensor":
            index = value.get("i")
            if type(index) is not int or not 0 <= index < len(tensors) or used[index]:
                raise fail(path, "tensor index out of range or used twice")
            used[index] = True
            return tensors[index]
        if kind == "str":
            if not isinstance(value.get("v"), str):
                raise fail(path, "str node without a string")
            return value["v"]
        if kind == "int":
            text = value.get("v")
            if not isinstance(text, str) or len(text) > MAX_INT_DIGITS:
                raise fail(path, "int node without a valid number")
            try:
                return int(text, 10)
            except ValueError:
                raise fail(path, "int node without a valid number") from None
        if kind == "float":
            text = value.get("v")
            if not isinstance(text, str) or len(text) > 64:
                raise fail(path, "float node without a valid number")
            try:
                return float.fromhex(text)
            except ValueError:
                raise fail(path, "float node without a valid number") from None
        if kind == "bool":
            if not isinstance(value.get("v"), bool):
                raise fail(path, "bool node without a boolean")
            return value["v"]
        if kind == "none":
            return None
        if kind in ("list", "tuple"):
            items = value.get("v")
            if not isinstance(items, list):
                raise fail(path, f"{kind} node without items")
            decoded = [node(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(items)]
            return decoded if kind == "list" else tuple(decoded)
        if kind in ("dict", "odict"):
            keys, items = value.get("k"), value.get("v")
            if not isinstance(keys, list) or not isinstance(items, list) or len(keys) != len(items):
                raise fail(path, "dict node without matching keys and values")
            result: dict = collections.OrderedDict() if kind == "odict" else {}
            for key_node, item in zip(keys, items):
                if not isinstance(key_node, dict) or key_node.get("t") not in ("str", "int"):
                    raise fail(path, "dict key is not a str or int")
                key = node(key_node, path, depth + 1)
                if key in result:
                    raise fail(path, f"duplicate key {key!r}")
                result[key] = node(item, f"{path}[{key!r}]", depth + 1)
            if kind == "odict" and "meta" in value:
                metadata = node(value["meta"], f"{path}._metadata", depth + 1)
                if not isinstance(metadata, dict):
                    raise fail(path, "_metadata is not a dict")
                result._metadata = metadata  # type: ignore[attr-defined]
            return result
        raise fail(path, f"unknown node type {kind[:40]!r}")

    state = node(schema, "state", 0)
    if not all(used):
        raise StateSchemaError(f"tensor {used.index(False)} is not referenced by the schema")
    return state


def paths_of(schema: Any) -> list[str]:
    """Each tensor's path in a schema already accepted by decode(), in tensor-table order."""
    found: dict[int, str] = {}

    def walk(value: dict, path: str) -> None:
        kind = value["t"]
        if kind == "tensor":
            found[value["i"]] = path
        elif kind in ("list", "tuple"):
            for i, item in enumerate(value["v"]):
                walk(item, f"{path}[{i}]")
        elif kind in ("dict", "odict"):
            for key_node, item in zip(value["k"], value["v"]):
                key = key_node["v"] if key_node["t"] == "str" else int(key_node["v"])
                walk(item, f"{path}[{key!r}]")

    walk(schema, "state")
    return [found[i] for i in range(len(found))]
