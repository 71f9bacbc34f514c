"""The native extension is compiled against one torch minor version; say so clearly otherwise."""

import importlib.util
import pathlib

import torch


class TorchVersionMismatch(ImportError):
    pass


def _built_for() -> str:
    """Read the torch version the extension was built for without importing it: importing a
    mismatched extension can crash on unresolved symbols before any check runs."""
    stamp = pathlib.Path(__file__).with_name("_built_for_torch.txt")
    if stamp.exists():
        return stamp.read_text().strip()
    return ""


def check_torch_version() -> None:
    if importlib.util.find_spec("torchwan._C") is None:
        raise ImportError(
            "torchwan's native extension is missing; install the package with "
            "`pip install --no-build-isolation .` from a source checkout"
        )
    built = _built_for()
    running = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    if built and built != running:
        raise TorchVersionMismatch(
            f"torchwan was built for torch {built} but torch {running} is installed; "
            "rebuild it with `pip install --no-build-isolation --force-reinstall .`"
        )
