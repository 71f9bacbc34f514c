"""Elastic training with in-process recovery (torchwan.elastic.ElasticGroup).

Start a coordinator, then any number of these; kill some, start more, the job goes on:

    torchwan-coordinator --port 29400 --min-members 2
    python examples/elastic_train.py --coordinator 127.0.0.1:29400 --job demo --steps 500

Two models: ``allreduce`` (a plain all-reduce loop whose exact result is known, so a lost or
repeated step shows) and ``ddp`` (a small network under DistributedDataParallel, rebuilt on every
new group). Each process prints JSON lines (steps, recoveries, the final checksum) so tests and
benchmarks can follow it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn as nn

import torchwan  # noqa: F401  (loads the native layer)
from torchwan.elastic import ElasticGroup


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), "pid": os.getpid(), **fields}), flush=True)


class AllReduceModel:
    """w += mean over members of (step + 1): after N steps every element is N(N+1)/2 exactly,
    whatever the membership was at each step."""

    def __init__(self, size: int) -> None:
        self.w = torch.zeros(size, dtype=torch.float64)
        self.history: list[int] = []

    def state(self) -> dict[str, Any]:
        return {"w": self.w.clone(), "history": list(self.history)}

    def load(self, state: dict[str, Any]) -> None:
        self.w = state["w"]
        self.history = state["history"]

    def train_step(self, group: dist.ProcessGroup, step: int) -> None:
        grad = torch.full_like(self.w, float(step + 1))
        group.allreduce([grad]).wait()
        grad /= group.size()
        # Applying the update is the last thing a step does: nothing after it can fail.
        self.w += grad
        self.history.append(step)

    def checksum(self) -> float:
        return float(self.w.sum())


class DdpModel:
    """A small MLP under DDP with per-step deterministic data; DDP is rebuilt for each group."""

    def __init__(self) -> None:
        torch.manual_seed(os.getpid())  # differently initialised: the first sync must fix that
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=0.01, momentum=0.9)
        self.ddp: nn.Module | None = None
        self.history: list[int] = []

    def state(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": list(self.history),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = state["history"]

    def rebuild(self, group: dist.ProcessGroup) -> None:
        self.ddp = nn.parallel.DistributedDataParallel(
            self.net, process_group=group, broadcast_buffers=False
        )

    def train_step(self, group: dist.ProcessGroup, step: int) -> None:
        assert self.ddp is not None
        generator = torch.Generator().manual_seed(step * 1000 + group.rank())
        x = torch.randn(8, 16, generator=generator)
        y = torch.randn(8, 1, generator=generator)
        self.optimizer.zero_grad()
        nn.functional.mse_loss(self.ddp(x), y).backward()
        self.optimizer.step()
        self.history.append(step)

    def checksum(self) -> float:
        return float(sum(p.detach().double().sum() for p in self.net.parameters()))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coordinator", required=True, help="host:port of torchwan-coordinator")
    parser.add_argument("--job", default="elastic-demo")
    parser.add_argument("--name", default=None, help="member name (default: host-pid)")
    parser.add_argument("--model", choices=["allreduce", "ddp"], default="allreduce")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=1 << 16, help="all-reduce elements")
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds of 'compute'")
    parser.add_argument("--leave-at", type=int, default=None, help="leave voluntarily at this step")
    # SIGUSR1 also makes the process leave, at its next step boundary.
    parser.add_argument("--heartbeat-ms", type=int, default=1000)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    # torchwan's Python layers log through `logging`; follow the native layers' level.
    verbose = os.environ.get("TORCHWAN_LOG_LEVEL", "") in ("trace", "debug", "info")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="[%(asctime)s] [%(name)s] [%(levelname)s] %(message)s",
    )
    model = AllReduceModel(args.size) if args.model == "allreduce" else DdpModel()
    group = ElasticGroup(
        args.coordinator,
        args.job,
        name=args.name,
        get_state=model.state,
        set_state=model.load,
        timeout=timedelta(seconds=args.timeout_s),
        recovery_timeout=timedelta(seconds=args.timeout_s),
        heartbeat_interval=timedelta(milliseconds=args.heartbeat_ms),
        coordinator_timeout=timedelta(milliseconds=max(2000, 4 * args.heartbeat_ms)),
    )
    if isinstance(model, DdpModel):
        group.on_new_group(model.rebuild)
    leave_requested = False

    def request_leave(signum: int, frame: object) -> None:
        nonlocal leave_requested
        leave_requested = True

    signal.signal(signal.SIGUSR1, request_leave)
    group.start()
    emit("started", name=group.name, epoch=group.epoch, rank=group.rank, step=group.step)
    train_step: Callable[[dist.ProcessGroup, int], None] = model.train_step
    while group.step < args.steps:
        if leave_requested or group.step == args.leave_at:
            emit("leaving", step=group.step)
            group.close()
            return 0
        time.sleep(args.step_delay)
        try:
            train_step(group.process_group, group.step)
        except dist.DistBackendError as error:
            emit(
                "failure",
                step=group.step,
                epoch=group.epoch,
                kind=type(error).__name__,
                peer=getattr(error, "peer", None),  # the rank a torchwan error blames
                error=str(error)[:200],
            )
            group.recover(error)
            emit(
                "recovered",
                step=group.step,
                epoch=group.epoch,
                world_size=group.world_size,
                seconds=group.recoveries[-1][1],
            )
            continue
        if group.commit():
            emit("new_epoch", step=group.step, epoch=group.epoch, world_size=group.world_size)
        emit("step", step=group.step, epoch=group.epoch, world_size=group.world_size)
    group.finish()
    emit(
        "done",
        name=group.name,
        step=group.step,
        checksum=model.checksum(),
        exactly_once=model.history == list(range(args.steps)),
        recoveries=group.recoveries,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
