"""torchwan.DiLoCo over a torchwan.elastic.ElasticGroup: a member joins two founders in the middle
of training, with real processes and a real coordinator. It must enter at a communicating step
with the founders' last-sync parameters and their outer optimizer state (Nesterov momentum here,
so a joiner without it would step differently), contribute its own pseudo-gradient from then on,
and never take a founder's error-feedback residuals as its own (that founder still owes them).

Run as a script, this file is one member (``--worker``); it prints JSON lines the test follows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest

from test_diloco_elastic import Member as ElasticMember
from test_diloco_elastic import digest, elastic_group, emit, flat_params
from test_elastic_support import Coordinator, free_port, wait_until

SYNC_EVERY = 4
SYNCS_AFTER_JOIN = 3
MAX_STEPS = 4000  # founders give up (and the test fails) if the joiner never arrives
FOUNDERS, JOINER = ["w0", "w1"], "w2"
OUTER_LR, OUTER_MOMENTUM = 0.7, 0.9


# --- the member ------------------------------------------------------------------------------------


def residual_norm(diloco) -> float:
    state = diloco._codec_state
    every = list(state.residuals.values()) + list(state.shard_residuals.values())
    return float(sum(r.abs().sum().item() for r in every))


def worker(args: argparse.Namespace) -> int:
    import torch
    from torch import nn

    import torchwan

    torch.set_num_threads(1)
    index = (FOUNDERS + [JOINER]).index(args.name)
    torch.manual_seed(100 + index)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    inner = torch.optim.AdamW(model.parameters(), lr=0.02)
    outer = torch.optim.SGD(model.parameters(), lr=OUTER_LR, momentum=OUTER_MOMENTUM,
                            nesterov=True)
    holder: list[torchwan.DiLoCo] = []
    group = elastic_group(args, "diloco-join", model, inner, holder, timedelta(seconds=60))
    diloco = torchwan.DiLoCo(model, inner, outer, sync_every=SYNC_EVERY, codec=args.codec,
                             group=group)
    holder.append(diloco)
    group.start()
    # A joiner learns here at which sync it entered; founders when they first see three members.
    joined_at = diloco.syncs[0] if group.world_size == 3 else None
    emit("started", step=diloco.inner_steps, params=flat_params(model), syncs=diloco.syncs[0],
         world_size=group.world_size, residual=residual_norm(diloco))
    local: dict[int, list] = {}
    inner.register_step_post_hook(
        lambda *_: local.__setitem__(diloco.inner_steps + 1, flat_params(model)))
    generator = torch.Generator().manual_seed(7 + index)
    teacher = torch.randn(8, 4, generator=torch.Generator().manual_seed(99))
    while joined_at is None or diloco.syncs[0] < joined_at + SYNCS_AFTER_JOIN:
        if diloco.inner_steps >= MAX_STEPS:
            emit("gave-up", step=diloco.inner_steps)
            return 1
        x = torch.randn(16, 8, generator=generator)
        nn.functional.mse_loss(model(x), torch.tanh(x @ teacher)).backward()
        time.sleep(args.step_sleep)
        synced_by = group.world_size  # the members a sync at this step averages over
        diloco.step()
        if joined_at is None and group.world_size == 3:
            joined_at = diloco.syncs[0]
        emit("step", step=diloco.inner_steps, synced_by=synced_by, world_size=group.world_size,
             local=local.get(diloco.inner_steps), params=flat_params(model),
             syncs=diloco.syncs[0], residual=residual_norm(diloco))
    diloco.flush()
    emit("done", step=diloco.inner_steps, digest=digest(model.parameters()),
         world_size=group.world_size, joined_at=joined_at)
    group.finish()
    return 0


# --- the test ---------------------------------------------------------------------------------------


class Member(ElasticMember):
    def __init__(self, name: str, port: int, log_dir: Path, *args: str) -> None:
        super().__init__(name, port, log_dir, *args, script=__file__)


def replay_outer_steps(members: dict[str, Member], start: dict, end_step: int) -> dict[int, list]:
    """The parameters after every sync up to ``end_step``, computed here from the members' reported
    trained parameters with a fresh torch.optim.SGD: each sync averages the locals of the members
    it ran over (the founders before the join, all three after)."""
    import torch

    params = [torch.nn.Parameter(torch.tensor(p, dtype=torch.float64)) for p in start["params"]]
    outer = torch.optim.SGD(params, lr=OUTER_LR, momentum=OUTER_MOMENTUM, nesterov=True)
    after: dict[int, list] = {}
    for step in range(start["step"] + 1, end_step + 1):
        event = members["w0"].at(step)
        assert event is not None, step
        if step % SYNC_EVERY != 0:
            continue
        names = FOUNDERS + ([JOINER] if event["synced_by"] == 3 else [])
        locals_ = [members[n].at(step)["local"] for n in names]
        for i, param in enumerate(params):
            mean = sum(torch.tensor(row[i], dtype=torch.float64) for row in locals_) / len(names)
            param.grad = param.detach() - mean
        outer.step()
        after[step] = [p.detach().tolist() for p in params]
    return after


@pytest.mark.parametrize("codec", ["none", "int8"])
def test_joiner_enters_with_last_sync_and_outer_state_and_its_own_residuals(codec) -> None:
    import torch

    with tempfile.TemporaryDirectory(prefix="torchwan-diloco-join-") as tmp:
        log_dir, port = Path(tmp), free_port()
        coordinator = Coordinator(port, log_dir, "--min-members", "2",
                                  "--heartbeat-timeout-ms", "5000")
        options = ("--codec", codec)
        members = {n: Member(n, port, log_dir, *options, "--step-sleep", "0.02")
                   for n in FOUNDERS}

        def report() -> str:
            return "\n".join(m.report() for m in members.values()) + coordinator.log_tail(1500)

        try:
            # Founders a few syncs in, so the outer momentum and the residuals are not zero.
            wait_until(lambda: all((m.at(3 * SYNC_EVERY + 1) is not None)
                                   for m in members.values()), 120, report)
            members[JOINER] = Member(JOINER, port, log_dir, *options, "--step-sleep", "0")
            for member in members.values():
                assert member.wait(timeout=180) == 0, report()
        finally:
            for member in members.values():
                member.kill()
            coordinator.stop()

        done = {n: m.last("done") for n, m in members.items()}
        assert all(d is not None for d in done.values()), report()
        # It ended bit-identical with the founders, on a group of three.
        assert len({d["digest"] for d in done.values()}) == 1, done
        assert {d["world_size"] for d in done.values()} == {3}, done
        assert len({d["joined_at"] for d in done.values()}) == 1, done

        # It entered at a communicating step, with the founders' parameters of that step: their
        # last sync (delay 0, alpha 0: right after a sync they hold exactly its result).
        started = members[JOINER].last("started")
        entry = started["step"]
        assert entry > 3 * SYNC_EVERY and entry % SYNC_EVERY == 0, started
        assert started["world_size"] == 3, started
        for name in FOUNDERS:
            assert members[name].at(entry)["params"] == started["params"], name
        # Its error-feedback residuals are its own (none yet), not those of the member that sent
        # it the state, which are not zero with a lossy codec.
        assert started["residual"] == 0.0, started
        if codec != "none":
            assert members["w0"].at(entry)["residual"] > 0.0

        # After each sync from then on all three hold the same bits, and between syncs they differ
        # (the joiner trains on its own data).
        for step in range(entry + 1, done[JOINER]["step"] + 1):
            events = [members[n].at(step) for n in FOUNDERS + [JOINER]]
            if step % SYNC_EVERY == 0:
                assert events[0]["synced_by"] == 3, events[0]
                assert events[0]["params"] == events[1]["params"] == events[2]["params"], step
            else:
                assert events[2]["params"] != events[0]["params"], step

        if codec == "none":
            # Every sync, before and after the join, equals the outer step recomputed here with a
            # fresh SGD over the mean of the right members' trained parameters. A joiner without
            # the founders' momentum, or whose pseudo-gradient was left out, does not match.
            expected = replay_outer_steps(members, members["w0"].last("started"),
                                          done["w0"]["step"])
            assert max(expected) > entry, "no sync after the join was checked"
            for step, want in expected.items():
                got = members["w0"].at(step)["params"]
                for g, w in zip(got, want):
                    error = (torch.tensor(g, dtype=torch.float64) - torch.tensor(w)).abs().max()
                    assert error.item() <= 1e-5, (step, error.item())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--name", required=True, choices=FOUNDERS + [JOINER])
    parser.add_argument("--codec", default="none")
    parser.add_argument("--step-sleep", type=float, default=0.0)
    return worker(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
