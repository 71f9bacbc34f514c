"""``import torch`` alone makes "wan" available (torch's ``torch.backends`` entry points):
unmodified scripts that never import torchwan run a real all_reduce under torchrun and
multiprocessing spawn; autoloading opens no socket and starts no thread; a broken torchwan leaves
``import torch`` working with one warning that names the reason; the version check tells CPU-only
from CUDA torch."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

from test_elastic_support import free_port

# Never imports torchwan: "wan" must come from `import torch` alone.
UNMODIFIED_SCRIPT = textwrap.dedent(
    """
    import torch, torch.distributed as dist

    dist.init_process_group("wan")
    rank, world = dist.get_rank(), dist.get_world_size()
    t = torch.arange(4, dtype=torch.float64) * (rank + 1)
    dist.all_reduce(t)
    print(f"RESULT rank={rank} world={world} values={t.tolist()}", flush=True)
    dist.destroy_process_group()
    """
)

# Same, from children that multiprocessing's spawn start method launches as fresh interpreters.
SPAWN_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch, torch.distributed as dist
    import torch.multiprocessing as mp


    def worker(rank, world, init_file):
        dist.init_process_group("wan", init_method=f"file://{init_file}", rank=rank,
                                world_size=world)
        t = torch.arange(4, dtype=torch.float64) * (rank + 1)
        dist.all_reduce(t)
        print(f"RESULT rank={rank} world={world} values={t.tolist()}", flush=True)
        dist.destroy_process_group()


    if __name__ == "__main__":
        mp.spawn(worker, args=(2, sys.argv[1]), nprocs=2, join=True)
    """
)

# What `import torch` leaves: threads (native ones too), open sockets, whether torchwan loaded.
FOOTPRINT_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch

    links = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
             if os.path.exists(f"/proc/self/fd/{fd}")]
    sockets = sum(link.startswith("socket:") for link in links)
    print(len(os.listdir("/proc/self/task")), sockets, "torchwan" in sys.modules)
    """
)

# Every rank's sum of arange(4) * (rank + 1) over two ranks.
EXPECTED_VALUES = [0.0, 3.0, 6.0, 9.0]


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "TORCHWAN_HOST": "127.0.0.1"}
    env.pop("TORCH_DEVICE_BACKEND_AUTOLOAD", None)  # torch's default (on) unless `extra` says
    return {**env, **extra}


def run_python(args: list[str], env: dict[str, str], timeout: float = 120):
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_two_rank_results(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Two ranks share one stdout and a line may be written in pieces: find records, not lines.
    lines = sorted(re.findall(r"RESULT rank=\d+ world=\d+ values=\[[^\]]*\]", result.stdout))
    assert lines == [
        f"RESULT rank={rank} world=2 values={EXPECTED_VALUES}" for rank in range(2)
    ], result.stdout + result.stderr[-3000:]
    assert "could not be loaded" not in result.stderr


def test_entry_point_names_the_loader() -> None:
    (entry,) = [ep for ep in entry_points(group="torch.backends") if ep.name == "wan"]
    assert entry.value == "torchwan_autoload:load"


def test_unmodified_script_under_torchrun(tmp_path: Path) -> None:
    script = tmp_path / "unmodified.py"
    script.write_text(UNMODIFIED_SCRIPT)
    command = [
        "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
        f"--master-addr=127.0.0.1", f"--master-port={free_port()}", str(script),
    ]  # fmt: skip
    assert_two_rank_results(run_python(command, child_env()))


def test_unmodified_script_under_multiprocessing_spawn(tmp_path: Path) -> None:
    script = tmp_path / "spawned.py"
    script.write_text(SPAWN_SCRIPT)
    assert_two_rank_results(run_python([str(script), str(tmp_path / "init")], child_env()))


def test_opting_out_leaves_wan_unknown() -> None:
    check = (
        "import sys, torch, torch.distributed as dist; "
        "print('torchwan' in sys.modules, 'WAN' in dist.Backend._plugins)"
    )
    result = run_python(["-c", check], child_env(TORCH_DEVICE_BACKEND_AUTOLOAD="0"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_autoload_starts_no_thread_and_opens_no_socket() -> None:
    footprints = {}
    for autoload in ("0", "1"):
        env = child_env(TORCH_DEVICE_BACKEND_AUTOLOAD=autoload)
        result = run_python(["-c", FOOTPRINT_SCRIPT], env)
        assert result.returncode == 0, result.stderr
        threads, sockets, loaded = result.stdout.split()
        footprints[autoload] = (int(threads), int(sockets), loaded == "True")
    assert footprints["1"][2], "torchwan was not autoloaded"
    assert not footprints["0"][2]
    assert footprints["1"][0] == footprints["0"][0], f"threads (off, on): {footprints}"
    assert footprints["1"][1] == footprints["0"][1] == 0, f"sockets (off, on): {footprints}"


def installed_copy(tmp_path: Path) -> Path:
    """A copy of the installed torchwan (with its extension) in a folder that, on PYTHONPATH, comes
    before the installed one, so a test can break the copy without touching the installation."""
    import torchwan

    source = Path(torchwan.__file__).parent
    target = tmp_path / "site" / "torchwan"
    # Only the Python package and its extension matter here; the C++ SDK (headers, CMake files,
    # libtorchwan) beside them does not.
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("include", "lib", "share", "bin"))
    return target


def import_torch_with(site: Path, code: str) -> subprocess.CompletedProcess:
    env = child_env(PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    check = (
        "import sys, torch, torch.distributed as dist; "
        f"{code}; "
        "print('torch works', torch.ones(3).sum().item(), 'WAN' in dist.Backend._plugins)"
    )
    return run_python(["-c", check], env)


def assert_warned_and_torch_works(result: subprocess.CompletedProcess, reason: str) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch works 3.0 False" in result.stdout, result.stdout + result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "could not be loaded" in line]
    assert len(warnings) == 1, result.stderr[-3000:]
    assert reason in warnings[0], warnings[0]


def other_flavour_stamp() -> tuple[str, str]:
    """A stamp of the running torch's minor version in the other flavour, and how the check
    describes the running torch."""
    from torchwan._version_check import describe, running_torch

    minor = running_torch().split()[0]
    other = f"{minor} cuda 13.0" if running_torch().split()[1] == "cpu" else f"{minor} cpu"
    return other, describe(running_torch())


def test_torch_built_for_another_version_warns_and_torch_still_imports(tmp_path: Path) -> None:
    package = installed_copy(tmp_path)
    (package / "_built_for_torch.txt").write_text("2.0 cpu\n")
    result = import_torch_with(package.parent, "pass")
    assert_warned_and_torch_works(result, "torchwan was built for a CPU-only torch 2.0 but torch")
    assert "--no-build-isolation" in result.stderr


def test_cpu_only_build_on_cuda_torch_or_back_is_refused_by_name(tmp_path: Path) -> None:
    package = installed_copy(tmp_path)
    other, running = other_flavour_stamp()
    (package / "_built_for_torch.txt").write_text(other + "\n")
    result = import_torch_with(package.parent, "pass")
    from torchwan._version_check import describe

    assert_warned_and_torch_works(result, f"built for {describe(other)} but {running} is installed")
    # An explicit import raises the same reason instead of warning.
    explicit = import_torch_with(package.parent, "import torchwan")
    assert explicit.returncode != 0
    assert "TorchVersionMismatch" in explicit.stderr and describe(other) in explicit.stderr


def test_corrupt_extension_warns_and_torch_still_imports(tmp_path: Path) -> None:
    package = installed_copy(tmp_path)
    (extension,) = package.glob("_C*.so")
    extension.write_bytes(b"not a shared library\n")
    result = import_torch_with(package.parent, "pass")
    assert_warned_and_torch_works(result, "ImportError")
    assert str(extension) in result.stderr  # the loader's reason names the file


def test_missing_extension_warns_and_torch_still_imports(tmp_path: Path) -> None:
    package = installed_copy(tmp_path)
    for extension in package.glob("_C*.so"):
        extension.unlink()
    result = import_torch_with(package.parent, "pass")
    assert_warned_and_torch_works(result, "native extension is missing")


@pytest.mark.parametrize(
    "built, running, compatible",
    [
        ("2.15 cuda 13.2", "2.15 cuda 13.0", True),
        ("2.15 cuda 13.2", "2.15 cuda 12.8", False),
        ("2.15 cuda 13.2", "2.15 cpu", False),
        ("2.15 cpu", "2.15 cuda 13.2", False),
        ("2.15 cpu", "2.16 cpu", False),
        ("2.15 rocm 6.4", "2.15 cuda 13.2", False),
        ("2.15", "2.15 cuda 13.2", True),  # a stamp from before flavours were recorded
        ("2.15", "2.14 cpu", False),
    ],
)
def test_version_check_compares_version_flavour_and_toolkit(built, running, compatible) -> None:
    from torchwan._version_check import _compatible

    assert _compatible(built, running) is compatible


def test_the_installed_stamp_names_this_torch() -> None:
    import torchwan
    from torchwan._version_check import running_torch

    stamp = (Path(torchwan.__file__).parent / "_built_for_torch.txt").read_text().split()
    assert stamp[:2] == running_torch().split()[:2]
    assert stamp[1] == ("cuda" if torch.version.cuda else "rocm" if torch.version.hip else "cpu")
