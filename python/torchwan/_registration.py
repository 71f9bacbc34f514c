"""Registers the "wan" backend with torch.distributed (once, however often it is imported)."""

import torch.distributed as dist

from . import _C
from .options import Options

BACKEND_NAME = "wan"


def _create_backend(dist_backend_opts, pg_options):
    options = pg_options if pg_options is not None else Options()
    if not isinstance(options, Options):
        raise TypeError(
            f"pg_options for the 'wan' backend must be torchwan.Options, got {type(options).__name__}"
        )
    return _C.ProcessGroupWan(
        dist_backend_opts.store,
        dist_backend_opts.group_rank,
        dist_backend_opts.group_size,
        dist_backend_opts.timeout,
        options.transport_fields(),
        str(dist_backend_opts.group_id),
    )


def register_backend() -> None:
    if BACKEND_NAME.upper() in dist.Backend._plugins:
        return
    # CUDA tensors are staged through pinned host memory when the extension was built with it.
    devices = ["cpu", "cuda"] if _C.built_with_cuda else ["cpu"]
    dist.Backend.register_backend(
        BACKEND_NAME, _create_backend, extended_api=True, devices=devices
    )
