"""The frameworks people train with, on the "wan" backend: DDP (plain, find_unused_parameters,
no_sync, the PowerSGD comm hook), FSDP2 (reduce-scatter with AVG and PREMUL_SUM), HSDP on a 2-D
DeviceMesh, object collectives and torch.compile'd functional collectives.

Each training check trains a small model from one seed twice in the same processes, once over
"wan" and once over Gloo, and compares the parameters; only the order of floating-point additions
may differ. The object collectives run on both and must give the expected objects."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
from torch import nn

from multiprocess import run_ranks

STEPS = 4
LR = 0.1
SEED = 7
# fp32 training where only the reduction order differs; a few steps keep the drift tiny.
TOLERANCE = dict(rtol=1e-5, atol=1e-6)
# aot_eager traces the functional collectives into a graph and runs it, which is all the backend
# sees; inductor adds C++ code generation for the surrounding maths, about 30 s on 2 cores even
# with a warm cache, so it is opt-in.
COMPILE_BACKEND = os.environ.get("TORCHWAN_TEST_COMPILE_BACKEND", "aot_eager")


class Skip(Exception):
    """Raised by a check that cannot run here, with the reason."""


class Net(nn.Module):
    def __init__(self, extra_unused: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
        # Never called by forward: no gradient, which DDP must be told about.
        self.unused = nn.Linear(4, 4) if extra_unused else None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.body(inputs)


def make_model(extra_unused: bool = False) -> nn.Module:
    torch.manual_seed(SEED)  # identical initial parameters on every rank and for both backends
    return Net(extra_unused)


def make_batches(rank: int, count: int = STEPS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1000 + rank)  # each rank its own data
    return [(torch.randn(8, 16, generator=generator), torch.randn(8, 4, generator=generator))
            for _ in range(count)]  # fmt: skip


def loss_of(model: nn.Module, batch) -> torch.Tensor:
    inputs, targets = batch
    return nn.functional.mse_loss(model(inputs), targets)


def train(model: nn.Module, batches, grad_scale: float = 1.0, micro_batches: int = 1) -> None:
    """SGD over `batches`; with micro_batches > 1 the gradients of that many batches accumulate
    under DDP's no_sync() and are reduced once, on the last."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for start in range(0, len(batches), micro_batches):
        optimizer.zero_grad()
        group = batches[start : start + micro_batches]
        for batch in group[:-1]:
            with model.no_sync():
                loss_of(model, batch).backward()
        loss_of(model, group[-1]).backward()
        if grad_scale != 1.0:
            for param in model.parameters():
                param.grad.mul_(grad_scale)
        optimizer.step()


def parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    module = getattr(model, "module", model)  # DDP wraps; FSDP2 does not
    result = {}
    for name, param in module.named_parameters():
        full = param.full_tensor() if hasattr(param, "full_tensor") else param
        result[name] = full.detach().clone()
    return result


def assert_same_parameters(got: dict, expected: dict, **tolerance) -> None:
    assert got.keys() == expected.keys(), (sorted(got), sorted(expected))
    for name in expected:
        if not torch.allclose(got[name], expected[name], **(tolerance or TOLERANCE)):
            worst = (got[name] - expected[name]).abs().max().item()
            raise AssertionError(f"parameter {name}: max abs diff {worst}")


def ddp_reference(rank, gloo, grad_scale=1.0, **ddp_kwargs) -> dict:
    reference = nn.parallel.DistributedDataParallel(make_model(), process_group=gloo, **ddp_kwargs)
    train(reference, make_batches(rank), grad_scale=grad_scale)
    return parameters(reference)


# --- DDP ------------------------------------------------------------------------------------------


def check_ddp(rank, world_size, gloo, find_unused=False, micro_batches=1):
    def run(group):
        model = nn.parallel.DistributedDataParallel(
            make_model(extra_unused=find_unused), process_group=group,
            find_unused_parameters=find_unused,
        )  # fmt: skip
        train(model, make_batches(rank, STEPS * micro_batches), micro_batches=micro_batches)
        return parameters(model)

    got = run(None)  # the default group: "wan"
    assert_same_parameters(got, run(gloo))


def check_ddp_powersgd(rank, world_size, gloo):
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd

    def run(group):
        model = nn.parallel.DistributedDataParallel(
            make_model(), process_group=group)
        # Compression from the second step on; one random seed so both runs project alike.
        state = powersgd.PowerSGDState(process_group=group, matrix_approximation_rank=1,
                                       start_powerSGD_iter=2, min_compression_rate=0.5,
                                       random_seed=SEED)  # fmt: skip
        model.register_comm_hook(state, powersgd.powerSGD_hook)
        train(model, make_batches(rank, STEPS + 2))
        return parameters(model)

    # Orthogonalisation amplifies rounding differences a little.
    assert_same_parameters(run(None), run(gloo), rtol=1e-4, atol=1e-5)


# --- FSDP2 and HSDP -------------------------------------------------------------------------------


def fully_shard_model(mesh, divide_factor=None) -> nn.Module:
    from torch.distributed.fsdp import FSDPModule, fully_shard

    model = make_model()
    for layer in model.body:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    if divide_factor is not None:
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(divide_factor)
    return model


def check_fsdp2(rank, world_size, gloo, divide_factor=None):
    """Default: reduce-scatter with ReduceOp.AVG. A divide factor other than the world size makes
    FSDP2 use PREMUL_SUM(1/factor): gradients are sum/factor, i.e. mean * world/factor."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (world_size,))
    assert mesh.get_group().group_name == dist.group.WORLD.group_name, "mesh made a new group"
    model = fully_shard_model(mesh, divide_factor)
    train(model, make_batches(rank))
    scale = 1.0 if divide_factor is None else world_size / divide_factor
    assert_same_parameters(parameters(model), ddp_reference(rank, gloo, grad_scale=scale))


def check_hsdp_2d_mesh(rank, world_size, gloo):
    """2 replicas x 2 shards: reduce-scatter within a replica, all-reduce across replicas (the
    WAN dimension in practice); the result equals data parallelism over all 4 ranks."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (2, world_size // 2), mesh_dim_names=("replicate", "shard"))
    for dim in ("replicate", "shard"):
        backend = dist.get_backend(mesh[dim].get_group())
        assert backend == "wan", f"mesh dim {dim} runs on {backend}"
    model = fully_shard_model(mesh)
    train(model, make_batches(rank))
    assert_same_parameters(parameters(model), ddp_reference(rank, gloo))


# --- object collectives and torch.compile --------------------------------------------------------


def check_object_collectives(rank, world_size, gloo):
    mine = {"rank": rank, "name": f"worker-{rank}", "payload": list(range(rank * 50))}
    for group in (None, gloo):
        gathered = [None] * world_size
        dist.all_gather_object(gathered, mine, group=group)
        assert [g["rank"] for g in gathered] == list(range(world_size)), gathered
        assert gathered[-1]["payload"] == list(range((world_size - 1) * 50))
        # A non-zero source, objects of different sizes.
        source = world_size - 1
        objects = [{"step": 3, "lr": 0.5}, "x" * 1000, None] if rank == source else [None] * 3
        dist.broadcast_object_list(objects, src=source, group=group)
        assert objects == [{"step": 3, "lr": 0.5}, "x" * 1000, None], objects


def check_compiled_functional_collectives(rank, world_size, gloo):
    """A compiled linear-regression step whose gradient is averaged by a functional all_reduce
    inside the graph, against the same step in eager mode over Gloo."""
    import torch._dynamo
    import torch.distributed._functional_collectives as funcol

    def step(weight, inputs, targets, all_reduce_mean):
        error = inputs @ weight - targets
        grad = all_reduce_mean(2.0 * inputs.t() @ error / error.numel())
        return weight - LR * grad

    world = dist.group.WORLD.group_name  # a plain string: dynamo treats it as a constant

    def wan_mean(tensor):
        return funcol.all_reduce(tensor, "avg", world)

    def gloo_mean(tensor):
        tensor = tensor.clone()
        dist.all_reduce(tensor, group=gloo)
        return tensor / world_size

    compiled = torch.compile(lambda w, x, y: step(w, x, y, wan_mean), backend=COMPILE_BACKEND,
                             fullgraph=True)  # fmt: skip
    weight = expected = torch.zeros(16, 4)
    for inputs, targets in make_batches(rank):
        try:
            weight = compiled(weight, inputs, targets)
        except torch._dynamo.exc.BackendCompilerFailed as error:
            raise Skip(f"{COMPILE_BACKEND} cannot compile on this machine: {error}") from error
        expected = step(expected, inputs, targets, gloo_mean)
    assert torch.allclose(weight, expected, **TOLERANCE), (weight - expected).abs().max()
    gathered = funcol.all_gather_single(weight, 0, world).wait()
    assert torch.equal(gathered, weight.repeat(world_size, 1)), "ranks disagree"


# --- one world per check --------------------------------------------------------------------------
# Ranks fork from a server that has already imported torch (multiprocess.py), so a world costs
# about a second: each check gets its own, and a hang or a broken group stays with its check.

TWO_RANK_CHECKS = {
    "ddp": check_ddp,
    "ddp_find_unused_parameters": lambda *a: check_ddp(*a, find_unused=True),
    "ddp_no_sync": lambda *a: check_ddp(*a, micro_batches=2),
    # The hook issues a collective from inside a Work future's callback and waits for it.
    "ddp_powersgd": check_ddp_powersgd,
    "fsdp2_avg": check_fsdp2,
    "fsdp2_premul_sum": lambda *a: check_fsdp2(*a, divide_factor=4.0),
    "object_collectives": check_object_collectives,
    "compiled_functional_collectives": check_compiled_functional_collectives,
}
FOUR_RANK_CHECKS = {"hsdp_2d_mesh": check_hsdp_2d_mesh}
CHECKS = {**TWO_RANK_CHECKS, **FOUR_RANK_CHECKS}
WORLD_TIMEOUT = 90.0  # seconds; a few times the slowest check on 2 busy cores


def run_check(rank: int, world_size: int, name: str) -> tuple[str, str]:
    """("pass"|"skip", detail); failures propagate to run_ranks with their traceback."""
    gloo = dist.new_group(backend="gloo")  # the reference side; the default group is "wan"
    try:
        CHECKS[name](rank, world_size, gloo)
    except Skip as reason:
        return "skip", str(reason)
    return "pass", ""


def run_in_world(world_size: int, name: str) -> None:
    outcomes = run_ranks(run_check, world_size, name, timeout=WORLD_TIMEOUT)
    skips = [detail for status, detail in outcomes if status == "skip"]
    if skips:
        pytest.skip(skips[0])


@pytest.mark.parametrize("name", list(TWO_RANK_CHECKS))
def test_two_ranks(name):
    run_in_world(2, name)


@pytest.mark.parametrize("name", list(FOUR_RANK_CHECKS))
def test_four_ranks(name):
    run_in_world(4, name)
