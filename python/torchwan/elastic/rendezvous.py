"""torchrun rendezvous ``wan``, backed by torchwan-coordinator:

    torchwan-coordinator --port 29400
    torchrun --nnodes=MIN:MAX --rdzv-backend=wan --rdzv-endpoint=coord:29400 --rdzv-id=job1 train.py

``--rdzv-endpoint=coord:29400,standby:29400`` names standby coordinators too (``torchwan-coordinator
--standby``): an agent moves to the next one when the one it talks to dies or loses its quorum.

Each torchrun agent is a member of the coordinator's job; a rendezvous round is a membership
epoch, whose rank order gives the node ranks. Agents need to reach only the coordinator and the
epoch's rank-0 agent, which hosts the round's store (its address travels in the member
registration) — the same node the workers' data plane reaches anyway.

Semantics follow torchrun's c10d rendezvous: ``--nnodes=MIN:MAX``; nodes arriving while a job runs
wait and make every agent restart its workers into a larger round (``num_nodes_waiting``); a node
that fails is removed by the coordinator and the survivors' agents restart into a smaller round;
an agent whose own workers failed (``--max-restarts``) registers again, which starts a new round
for everybody.

``--rdzv-conf`` keys: ``join_timeout`` (s, 600), ``last_call_timeout`` (s, 1: how long a round
below MAX nodes waits for late arrivals), ``heartbeat_interval_ms`` (1000),
``coordinator_timeout_ms`` (10000), ``region`` (""), ``secret_file`` (default
``$TORCHWAN_SECRET_FILE``: the job secret a coordinator started with ``--secret-file`` requires; it
is also exported to the workers as ``TORCHWAN_SECRET_FILE`` for their data plane).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from typing import Callable, Optional

import torch.distributed as dist
from torch.distributed.elastic.rendezvous.api import (
    RendezvousClosedError,
    RendezvousConnectionError,
    RendezvousHandler,
    RendezvousInfo,
    RendezvousParameters,
    RendezvousStoreInfo,
    RendezvousTimeoutError,
)

from .. import _elastic
from ..secret import ENV_VAR as _SECRET_ENV_VAR
from ..secret import resolve_secret_file
from ._address import local_address_towards, member_endpoints, split_endpoint, split_endpoints

log = logging.getLogger("torchwan.elastic.rendezvous")

BACKEND_NAME = "wan"
_POLL = timedelta(milliseconds=200)
_STORE_TIMEOUT = timedelta(seconds=300)


class WanRendezvousHandler(RendezvousHandler):
    def __init__(self, params: RendezvousParameters) -> None:
        if params.backend != BACKEND_NAME:
            raise ValueError(f"backend is {params.backend!r}, expected {BACKEND_NAME!r}")
        # torchrun hands --rdzv-endpoint over as given: "host:port", or "h1:p1,h2:p2" for an
        # active coordinator and its standbys (the member moves down the list on failure).
        coordinators = split_endpoints(params.endpoint or "127.0.0.1:29400")
        host, port = coordinators[0]
        self._coordinator = member_endpoints(coordinators)
        self._run_id = params.run_id
        self._min_nodes = params.min_nodes
        self._max_nodes = params.max_nodes
        self._local_addr = params.local_addr or local_address_towards(host, port)
        self._join_timeout = float(params.get("join_timeout", 600))
        self._last_call = float(params.get("last_call_timeout", 1))
        self._heartbeat = timedelta(milliseconds=params.get_as_int("heartbeat_interval_ms", 1000))
        self._coordinator_timeout = timedelta(
            milliseconds=params.get_as_int("coordinator_timeout_ms", 10000)
        )
        self._region = str(params.get("region", ""))
        self._secret_file = resolve_secret_file(params.get("secret_file", None)) or ""
        if self._secret_file:
            # Workers inherit the agent's environment: their data plane needs the same secret.
            os.environ[_SECRET_ENV_VAR] = self._secret_file
        # This agent's store server: the round's store whenever this agent is the round's rank 0.
        self._store_server = dist.TCPStore(
            self._local_addr, 0, is_master=True, wait_for_workers=False, timeout=_STORE_TIMEOUT
        )
        self._member: Optional[_elastic.Member] = None
        self._generation = 0
        self._round_epoch = 0  # the epoch of the last completed rendezvous
        self._closed = False

    # --------------------------------------------------------------------- RendezvousHandler
    def get_backend(self) -> str:
        return BACKEND_NAME

    @property
    def use_agent_store(self) -> bool:
        # Workers get their own store (worker rank 0 hosts it at bootstrap_store_info): an agent
        # store shared across rounds would mix the keys of workers from different rounds.
        return False

    def next_rendezvous(self) -> RendezvousInfo:
        if self._closed:
            raise RendezvousClosedError()
        if self._member is None:
            self._member = self._register()
        elif not self._membership_changed():
            # Our workers failed and are being restarted while membership stands: register
            # afresh so the other agents see a change and restart theirs into the new round.
            self._rejoin()
        view = self._wait_for_round()
        host, port = split_endpoint(view.members[0].address)
        try:
            client = dist.TCPStore(host, port, is_master=False, timeout=_STORE_TIMEOUT)
        except (RuntimeError, dist.DistError) as error:
            raise RendezvousConnectionError(f"round store at {host}:{port}: {error}") from error
        store = dist.PrefixStore(f"torchwan/rdzv/{self._run_id}/epoch{view.epoch}/", client)
        self._round_epoch = view.epoch
        log.info(
            "wan rendezvous '%s': round %d, node rank %d of %d",
            self._run_id,
            view.epoch,
            view.rank,
            view.world_size,
        )
        bootstrap = RendezvousStoreInfo.build(view.rank, store, local_addr=self._local_addr)
        return RendezvousInfo(store, view.rank, view.world_size, bootstrap)

    def is_closed(self) -> bool:
        return self._closed

    def set_closed(self) -> None:
        self._closed = True

    def num_nodes_waiting(self) -> int:
        """Nonzero when the workers should restart into a new round: nodes are waiting to join
        (and there is room for them), or the coordinator already moved to a newer epoch (a node
        failed or left, or another agent admitted the waiting nodes)."""
        if self._member is None or self._closed:
            return 0
        if self._membership_changed():
            return 1
        view = self._member.current()
        if view is None or view.world_size >= self._max_nodes:
            return 0
        return int(self._member.num_waiting())

    def get_run_id(self) -> str:
        return self._run_id

    def shutdown(self) -> bool:
        self._closed = True
        if self._member is not None:
            self._member.leave()
            self._member = None
        return True

    # --------------------------------------------------------------------- internals
    def _register(self) -> _elastic.Member:
        name = f"{socket.gethostname()}-{os.getpid()}-g{self._generation}"
        return _elastic.Member(
            self._coordinator,
            self._run_id,
            name,
            f"{self._local_addr}:{self._store_server.port}",
            self._region,
            [],
            self._heartbeat,
            self._coordinator_timeout,
            self._secret_file,
        )

    def _membership_changed(self) -> bool:
        assert self._member is not None
        view = self._member.current()
        return view is not None and view.epoch > self._round_epoch

    def _rejoin(self) -> None:
        assert self._member is not None
        self._generation += 1
        fresh = self._register()
        # Registered as a joiner before the old identity leaves, so the agents that see the
        # leave also see a node waiting and admit it in the same restart.
        deadline = time.monotonic() + 2.0
        while fresh.num_waiting() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._member.leave()
        self._member = fresh

    def _wait_for_round(self) -> _elastic.EpochView:
        """Waits for an epoch newer than the last round that includes this agent, has at least
        MIN nodes, and has admitted whoever was waiting (up to MAX) after the last call."""
        member = self._member
        assert member is not None
        deadline = time.monotonic() + self._join_timeout
        settle_until: Optional[float] = None
        while True:
            if time.monotonic() > deadline:
                raise RendezvousTimeoutError(
                    f"wan rendezvous '{self._run_id}': no round of {self._min_nodes}+ nodes "
                    f"within {self._join_timeout:.0f} s"
                )
            try:
                view = member.current()
                if view is None or view.rank < 0 or view.epoch <= self._round_epoch:
                    member.wait_for_epoch(self._round_epoch, _POLL)
                    continue
                if member.num_waiting() > 0 and view.world_size < self._max_nodes:
                    member.request_new_epoch()
                    member.wait_for_epoch(view.epoch, _POLL)
                    settle_until = None
                    continue
                if view.world_size < self._min_nodes:
                    member.wait_for_epoch(view.epoch, _POLL)
                    continue
            except _elastic.JobStoppedError as stopped:
                raise RendezvousClosedError(str(stopped)) from stopped
            except _elastic.AuthenticationError as refused:
                raise RendezvousConnectionError(str(refused)) from refused
            if view.world_size < self._max_nodes:
                settle_until = settle_until or time.monotonic() + self._last_call
                if time.monotonic() < settle_until:
                    time.sleep(0.05)
                    continue
            return view


def create_handler(params: RendezvousParameters) -> RendezvousHandler:
    return WanRendezvousHandler(params)


def get_rendezvous_handler_creator() -> Callable[[RendezvousParameters], RendezvousHandler]:
    """The ``torchrun.handlers`` entry point: torch calls it without arguments and registers the
    creator it returns under the entry point's name (``wan``)."""
    return create_handler
