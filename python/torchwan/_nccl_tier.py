"""The NCCL host tier: the ProcessGroupNCCL that carries an allreduce's steps inside a host.

A "wan" group whose ranks share hosts reduce-scatters inside each host, allreduces each shard
between the hosts over the WAN, and allgathers inside the host again. With local_backend "nccl"
or "auto", the steps inside the host run on the GPUs through NCCL for CUDA tensors. The native
backend asks for the NCCL group on its first CUDA allreduce that takes the host tier, through the
factory made here; every rank of the host asks in that same call, so they exchange what they have
through the group's store and decide alike:

- torch without NCCL on any of them, or two of them on one GPU (NCCL allows one rank of a
  communicator per device): "auto" keeps the tier in host memory (shared memory, CUDA tensors
  staged to the host); "nccl" fails the call with a ValueError saying why.
- otherwise: a ProcessGroupNCCL over a PrefixStore of the group's store, of the host's ranks only.

Only this module touches NCCL: the native library needs no link against torch's NCCL symbols.
"""

from __future__ import annotations

import datetime
from typing import Callable, Optional, Sequence

import torch
import torch.distributed as dist

#: What a rank tells its host's other ranks: whether its torch has NCCL, and its GPU's identity.
Facts = tuple[bool, str]


def decline_reason(host: int, facts: Sequence[Facts]) -> Optional[str]:
    """Why the host's ranks cannot form an NCCL group (facts indexed by local rank), or None."""
    without_nccl = [local for local, (has_nccl, _) in enumerate(facts) if not has_nccl]
    if without_nccl:
        return (
            f"torch on local rank(s) {without_nccl} of host {host} has no NCCL "
            "(torch.distributed.is_nccl_available() is False)"
        )
    first_on_gpu: dict[str, int] = {}
    for local, (_, gpu) in enumerate(facts):
        if gpu in first_on_gpu:
            return (
                f"local ranks {first_on_gpu[gpu]} and {local} of host {host} use the same GPU "
                f"({gpu}), and NCCL needs a GPU of its own for each rank"
            )
        first_on_gpu[gpu] = local
    return None


def exchange_facts(
    store: dist.Store, host: int, local_rank: int, local_size: int, mine: Facts
) -> list[Facts]:
    """Every local rank's facts, in local rank order (blocks until all of the host's ranks told)."""
    host_store = dist.PrefixStore(f"torchwan/nccl_tier/host{host}/facts", store)
    host_store.set(str(local_rank), f"{int(mine[0])} {mine[1]}")
    facts = []
    for local in range(local_size):
        has_nccl, gpu = host_store.get(str(local)).decode().split(" ", 1)
        facts.append((has_nccl == "1", gpu))
    return facts


def _this_rank_facts(device_index: int) -> Facts:
    gpu = torch.cuda.get_device_properties(device_index)
    return dist.is_nccl_available(), str(getattr(gpu, "uuid", f"{gpu.name} #{device_index}"))


def _nccl_group(
    store: dist.Store, host: int, local_rank: int, local_size: int, timeout: datetime.timedelta
) -> dist.ProcessGroup:
    options = dist.ProcessGroupNCCL.Options()
    options._timeout = timeout
    host_store = dist.PrefixStore(f"torchwan/nccl_tier/host{host}/nccl", store)
    return dist.ProcessGroupNCCL(host_store, local_rank, local_size, options)


def factory(
    store: dist.Store, timeout: datetime.timedelta, group_name: str
) -> Callable[[int, int, int, int, bool], Optional[dist.ProcessGroup]]:
    """The callable the native backend calls for its host's NCCL group (None: host memory)."""

    def make(host: int, local_rank: int, local_size: int, device_index: int, required: bool):
        facts = exchange_facts(store, host, local_rank, local_size, _this_rank_facts(device_index))
        reason = decline_reason(host, facts)
        if reason is None:
            return _nccl_group(store, host, local_rank, local_size, timeout)
        if required:
            raise ValueError(
                f"torchwan: group '{group_name}': local_backend 'nccl' (TORCHWAN_LOCAL_BACKEND) "
                f"cannot run the steps inside a host on NCCL: {reason}; use local_backend 'auto' "
                "or 'gloo' to run them in host memory"
            )
        return None

    return make
