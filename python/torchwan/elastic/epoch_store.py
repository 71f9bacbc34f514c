"""The store an epoch's members meet in: hosted by the epoch's rank-0 member (each member runs a
store server and announces it as its address), with keys under a per-epoch prefix so epochs never
see each other's keys."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Callable

import torch.distributed as dist

from .. import _elastic
from ._address import split_endpoint

# A rank-0 member that died after its epoch was published must not hold the others for the full
# store timeout: the coordinator replaces the epoch well within this.
_CONNECT_TIMEOUT = timedelta(seconds=10)
_POLL_SECONDS = 0.005


class EpochNotReachable(RuntimeError):
    """The epoch was superseded, or its members did not all arrive in time."""


def connect_epoch_store(
    view: _elastic.EpochView,
    job_id: str,
    timeout: timedelta,
    superseded: Callable[[], bool],
) -> dist.Store:
    """Connects to the epoch's store and waits until every member has arrived. The arrival wait
    polls, so a newer epoch (a member left or failed meanwhile) interrupts it at once; building
    the process group afterwards then cannot block on a member that is gone."""
    host, port = split_endpoint(view.members[0].address)
    try:
        client = dist.TCPStore(
            host, port, is_master=False, timeout=min(timeout, _CONNECT_TIMEOUT)
        )
    except (RuntimeError, dist.DistError) as error:
        raise EpochNotReachable(f"epoch {view.epoch}: store at {host}:{port}: {error}") from error
    client.set_timeout(timeout)
    store = dist.PrefixStore(f"torchwan/elastic/{job_id}/epoch{view.epoch}/", client)
    store.add("arrived", 1)
    deadline = time.monotonic() + timeout.total_seconds()
    while store.add("arrived", 0) < view.world_size:
        if superseded():
            raise EpochNotReachable(f"epoch {view.epoch} was superseded while members arrived")
        if time.monotonic() > deadline:
            raise EpochNotReachable(f"epoch {view.epoch}: not every member arrived in time")
        time.sleep(_POLL_SECONDS)
    return store
