"""torchwan.Options, the TORCHWAN_* variables and the README's options table all come from the
one native option registry: the README shows exactly the generated table, Options has exactly the
registry's fields, and every declared default is accepted by the layer that parses it."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import torchwan
from torchwan import options as options_module

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_is_the_generated_one() -> None:
    text = README.read_text()
    match = re.search(r"<!-- options-table:[^\n]*-->\n(.*?)\n<!-- options-table: end -->", text, re.S)
    assert match, "README lost its options-table markers"
    assert match.group(1) == options_module.markdown_table(), (
        "README's options table differs from the registry: regenerate it with "
        "`python3 -m torchwan.options --markdown`"
    )


def test_options_has_exactly_the_registry_fields() -> None:
    names = [field.name for field in dataclasses.fields(torchwan.Options)]
    assert names == [option["name"] for option in options_module.REGISTRY]
    assert "epoch" in names and "compression" in names and "topology" in names
    for option in options_module.REGISTRY:
        assert option["env"] == "TORCHWAN_" + option["name"].upper()
        assert option["env"] in torchwan.Options.__doc__
    with pytest.raises(TypeError):
        torchwan.Options(no_such_option=1)


def test_every_declared_default_is_accepted(tmp_path: Path) -> None:
    """A one-rank group built with every option set explicitly to its declared default (options
    with no default value are left unset) behaves as the defaults do."""
    explicit = {}
    for option in options_module.REGISTRY:
        if option["default"] == "":
            continue
        value = option["default"]
        explicit[option["name"]] = int(value) if option["type"] == "int" else value
    store = dist.FileStore(str(tmp_path / "store"), 1)
    backend = torchwan._C.ProcessGroupWan(
        store, 0, 1, timedelta(seconds=30),
        torchwan.Options(**explicit).transport_fields(), "registry-defaults",
    )
    assert backend.lanes == 4 and backend.compression == "none" and backend.transport == "ucx"
    tensor = torch.arange(4.0)
    backend.allreduce([tensor]).wait()
    assert tensor.tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("lanes", 0, "lanes"),
        ("topology", "ring", "topology"),
        ("compression", "zip", "compression"),
        ("algorithm", "allreduce:tree", "algorithm"),
    ],
)
def test_bad_values_name_the_option(tmp_path: Path, field: str, value, words: str) -> None:
    store = dist.FileStore(str(tmp_path / "store"), 1)
    with pytest.raises(ValueError, match=words):
        torchwan._C.ProcessGroupWan(
            store, 0, 1, timedelta(seconds=30),
            torchwan.Options(**{field: value}).transport_fields(), "bad",
        )


def test_markdown_command_prints_the_table() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "torchwan.options", "--markdown"],
        capture_output=True, text=True, check=True, env={**os.environ, "TORCH_DEVICE_BACKEND_AUTOLOAD": "0"},
    ).stdout
    assert printed.strip() == options_module.markdown_table()
