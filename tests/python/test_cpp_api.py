"""The LibTorch C++ API: examples/cpp is configured and built against the *installed* package
(find_package(torchwan) through torchwan.cmake_prefix_path), run on 3 processes, and its final
parameters are checked against the same training computed here in a single process."""

from __future__ import annotations

import functools
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from torchwan._local_ranks import free_port

from conftest import TRANSPORTS

EXAMPLE_DIR = pathlib.Path(__file__).resolve().parents[2] / "examples" / "cpp"
WORLD_SIZE = 3
STEPS = 30
RESULT = re.compile(
    r"rank (\d+) of (\d+): steps (\d+) final loss (\S+) checksum (\S+) digest ([0-9a-f]{16})"
)
# The shared compiler cache of this project; ccache only hashes the compiler inputs, so a build in
# a fresh temporary directory still hits it.
DEFAULT_CCACHE_DIR = "/var/cache/torchwan/ccache"


@functools.cache
def installed_prefixes() -> str:
    # Asked of a fresh interpreter so the answer is the installed package, not this source tree.
    code = "import torch, torchwan as w; print(torch.utils.cmake_prefix_path, w.cmake_prefix_path)"
    torch_prefix, torchwan_prefix = subprocess.check_output(
        [sys.executable, "-c", code], cwd="/", text=True
    ).split()
    return f"{torch_prefix};{torchwan_prefix}"


@pytest.fixture(scope="module")
def example_binary(tmp_path_factory) -> pathlib.Path:
    if shutil.which("cmake") is None or shutil.which("ninja") is None:
        pytest.skip("needs cmake and ninja on PATH")
    build_dir = tmp_path_factory.mktemp("cpp_example")
    env = dict(os.environ)
    configure = [
        "cmake", "-S", str(EXAMPLE_DIR), "-B", str(build_dir), "-G", "Ninja",
        "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={installed_prefixes()}",
    ]  # fmt: skip
    if shutil.which("ccache"):
        configure.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
        if "CCACHE_DIR" not in env and os.access(DEFAULT_CCACHE_DIR, os.W_OK):
            env["CCACHE_DIR"] = DEFAULT_CCACHE_DIR
    for command in (configure, ["cmake", "--build", str(build_dir), "--parallel", "2"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return build_dir / "wan_train"


def run_example(binary: pathlib.Path, transport: str) -> list[re.Match]:
    port = free_port()
    env = {**os.environ, "TORCHWAN_HOST": "127.0.0.1", "TORCHWAN_TRANSPORT": transport}
    processes = [
        subprocess.Popen(
            [str(binary), "--rank", str(rank), "--world-size", str(WORLD_SIZE),
             "--master-addr", "127.0.0.1", "--master-port", str(port), "--steps", str(STEPS)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for rank in range(WORLD_SIZE)
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=90)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    report = "\n".join(f"--- rank {r} (exit {p.returncode}):\n{o}" for r, (p, o) in
                       enumerate(zip(processes, outputs)))  # fmt: skip
    assert all(p.returncode == 0 for p in processes), report
    matches = [RESULT.search(output) for output in outputs]
    assert all(matches), report
    return matches


def reference_training(world_size: int, steps: int) -> tuple[float, float]:
    """The example's computation in one process: rank 0's initial parameters, each rank's shard,
    the gradients summed over ranks and divided by the world size, plain SGD."""
    weight = torch.randn(4, 16, generator=torch.Generator().manual_seed(1000)) * 0.1
    bias = torch.zeros(4)
    true_weight = torch.randn(4, 16, generator=torch.Generator().manual_seed(2000))
    shards = []
    for rank in range(world_size):
        inputs = torch.randn(32, 16, generator=torch.Generator().manual_seed(3000 + rank))
        shards.append((inputs, inputs @ true_weight.t()))
    losses = []
    for _ in range(steps):
        params = [weight.clone().requires_grad_(), bias.clone().requires_grad_()]
        losses = [F.mse_loss(F.linear(x, *params), y) for x, y in shards]
        grads = torch.autograd.grad(sum(losses), params)
        weight = weight - 0.05 * grads[0] / world_size
        bias = bias - 0.05 * grads[1] / world_size
    checksum = torch.cat([weight.flatten(), bias]).double().sum().item()
    return checksum, sum(loss.item() for loss in losses) / world_size


def test_cmake_package_is_installed():
    prefix = pathlib.Path(installed_prefixes().split(";")[1])
    assert (prefix / "torchwan" / "torchwanConfig.cmake").is_file()
    package = prefix.parents[1]
    assert (package / "lib" / "libtorchwan.so").is_file()
    assert (package / "include" / "torchwan" / "torchwan.h").is_file()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cpp_training_matches_reference(example_binary, transport):
    results = run_example(example_binary, transport)
    assert sorted(int(m.group(1)) for m in results) == list(range(WORLD_SIZE))
    # Every rank applied the same averaged gradients: bit-identical parameters.
    assert len({m.group(6) for m in results}) == 1, [m.group(0) for m in results]
    expected_checksum, expected_loss = reference_training(WORLD_SIZE, STEPS)
    checksum, loss = float(results[0].group(5)), float(results[0].group(4))
    # fp32 arithmetic; only the order of the gradient sum differs from the reference.
    assert checksum == pytest.approx(expected_checksum, rel=1e-5, abs=1e-6)
    assert loss == pytest.approx(expected_loss, rel=1e-4)
