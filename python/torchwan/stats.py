"""Counters of a "wan" process group: ``torchwan.stats(group=None)``.

Returns a dict::

    {"rank": 0, "world_size": 4, "transport": "ucx",
     "peers": {1: {"bytes_sent": ..., "bytes_received": ..., "messages_sent": ...,
                   "messages_received": ..., "link": "direct", "lanes": 4}, ...},
     "collectives": {"all_reduce": {"calls": 10, "failures": 0, "bytes": ..., "pcie_bytes": ...,
                                    "seconds": ...}},
     "pcie_bytes": ...}

Peer bytes are what crossed the network for this group (sealed sizes when encrypted, striping
and protocol headers not included); collective bytes are what this rank contributed, and seconds
the time from the start of each exchange to its end. ``pcie_bytes`` (per collective, and their
total) are the bytes the collectives copied between host and device memory for CUDA tensors:
twice the tensor where it is staged whole, only the compressed payloads where the codecs run on
the GPU (docs/compression.md, "On the GPU"); 0 for CPU tensors. ``link`` is the rung of the
connection ladder that reached the peer: ``"direct"``, or ``"reverse"`` when only the peer could
open the connections (docs/reachability.md). Counting is always on and costs a few atomic
additions per message.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.distributed as dist

from . import _C


def stats(group: Optional[dist.ProcessGroup] = None) -> dict[str, Any]:
    """The counters of `group` (default: the default group), which must use the wan backend."""
    if group is None:
        if not dist.is_initialized():
            raise RuntimeError("torchwan.stats(): no default process group; pass a group")
        group = dist.group.WORLD
    try:
        backend = group._get_backend(torch.device("cpu"))
    except RuntimeError as error:
        raise ValueError(f"torchwan.stats(): the group has no CPU backend: {error}") from None
    if not isinstance(backend, _C.ProcessGroupWan):
        raise ValueError(
            "torchwan.stats(): the group does not use the 'wan' backend "
            f"(its CPU backend is {type(backend).__name__})"
        )
    return backend.stats()
