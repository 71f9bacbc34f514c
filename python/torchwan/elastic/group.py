"""In-process recovery: survivors of a failure move to the next membership epoch's process group
and continue from the same step, without restarting processes.

    group = ElasticGroup("tcp://coord:29400", "job1", get_state=..., set_state=...)
    group.start()
    while group.step < total_steps:
        try:
            train_step(group.process_group)     # collectives, then apply the update last
        except dist.DistBackendError as error:
            group.recover(error)                # next epoch's group; state synced
            continue
        group.commit()                          # step boundary: step += 1, joiners admitted

The coordinator decides membership; a watcher thread aborts the current group as soon as a newer
epoch exists, so a collective waiting on a frozen or vanished peer fails at once instead of at its
deadline. After every change the members agree on the highest step and copy state from a member
at that step (see state_sync.py), so every step is applied exactly once on every member.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import re
import socket
import threading
import time
import weakref
from datetime import timedelta
from typing import Callable, Optional

import torch.distributed as dist

from .. import _elastic
from ..errors import WanPeerLostError
from ..options import Options
from ..secret import resolve_secret_file
from ._address import local_address_towards, member_endpoints, split_endpoints
from .epoch_store import EpochNotReachable, connect_epoch_store
from .process_group import abort_quietly, build_process_group
from .state_sync import StateDict, synchronize
from .state_transfer import StateTransferError

log = logging.getLogger("torchwan.elastic")

# The ways the transports name a peer they lost: "lost rank 3" (both), "refused: rank 3 is lost"
# (UCX, for operations posted after the loss) and "failed with peer 3: peer lost" (the engine).
_LOST_RANK = re.compile(r"lost rank (\d+)|rank (\d+) is lost|with peer (\d+): peer lost")

# How often the watcher looks for an epoch that excludes this member (epochs that include it wake
# the watcher at once).
_WATCH_PERIOD = timedelta(milliseconds=100)
# How long a failed member waits for a newer epoch before blaming the peers its transport lost.
_REPORT_GRACE = timedelta(milliseconds=200)


def _lost_ranks(error: BaseException) -> list[int]:
    """The ranks an error says were lost: the ``peer`` of each WanPeerLostError in its chain of
    causes, or, for an error that carries only its text (one re-raised by other code as a plain
    RuntimeError), the ranks its message names."""
    lost = set()
    seen: Optional[BaseException] = error
    for _ in range(16):  # a chain is short; the bound guards against a cycle
        if seen is None:
            break
        if isinstance(seen, WanPeerLostError) and seen.peer is not None:
            lost.add(seen.peer)
        seen = seen.__cause__ or seen.__context__
    if not lost:
        matches = _LOST_RANK.finditer(str(error))
        lost = {int(next(group for group in match.groups() if group)) for match in matches}
    return sorted(lost)


# Groups still open at interpreter exit are closed first: their native member must not be torn
# down while the watcher thread is blocked inside it.
_open_groups: "weakref.WeakSet[ElasticGroup]" = weakref.WeakSet()


@atexit.register
def _close_open_groups() -> None:
    for group in list(_open_groups):
        group.close()


class JobStoppedError(RuntimeError):
    """The coordinator stopped the job (quorum lost): no further epoch will come."""


class ElasticGroup:
    def __init__(
        self,
        coordinator: str,
        job_id: str,
        *,
        get_state: Callable[[], StateDict],
        set_state: Callable[[StateDict], None],
        name: Optional[str] = None,
        region: str = "",
        host: Optional[str] = None,
        options: Optional[Options] = None,
        timeout: timedelta = timedelta(seconds=60),
        recovery_timeout: timedelta = timedelta(seconds=60),
        heartbeat_interval: timedelta = timedelta(seconds=1),
        coordinator_timeout: timedelta = timedelta(seconds=10),
        secret_file: Optional[str] = None,
    ) -> None:
        # "host:port", or "h1:p1,h2:p2": the active coordinator and its standbys, tried in turn.
        coordinators = split_endpoints(coordinator)
        self._host = host or local_address_towards(*coordinators[0])
        self._job_id = job_id
        self._get_state = get_state
        self._set_state = set_state
        # The job secret (explicit, else options.secret_file, else $TORCHWAN_SECRET_FILE) admits
        # this member to a coordinator started with --secret-file; the epochs' process groups get
        # it too, for the data plane.
        secret = resolve_secret_file(secret_file, options)
        if secret and not (options and options.secret_file):
            options = dataclasses.replace(options or Options(), secret_file=secret)
        self._options = options
        self._timeout = timeout
        self._recovery_timeout = recovery_timeout
        # The rank-0 member of each epoch hosts that epoch's store; any member may become rank 0,
        # so each hosts a store server from the start and announces it as its address. It is
        # reachable wherever the data plane is, so nodes need only the coordinator to meet.
        self._store_server = dist.TCPStore(
            self._host, 0, is_master=True, wait_for_workers=False, timeout=timeout
        )
        self._member = _elastic.Member(
            member_endpoints(coordinators),
            job_id,
            name or f"{socket.gethostname()}-{os.getpid()}",
            f"{self._host}:{self._store_server.port}",
            region,
            [],
            heartbeat_interval,
            coordinator_timeout,
            secret or "",
        )
        self._lock = threading.Lock()
        self._group: Optional[dist.ProcessGroup] = None
        self._view: Optional[_elastic.EpochView] = None
        self._stop_reason: Optional[str] = None
        self._closed = threading.Event()
        self._callbacks: list[Callable[[dist.ProcessGroup], None]] = []
        self._receiving_state = False
        #: Steps applied so far; -1 until the first synchronisation (founders then take rank 0's
        #: state, so differently initialised models start out equal).
        self.step = -1
        #: (epoch, seconds from the failure being noticed to the new group being ready)
        self.recoveries: list[tuple[int, float]] = []
        self._watcher = threading.Thread(target=self._watch, name="torchwan-elastic", daemon=True)
        self._watcher.start()
        _open_groups.add(self)

    # ----------------------------------------------------------------------------- properties
    @property
    def process_group(self) -> dist.ProcessGroup:
        if self._group is None:
            raise RuntimeError("ElasticGroup: call start() first")
        return self._group

    @property
    def epoch(self) -> int:
        return self._view.epoch if self._view else 0

    @property
    def rank(self) -> int:
        return self._view.rank if self._view else -1

    @property
    def world_size(self) -> int:
        return self._view.world_size if self._view else 0

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self._view.members] if self._view else []

    @property
    def name(self) -> str:
        return self._member.name

    def on_new_group(self, callback: Callable[[dist.ProcessGroup], None]) -> None:
        """Called with every new epoch's group after state is synchronised (e.g. rebuild DDP)."""
        self._callbacks.append(callback)

    # ----------------------------------------------------------------------------- life cycle
    def start(self) -> dist.ProcessGroup:
        """Waits for the first epoch that includes this member and joins it, receiving state
        from a member that is ahead (a joiner is admitted at the members' next step boundary)."""
        self._advance(time.monotonic())
        return self.process_group

    def commit(self) -> bool:
        """Marks the current step applied. At this boundary rank 0 admits waiting joiners, and a
        pending membership change is taken up; returns True when the group changed."""
        self.step += 1
        if self.rank == 0 and self._member.num_waiting() > 0:
            self._member.request_new_epoch()
            # Wait for the new epoch here rather than start a step that it would abort.
            self._member.wait_for_epoch(self.epoch, timedelta(seconds=2))
        if self._latest_epoch() > self.epoch:
            self._advance(time.monotonic())
            return True
        return False

    def recover(self, error: Optional[BaseException] = None) -> dist.ProcessGroup:
        """After a collective failed: tells the coordinator which peers the transport lost (so it
        need not wait for their heartbeats to lapse), then joins the next epoch."""
        noticed = time.monotonic()
        if error is not None:
            self._report_lost_peers(error)
        self._advance(noticed)
        return self.process_group

    def finish(self) -> None:
        """Ends training: one last barrier so no member leaves while another still needs it for
        the final step, then leaves the job."""
        group = self._group
        if group is not None:
            try:
                group.barrier().wait()
            except Exception:  # noqa: BLE001  (a peer that already left: our last step is done)
                pass
        self.close()

    def close(self) -> None:
        """Leaves the job (the others move to an epoch without this member)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._member.leave()
        with self._lock:
            abort_quietly(self._group)
        self._watcher.join(timeout=2)

    def __enter__(self) -> "ElasticGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def receiving_state(self) -> bool:
        """True while ``set_state`` runs with another member's state (a joiner's first state, or
        a member behind after a failure catching up): per-member state in it, such as a codec's
        error-feedback residuals, belongs to the member that sent it."""
        return self._receiving_state

    # ----------------------------------------------------------------------------- internals
    def _receive_state(self, state: StateDict) -> None:
        self._receiving_state = True
        try:
            self._set_state(state)
        finally:
            self._receiving_state = False

    def _latest_epoch(self) -> int:
        current = self._member.current()
        return current.epoch if current is not None else 0

    def _report_lost_peers(self, error: BaseException) -> None:
        """Reports the ranks a transport error names. A member that moved to a newer epoch
        aborts its old group, which its peers' transports also see as a lost connection; so
        nothing is reported when a newer epoch turns up within a short grace (the coordinator
        sends an epoch to every member at once), lest two such reports evict a live member."""
        if self._member.wait_for_epoch(self.epoch, _REPORT_GRACE) is not None:
            return
        if self._latest_epoch() > self.epoch:
            return
        names = self.member_names
        for rank in _lost_ranks(error):
            if 0 <= rank < len(names) and names[rank] != self.name:
                self._member.report_peer_lost(names[rank], "data transport lost the connection")

    def _advance(self, noticed: float) -> None:
        """Joins the newest epoch that includes this member, retrying while membership keeps
        changing underneath (a member failing during recovery). The old group is not aborted
        here: its peers would take the closed connections for a failure of this member. The
        watcher aborts it once the next epoch exists."""
        deadline = time.monotonic() + self._recovery_timeout.total_seconds()
        while True:
            if self._stop_reason is not None:
                raise JobStoppedError(self._stop_reason)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"ElasticGroup '{self.name}': no new epoch within "
                    f"{self._recovery_timeout.total_seconds():.0f} s"
                )
            try:
                view = self._member.wait_for_epoch(
                    self.epoch, timedelta(seconds=min(remaining, 0.5))
                )
            except _elastic.JobStoppedError as stopped:
                raise JobStoppedError(str(stopped)) from stopped
            if view is None:
                continue
            # Skip epochs already superseded: connecting to them could only wait for members
            # that are gone.
            current = self._member.current()
            if current is not None and current.epoch > view.epoch and current.rank >= 0:
                view = current
            first = self.step < 0
            try:
                self._enter(view)
            except StateTransferError:
                raise  # state from a peer was refused: the caller must hear it, not a retry
            except (EpochNotReachable, dist.DistBackendError, RuntimeError) as error:
                log.info("ElasticGroup '%s': epoch %d abandoned: %s", self.name, view.epoch, error)
                with self._lock:
                    abort_quietly(self._group)
                    self._group = None
                    if self._view is None or self._view.epoch < view.epoch:
                        self._view = view
                continue
            if not first:
                self.recoveries.append((view.epoch, time.monotonic() - noticed))
            return

    def _enter(self, view: _elastic.EpochView) -> None:
        store = connect_epoch_store(
            view, self._job_id, self._timeout, lambda: self._latest_epoch() > view.epoch
        )
        group = build_process_group(
            store,
            view.rank,
            view.world_size,
            self._timeout,
            self._options,
            name=f"torchwan-elastic-{self._job_id}-e{view.epoch}",
            job_id=self._job_id,
            epoch=view.epoch,
        )
        with self._lock:
            self._group = group
            self._view = view
        step, sent = synchronize(group, self.step, self._get_state, self._receive_state)
        if sent:
            log.info("ElasticGroup '%s': state synchronised at step %d", self.name, step)
        self.step = step
        for callback in self._callbacks:
            callback(group)

    def _watch(self) -> None:
        """Aborts the current group once a newer epoch exists, so pending work fails now."""
        aborted_for = 0
        while not self._closed.is_set():
            try:
                self._member.wait_for_epoch(max(self.epoch, aborted_for), _WATCH_PERIOD)
            except _elastic.JobStoppedError as stopped:
                self._stop_reason = str(stopped)
                with self._lock:
                    abort_quietly(self._group)
                return
            except _elastic.ElasticError:
                time.sleep(_WATCH_PERIOD.total_seconds())
                continue
            latest = self._latest_epoch()
            with self._lock:
                if self._group is not None and latest > self.epoch and latest > aborted_for:
                    log.info(
                        "ElasticGroup '%s': epoch %d supersedes %d; aborting its group",
                        self.name,
                        latest,
                        self.epoch,
                    )
                    abort_quietly(self._group)
                    aborted_for = latest
