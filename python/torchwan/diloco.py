"""DiLoCo and Streaming DiLoCo: data parallelism that communicates every H steps instead of every
step (API, semantics and advice: docs/diloco.md).

::

    inner = torch.optim.AdamW(model.parameters(), lr=3e-4)
    outer = torch.optim.SGD(model.parameters(), lr=0.7, momentum=0.9, nesterov=True)
    diloco = torchwan.DiLoCo(model, inner, outer, sync_every=100, codec="int8")
    for batch in data:
        loss_fn(model(batch)).backward()
        diloco.step()

Every rank trains alone with the inner optimizer. At a sync each rank's pseudo-gradient, the
parameters of the last sync minus its current ones, is averaged over the group; the outer optimizer
steps the last-sync parameters with that mean as their gradient, and the result becomes the model's
parameters, bit-identical on every rank. With ``fragments=F`` the parameters are cut into F
fragments synced at staggered steps; each sync is started at its step and applied ``delay`` inner
steps later, so the allreduce runs while the model keeps training.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn

from . import hooks

#: ``none`` sends float32 pseudo-gradients through one allreduce; the others go through
#: torchwan.hooks' compressed allreduce with error feedback (docs/compression.md).
CODECS: tuple[str, ...] = ("none", "fp16", "bf16", "int8", "fp8", "sign", "topk")


@dataclasses.dataclass
class _PendingSync:
    """A fragment's pseudo-gradient on its way: ``work`` is the running allreduce of ``buffer``
    (the sum over ranks); with no work, ``buffer`` already holds the mean. ``source`` (elastic
    groups only) keeps this rank's pseudo-gradient as it was before the allreduce summed into
    ``buffer`` in place, so the allreduce can be issued again on the next epoch's group."""

    fragment: int
    apply_at: int
    buffer: torch.Tensor
    work: Optional[Any] = None
    world: int = 1
    source: Optional[torch.Tensor] = None

    def issue(self, group: Optional[dist.ProcessGroup]) -> None:
        """(Re)starts the allreduce of ``source`` over ``group``."""
        assert self.source is not None
        self.buffer = self.source.clone()
        self.world = _world_size(group)
        self.work = dist.all_reduce(self.buffer, op=dist.ReduceOp.SUM, group=group, async_op=True)

    def mean(self) -> torch.Tensor:
        if self.work is not None:
            self.work.wait()
            self.work = None
            if self.world != 1:  # a compressed sync's future already holds the mean
                self.buffer.div_(self.world)
        return self.buffer


def _world_size(group: Optional[dist.ProcessGroup]) -> int:
    # The group's own size: a torchwan.elastic epoch's group is built without
    # init_process_group, so torch.distributed's registry does not know it.
    return group.size() if group is not None else dist.get_world_size()


def _split(sizes: list[int], count: int) -> list[range]:
    """Cuts parameters (in model order) into ``count`` contiguous, non-empty runs whose largest
    element count is as small as it can be: that largest fragment is what a sync sends at once,
    so it sets Streaming DiLoCo's peak bandwidth (cutting greedily at the running share can
    overshoot by a whole large parameter)."""

    def cuts(limit: int) -> Optional[list[int]]:
        # Greedy: each fragment takes parameters while it stays within ``limit``.
        bounds, running = [0], 0
        for index, size in enumerate(sizes):
            if running + size > limit and index > bounds[-1]:
                bounds.append(index)
                running = 0
            running += size
        if len(bounds) > count:
            return None
        # Fewer runs than asked: cutting a run in two never makes the largest larger.
        free = [i for i in range(len(sizes) - 1, 0, -1) if i not in bounds]
        return sorted(bounds + free[:count - len(bounds)]) + [len(sizes)]

    low, high = max(sizes), sum(sizes)
    while low < high:  # the smallest limit a greedy cut meets
        middle = (low + high) // 2
        if cuts(middle) is None:
            low = middle + 1
        else:
            high = middle
    bounds = cuts(low)
    assert bounds is not None
    return [range(bounds[i], bounds[i + 1]) for i in range(count)]


class DiLoCo:
    """Wraps a model and its inner and outer optimizers; call :meth:`step` after each backward.

    Args:
        model: the model every rank trains; rank 0's parameters are broadcast at construction.
        inner: the per-step optimizer (its state is never touched).
        outer: the optimizer applied to the last-sync parameters with the mean pseudo-gradient as
            gradient; built on the model's parameters and covering every trainable one.
        sync_every: H, inner steps between two syncs of a fragment.
        fragments: F; each fragment is synced every H steps, fragment f at the steps where
            ``(step - f*H/F) % H == 0``. H must be a multiple of F.
        codec: how pseudo-gradients travel, one of :data:`CODECS`.
        group: the process group (default: the default group), or an object with a
            ``process_group`` property read at every sync. A torchwan.elastic.ElasticGroup makes
            syncs survive membership changes (see "Elastic" in docs/diloco.md): build DiLoCo
            before ``group.start()``, let ``step()`` commit the group's steps, and carry
            ``state_dict()`` with the model's and the inner optimizer's in its get/set_state.
        delay: inner steps between starting a fragment's sync and applying it, below H.
        alpha: when a sync is applied, the fragment becomes ``(1-alpha)*global + alpha*local``,
            where local is the parameters trained meanwhile; 0 (default) makes every rank's
            fragment bit-identical after the sync.
        backup_device: where the last-sync parameters live (default: the CPU).
        block_size, topk_fraction, error_feedback, seed: codec settings (torchwan.hooks.State).
    """

    def __init__(
        self,
        model: nn.Module,
        inner: torch.optim.Optimizer,
        outer: torch.optim.Optimizer,
        sync_every: int,
        fragments: int = 1,
        codec: str = "none",
        group: Any = None,
        *,
        delay: int = 0,
        alpha: float = 0.0,
        backup_device: Optional[torch.device | str] = None,
        block_size: int = 256,
        topk_fraction: float = 0.01,
        error_feedback: bool = True,
        seed: int = 0,
    ) -> None:
        if not isinstance(sync_every, int) or sync_every < 1:
            raise ValueError(f"torchwan.DiLoCo: sync_every must be an integer >= 1, "
                             f"got {sync_every!r}")
        if not isinstance(fragments, int) or fragments < 1:
            raise ValueError(f"torchwan.DiLoCo: fragments must be an integer >= 1, "
                             f"got {fragments!r}")
        if sync_every % fragments != 0:
            raise ValueError(f"torchwan.DiLoCo: sync_every ({sync_every}) must be a multiple of "
                             f"fragments ({fragments}), so fragments are synced at even intervals")
        if not isinstance(delay, int) or not 0 <= delay < sync_every:
            raise ValueError(f"torchwan.DiLoCo: delay must be an integer in [0, sync_every="
                             f"{sync_every}), got {delay!r}: a fragment's sync must be applied "
                             "before its next one starts")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"torchwan.DiLoCo: alpha must be in [0, 1], got {alpha!r}")
        if codec not in CODECS:
            raise ValueError(f"torchwan.DiLoCo: unknown codec {codec!r}, expected one of "
                             f"{', '.join(CODECS)}")
        self.model = model
        self.inner = inner
        self.outer = outer
        self.sync_every = sync_every
        self.codec = codec
        self.group = group
        self.delay = delay
        self.alpha = alpha

        self._params = self._synced_parameters(model, outer)
        if fragments > len(self._params):
            raise ValueError(f"torchwan.DiLoCo: {fragments} fragments but only "
                             f"{len(self._params)} trainable parameters to share among them")
        self._fragments = _split([p.numel() for p in self._params], fragments)
        float64 = any(p.dtype == torch.float64 for p in self._params)
        self._wire_dtype = torch.float64 if float64 and codec == "none" else torch.float32
        # Error-feedback residuals per fragment, the codec's seeds and its byte count live in a
        # hook state, so the compressed allreduce is the very one the DDP hooks use.
        self._codec_state = hooks.State(
            codec=codec if codec != "none" else "int8",  # unused with none, but must be valid
            block_size=block_size,
            error_feedback=error_feedback,
            topk_fraction=topk_fraction,
            seed=seed,
        )
        #: Inner steps taken so far.
        self.inner_steps = 0
        #: Payload bytes this rank sent for syncs (for ``none``: what a ring allreduce sends).
        self.bytes_sent = 0
        #: Syncs applied so far, per fragment.
        self.syncs = [0] * fragments
        self._pending: list[_PendingSync] = []
        # The inner step whose syncs have all been started and applied; below inner_steps while
        # a step's syncs are still to do (after a failure, until they succeed on a new group).
        self._synced_through = 0
        # An ElasticGroup (anything that recovers and announces new groups): a failed sync is
        # retried on the next epoch's group instead of raising.
        self._elastic = hasattr(group, "recover") and hasattr(group, "on_new_group")

        if self._elastic:
            # No broadcast: the group may not be started yet, and a joiner must not issue a
            # collective its peers do not. The group's own synchronisation hands every member
            # rank 0's (founders) or a current member's (joiners) model and DiLoCo state.
            group.on_new_group(self._on_new_group)
        else:
            self._broadcast_from_rank0()
        device = torch.device(backup_device) if backup_device is not None else torch.device("cpu")
        self._last_sync = [self._backup(p, device) for p in self._params]

    # ------------------------------------------------------------------------------ public API
    @property
    def fragments(self) -> int:
        return len(self._fragments)

    def fragment_parameters(self, fragment: int) -> list[nn.Parameter]:
        """The parameters of one fragment, in model order."""
        return [self._params[i] for i in self._fragments[fragment]]

    def sync_starts_at(self, fragment: int, step: int) -> bool:
        """Whether ``fragment``'s sync starts after inner step ``step`` (counted from 1)."""
        offset = fragment * self.sync_every // self.fragments
        return step >= 1 and (step - offset) % self.sync_every == 0

    def step(self) -> None:
        """``inner.step()`` and ``inner.zero_grad()``, then starts the syncs due at this step and
        applies those started ``delay`` steps ago. With an ElasticGroup, a sync that fails because
        a member was lost is retried on the next epoch's group, and every step that communicated
        is committed to the group."""
        self.inner.step()
        self.inner.zero_grad()
        self.inner_steps += 1
        while self._synced_through < self.inner_steps:
            if self._retrying(self._round) and self._elastic:
                # A step boundary the members all pass together: joiners are admitted here, and
                # after a failure the members agree on how many such steps each completed. The
                # state a commit brings in may be one that still has this step's syncs to do,
                # hence the loop.
                self.group.commit()

    def flush(self) -> None:
        """Applies every sync still in flight now (at the end of training, before evaluating)."""
        self._retrying(self._wait_all)
        pending, self._pending = self._pending, []
        for sync in pending:
            self._apply(sync)

    def reset(self) -> None:
        """Drops the syncs in flight and puts the model back to the last-sync parameters: after a
        failed sync (a peer lost), before continuing on the next membership epoch's group."""
        self._pending = []
        self._synced_through = self.inner_steps
        with torch.no_grad():
            for param, last in zip(self._params, self._last_sync):
                param.copy_(last)

    def state_dict(self) -> dict[str, Any]:
        """Everything besides the model and the inner optimizer (save those yourself) needed to
        resume exactly: step counter, last-sync parameters, outer optimizer state, codec
        residuals and the means of syncs in flight (waited for here; with an ElasticGroup, whose
        old group may be broken, this rank's pseudo-gradient of each instead, which the members
        reduce again on the new group)."""
        # First: waiting for the syncs in flight also settles the residuals their encodes update.
        pending = [self._pending_state(p) for p in self._pending]
        codec = self._codec_state
        return {
            "config": self._config(),
            "inner_steps": self.inner_steps,
            "synced_through": self._synced_through,
            "bytes_sent": self.bytes_sent,
            "syncs": list(self.syncs),
            "last_sync": [t.detach().to("cpu", copy=True) for t in self._last_sync],
            "outer": copy.deepcopy(self.outer.state_dict()),
            "codec_step": codec.step,
            "residuals": {k: v.clone() for k, v in codec.residuals.items()},
            "shard_residuals": {k: v.clone() for k, v in codec.shard_residuals.items()},
            "pending": pending,
        }

    def _pending_state(self, pending: _PendingSync) -> dict[str, Any]:
        saved: dict[str, Any] = {"fragment": pending.fragment, "apply_at": pending.apply_at}
        if self._elastic and pending.source is not None:
            saved["source"] = pending.source.to("cpu", copy=True)
        else:
            saved["mean"] = pending.mean().to("cpu", copy=True)
        return saved

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self._config()
        if state.get("config") != mine:
            raise ValueError(f"torchwan.DiLoCo.load_state_dict: saved with {state.get('config')}, "
                             f"this instance has {mine}")
        saved = state["last_sync"]
        if len(saved) != len(self._last_sync) or any(
                s.shape != t.shape for s, t in zip(saved, self._last_sync)):
            raise ValueError("torchwan.DiLoCo.load_state_dict: the saved last-sync parameters "
                             "do not match this model's parameter shapes")
        with torch.no_grad():
            for target, value in zip(self._last_sync, saved):
                target.copy_(value)
        self.outer.load_state_dict(copy.deepcopy(state["outer"]))
        self.inner_steps = int(state["inner_steps"])
        self._synced_through = int(state.get("synced_through", self.inner_steps))
        self.syncs = list(state["syncs"])
        codec = self._codec_state
        codec.step = int(state["codec_step"])
        # Another member's state (an ElasticGroup handing a joiner, or a member that fell behind,
        # the state of one ahead): its error-feedback residuals are the error that member still
        # owes the sum, and its byte count is its own; adopting them would count that error
        # twice. This rank keeps its own (none yet on a joiner).
        if not (self._elastic and getattr(self.group, "receiving_state", False)):
            self.bytes_sent = int(state["bytes_sent"])
            codec.residuals = {int(k): v.clone() for k, v in state["residuals"].items()}
            codec.shard_residuals = {int(k): v.clone()
                                     for k, v in state["shard_residuals"].items()}
        self._pending = []
        for p in state["pending"]:
            fragment = int(p["fragment"])
            device = self._fragment_device(fragment)
            if "source" in p:
                source = p["source"].to(device, copy=True)
                self._pending.append(_PendingSync(fragment, int(p["apply_at"]), source.clone(),
                                                  source=source))
            else:
                self._pending.append(_PendingSync(fragment, int(p["apply_at"]),
                                                  p["mean"].to(device, copy=True)))
        if not self._elastic:
            # Saved by an elastic run: reduce them now (an ElasticGroup does it in
            # _on_new_group, right after loading).
            self._reissue(self._process_group())

    # ------------------------------------------------------------------------------ internals
    def _config(self) -> dict[str, Any]:
        """What a saved state must agree with to be loaded here."""
        return {"sync_every": self.sync_every, "fragments": self.fragments, "codec": self.codec,
                "delay": self.delay}

    @staticmethod
    def _synced_parameters(model: nn.Module, outer: torch.optim.Optimizer) -> list[nn.Parameter]:
        """The model's trainable parameters, which the outer optimizer must cover exactly: a
        parameter it missed would be reset to its last-sync value at every sync."""
        trainable = [p for p in model.parameters() if p.requires_grad]
        in_model = {id(p) for p in trainable}
        in_outer = {id(p) for g in outer.param_groups for p in g["params"]}
        if in_outer - in_model:
            raise ValueError("torchwan.DiLoCo: the outer optimizer holds parameters that are not "
                             "trainable parameters of the model; build it on model.parameters()")
        if in_model - in_outer:
            raise ValueError(f"torchwan.DiLoCo: the outer optimizer misses "
                             f"{len(in_model - in_outer)} trainable parameters of the model; "
                             "build it on model.parameters()")
        return trainable

    def _retrying(self, action: Any) -> Any:
        """Runs ``action``; with an ElasticGroup, a failure of a collective moves to the next
        epoch's group (whose callback issues the syncs in flight again) and runs it again."""
        while True:
            try:
                return action()
            except dist.DistBackendError as error:
                if not self._elastic:
                    raise
                self.group.recover(error)

    def _round(self) -> bool:
        """Starts the syncs due at this inner step and applies those due; returns whether it
        communicated. Fails atomically: until every collective of the step has succeeded nothing
        is applied, and on a failure the syncs in flight and the codec's residuals are put back
        as they were, so the step can be redone on another group with the same inner progress."""
        if self._synced_through >= self.inner_steps:
            return False  # done meanwhile: the state of a member that completed it was loaded
        starting = [f for f in range(self.fragments) if self.sync_starts_at(f, self.inner_steps)]
        due = [p for p in self._pending if p.apply_at <= self.inner_steps]
        if not starting and not due:
            self._synced_through = self.inner_steps
            return False
        before = list(self._pending)
        codec = self._codec_state
        # A codec's encode updates the error-feedback residuals before its collectives run.
        residuals = ({k: v.clone() for k, v in codec.residuals.items()},
                     {k: v.clone() for k, v in codec.shard_residuals.items()}
                     ) if self._elastic and self.codec != "none" else None
        try:
            for fragment in starting:
                self._start(fragment)
            due = [p for p in self._pending if p.apply_at <= self.inner_steps]
            for pending in due:
                pending.mean()
        except dist.DistBackendError:
            self._pending = before
            if residuals is not None:
                codec.residuals, codec.shard_residuals = residuals
            raise
        self._pending = [p for p in self._pending if p.apply_at > self.inner_steps]
        for pending in due:
            self._apply(pending)
        self._synced_through = self.inner_steps
        return True

    def _wait_all(self) -> None:
        for pending in self._pending:
            pending.mean()

    def _reissue(self, group: Optional[dist.ProcessGroup]) -> None:
        """Issues again, in start order, the allreduce of every sync in flight that has a source:
        every member holds the same list at the same committed step, so the collectives match."""
        for pending in self._pending:
            if pending.source is not None:
                pending.issue(group)

    def _on_new_group(self, group: dist.ProcessGroup) -> None:
        """ElasticGroup's callback after each membership change, once state is synchronised: the
        allreduces in flight died with the old group."""
        self._reissue(group)

    def _process_group(self) -> Optional[dist.ProcessGroup]:
        if self.group is None or isinstance(self.group, dist.ProcessGroup):
            return self.group
        return self.group.process_group

    @staticmethod
    def _backup(param: torch.Tensor, device: torch.device) -> torch.Tensor:
        copy_ = torch.empty(param.shape, dtype=param.dtype, device=device)
        if device.type == "cpu" and param.device.type == "cuda":
            copy_ = copy_.pin_memory()
        return copy_.copy_(param.detach())

    def _broadcast_from_rank0(self) -> None:
        group = self._process_group()
        source = dist.get_global_rank(group, 0) if group is not None else 0
        with torch.no_grad():
            works = [dist.broadcast(p.data, source, group=group, async_op=True)
                     for p in self._params]
            for work in works:
                work.wait()

    def _fragment_device(self, fragment: int) -> torch.device:
        return self._params[self._fragments[fragment][0]].device

    def _start(self, fragment: int) -> None:
        """Computes this rank's pseudo-gradient of the fragment and starts averaging it."""
        indices = self._fragments[fragment]
        device = self._fragment_device(fragment)
        with torch.no_grad():
            flat = torch.cat([
                (self._last_sync[i].to(device, self._wire_dtype)
                 - self._params[i].detach().to(device, self._wire_dtype)).reshape(-1)
                for i in indices
            ])
        group = self._process_group()
        world = _world_size(group)
        apply_at = self.inner_steps + self.delay
        if self.codec == "none":
            if self._elastic:
                pending = _PendingSync(fragment, apply_at, flat, source=flat)
                pending.issue(group)  # sums into a copy: the source stays for a retry
            else:
                work = dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group, async_op=True)
                pending = _PendingSync(fragment, apply_at, flat, work, world)
            self.bytes_sent += 2 * (world - 1) * flat.numel() * flat.element_size() // world
            self._pending.append(pending)
            return
        state = self._codec_state
        state.process_group = group
        before = state.bytes_sent
        mean = flat.cpu()
        pending = _PendingSync(fragment, apply_at, mean)
        if world > 1 and self._elastic:
            # Waited for here: a failed step is redone with the residuals as they were before it
            # (_round), which a transfer still running across steps would have changed meanwhile.
            hooks.compressed_mean(state, self.codec, fragment, mean)
        elif world > 1:
            # Runs while the inner steps go on, as the uncompressed sync does; the result is
            # already the mean (world 1: mean() divides by nothing).
            pending.work = hooks.compressed_allreduce(state, self.codec, fragment, mean)
        state.step += 1  # fresh codec seeds for every sync
        self.bytes_sent += state.bytes_sent - before
        self._pending.append(pending)

    def _apply(self, pending: _PendingSync) -> None:
        """The outer step on the fragment's last-sync parameters with the mean as gradient."""
        mean = pending.mean()
        params = [self._params[i] for i in self._fragments[pending.fragment]]
        last = [self._last_sync[i] for i in self._fragments[pending.fragment]]
        # Only this fragment's parameters may have a gradient during the outer step: the others
        # (and any gradient the caller holds) are set aside and put back afterwards.
        every = [p for g in self.outer.param_groups for p in g["params"]]
        set_aside = [p.grad for p in every]
        for p in every:
            p.grad = None
        with torch.no_grad():
            local = [p.detach().clone() for p in params] if self.alpha > 0 else None
            offset = 0
            for param, saved in zip(params, last):
                param.copy_(saved)
                piece = mean[offset:offset + param.numel()]
                param.grad = piece.view(param.shape).to(param.device, param.dtype)
                offset += param.numel()
        self.outer.step()
        with torch.no_grad():
            for index, (param, saved) in enumerate(zip(params, last)):
                saved.copy_(param.detach())
                if local is not None:
                    param.lerp_(local[index], self.alpha)
        for p, grad in zip(every, set_aside):
            p.grad = grad
        self.syncs[pending.fragment] += 1


__all__ = ["CODECS", "DiLoCo"]
