"""Backend options: ``dist.init_process_group("wan", pg_options=torchwan.Options(...))``.

Every field left as ``None`` falls back to the ``TORCHWAN_<FIELD>`` environment variable and then
to the built-in default, so unmodified scripts can be tuned from the shell.

The fields are not written here: they come from the native option registry
(base/option_registry.cc), which also drives the C++ parsers, the environment variables and the
README's options table (``python3 -m torchwan.options --markdown`` prints it).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Optional

from . import _C

#: The registry: one dict per option with name, layer, type, default, default_shown, doc, env.
REGISTRY: tuple[dict, ...] = tuple(_C.option_registry())

_TYPES = {"str": str, "int": int}


def _docstring() -> str:
    lines = [
        "Options of the 'wan' backend; each None falls back to its TORCHWAN_* variable, then to",
        "the default.",
        "",
    ]
    for option in REGISTRY:
        lines.append(f"{option['name']} ({option['env']}, default {option['default_shown']}):")
        lines.append(f"    {option['doc']}")
    return "\n".join(lines)


def _transport_fields(self) -> dict[str, str]:
    """The fields that were set explicitly, as text for the native layer."""
    return {
        field.name: str(getattr(self, field.name))
        for field in dataclasses.fields(self)
        if getattr(self, field.name) is not None
    }


Options = dataclasses.make_dataclass(
    "Options",
    [
        (option["name"], Optional[_TYPES[option["type"]]], dataclasses.field(default=None))
        for option in REGISTRY
    ],
    namespace={"transport_fields": _transport_fields, "__doc__": _docstring()},
)
Options.__module__ = __name__  # for repr and pickling (make_dataclass's module= needs 3.12)


def markdown_table() -> str:
    """The README's options table, generated from the registry."""
    rows = [
        "| option | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for option in REGISTRY:
        rows.append(
            f"| `{option['name']}` | `{option['env']}` | {option['default_shown']} | "
            f"{option['doc']} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown_table())
    else:
        print(Options.__doc__)
