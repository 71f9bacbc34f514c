"""The native extension is compiled against one torch minor version and one flavour of it (CPU-only,
CUDA or ROCm); say so clearly otherwise, before loading it.

The build records the torch it compiled against in ``_built_for_torch.txt`` by running this file
as a script, so the stamp and the check below use the same words: ``2.15 cuda 13.2``,
``2.15 cpu`` or ``2.15 rocm 6.4`` (minor version, flavour, toolkit version). A stamp of only the
minor version (older builds) is checked on that alone.
"""

import importlib.util
import pathlib

import torch


class TorchVersionMismatch(ImportError):
    pass


def running_torch() -> str:
    """The installed torch in the stamp's words."""
    minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    if torch.version.cuda:
        return f"{minor} cuda {torch.version.cuda}"
    if getattr(torch.version, "hip", None):
        return f"{minor} rocm {torch.version.hip}"
    return f"{minor} cpu"


def describe(stamp: str) -> str:
    """'2.15 cuda 13.2' -> 'torch 2.15 with CUDA 13.2'; '2.15 cpu' -> 'a CPU-only torch 2.15'."""
    minor, flavour, toolkit = (stamp.split() + ["", ""])[:3]
    if flavour == "cpu":
        return f"a CPU-only torch {minor}"
    if flavour == "cuda":
        return f"torch {minor} with CUDA {toolkit}"
    if flavour == "rocm":
        return f"torch {minor} with ROCm {toolkit}"
    return f"torch {minor}"


def _compatible(built: str, running: str) -> bool:
    built_fields, running_fields = built.split(), running.split()
    if built_fields[0] != running_fields[0]:
        return False
    if len(built_fields) < 2:  # an older stamp names the version only
        return True
    if built_fields[1] != running_fields[1]:
        return False
    # The extension links the toolkit's runtime by its major version (libcudart.so.13).
    toolkit_majors = {
        fields[2].split(".")[0] for fields in (built_fields, running_fields) if len(fields) > 2
    }
    return len(toolkit_majors) <= 1


def _built_for() -> str:
    """Read the torch the extension was built for without importing it: importing a mismatched
    extension can crash on unresolved symbols before any check runs."""
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
    running = running_torch()
    if built and not _compatible(built, running):
        raise TorchVersionMismatch(
            f"torchwan was built for {describe(built)} but {describe(running)} is installed; "
            "rebuild it against this torch with "
            "`pip install --no-build-isolation --force-reinstall .`"
        )


if __name__ == "__main__":
    print(running_torch())
