"""Registers the "wan" backend with torch.distributed (once, however often it is imported)."""

import torch
import torch.distributed as dist

from . import _C, _nccl_tier
from .options import Options

BACKEND_NAME = "wan"


def _world_backend():
    """The default group's wan backend, over whose transport device later groups run, or None."""
    world = dist.distributed_c10d._world.default_pg
    if world is None:
        return None
    for device in ("cpu", "cuda"):
        try:
            backend = world._get_backend(torch.device(device))
        except RuntimeError:
            continue
        if isinstance(backend, _C.ProcessGroupWan):
            return backend
    return None


def _create_backend(dist_backend_opts, pg_options):
    options = pg_options if pg_options is not None else Options()
    if not isinstance(options, Options):
        raise TypeError(
            f"pg_options for the 'wan' backend must be torchwan.Options, got {type(options).__name__}"
        )
    common = dict(
        store=dist_backend_opts.store,
        rank=dist_backend_opts.group_rank,
        size=dist_backend_opts.group_size,
        timeout=dist_backend_opts.timeout,
        transport_options=options.transport_fields(),
        group_name=str(dist_backend_opts.group_id),
    )
    world = _world_backend()
    if world is None:
        # The first group (WORLD) connects and creates this process's transport device.
        backend = _C.ProcessGroupWan(**common)
    else:
        # Later groups (new_group, DeviceMesh dimensions, split groups) share it: no new
        # connections.
        backend = _C.ProcessGroupWan(
            world, device_ranks=list(dist_backend_opts.global_ranks_in_group), **common
        )
    # Made only if a CUDA allreduce takes the host tier (local_backend nccl or auto).
    backend._set_local_tier_factory(
        _nccl_tier.factory(common["store"], common["timeout"], common["group_name"])
    )
    return backend


def register_backend() -> None:
    if BACKEND_NAME.upper() in dist.Backend._plugins:
        return
    # CUDA tensors are staged through pinned host memory when the extension was built with it.
    devices = ["cpu", "cuda"] if _C.built_with_cuda else ["cpu"]
    dist.Backend.register_backend(
        BACKEND_NAME, _create_backend, extended_api=True, devices=devices
    )
