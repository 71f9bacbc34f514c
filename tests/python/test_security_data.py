"""Data-plane authentication through the backend, on real processes: a group whose ranks hold the
same job secret works; one rank with another secret, without a secret, or of another job makes
every rank fail at group creation with an error naming that rank (never the secret itself), and
the ranks' other groups stay usable afterwards."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import torchwan
from conftest import TRANSPORTS
from multiprocess import run_ranks

WORLD = 3


def try_group(rank: int, options: torchwan.Options) -> tuple[str, list[float]]:
    """("ok", allreduce result) or ("error", message) for a new group built with `options`."""
    try:
        group = dist.new_group(backend="wan", pg_options=options, timeout=timedelta(seconds=30))
        t = torch.full((1 << 16,), float(rank + 1))
        dist.all_reduce(t, group=group)
        return "ok", t.unique().tolist()
    except Exception as error:  # noqa: BLE001  (the message is what the test checks)
        return "error", [f"{type(error).__name__}: {error}"]


def scenarios(rank: int, world: int, secret: str, other_secret: str) -> dict:
    out = {}
    out["same secret"] = try_group(rank, torchwan.Options(secret_file=secret, job_id="job-a"))
    out["rank 2 other secret"] = try_group(
        rank, torchwan.Options(secret_file=other_secret if rank == 2 else secret, job_id="job-a")
    )
    out["rank 1 no secret"] = try_group(
        rank, torchwan.Options(secret_file=None if rank == 1 else secret, job_id="job-a")
    )
    out["rank 0 other job"] = try_group(
        rank, torchwan.Options(secret_file=secret, job_id="job-b" if rank == 0 else "job-a")
    )
    # The default group (no secret) is untouched by the failed ones.
    t = torch.ones(8)
    dist.all_reduce(t)
    out["default group after"] = ("ok", t.unique().tolist())
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_secret_job_and_their_failures(transport: str, tmp_path: Path) -> None:
    secret, other = str(tmp_path / "job.secret"), str(tmp_path / "other.secret")
    torchwan.create_secret(secret)
    torchwan.create_secret(other)
    secret_bytes = [Path(secret).read_text().strip(), Path(other).read_text().strip()]
    results = run_ranks(
        scenarios, WORLD, secret, other, env={"TORCHWAN_TRANSPORT": transport}, timeout=180
    )
    total = float(sum(range(1, WORLD + 1)))
    expected_errors = {
        "rank 2 other secret": ("[2]", "wrong job secret"),
        "rank 1 no secret": ("[1]", "no job secret"),
        "rank 0 other job": ("[0]", "job"),
    }
    for rank, result in enumerate(results):
        assert result["same secret"] == ("ok", [total]), (rank, result["same secret"])
        assert result["default group after"] == ("ok", [float(WORLD)]), rank
        for case, fragments in expected_errors.items():
            status, detail = result[case]
            assert status == "error", (rank, case, detail)
            message = detail[0]
            assert "DistBackendError" in message, (rank, case, message)
            for fragment in fragments:
                assert fragment in message, (rank, case, message)
            for text in secret_bytes:
                assert text not in message, (rank, case, "secret leaked")
