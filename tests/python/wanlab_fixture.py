"""pytest helpers that run a test module inside an emulated WAN (scripts/wanlab).

    from wanlab_fixture import wanlab_fixture
    wan = wanlab_fixture("wan-a")            # module-scoped fixture named after the variable

    def test_something(wan):
        wan.ips                               # ['10.78.0.1', ...], host i has wan.ips[i]
        p = wan.python(1, "import os; print(os.environ['RANK'])", env={"RANK": "1"},
                       stdout=subprocess.PIPE, text=True)   # a Python process inside host 1
        wan.exec(0, ["ping", "-U", "-c1", wan.ip(1)])      # run and wait
        with wan.partitioned_between(0, 1): ...            # cut, then restore, a link

The lab is torn down after the module, also when a test fails; a run killed outright is cleaned
up by the next lab that comes up. On a machine that cannot run the lab (not root, tools or
kernel features missing) the tests are skipped with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repository root: scripts.wanlab

from scripts.wanlab import Lab, LabUnavailable, missing  # noqa: E402


def skip_reason(need_iperf3: bool = False) -> str | None:
    reasons = missing(need_iperf3)
    return "WAN lab cannot run here: " + "; ".join(reasons) if reasons else None


@contextmanager
def wan_lab(scenario: str, need_iperf3: bool = False) -> Iterator[Lab]:
    """Brings scenario up for the duration of the block, or skips the calling test."""
    reason = skip_reason(need_iperf3)
    if reason:
        pytest.skip(reason)
    try:
        lab = Lab.up(scenario)
    except LabUnavailable as e:
        pytest.skip(str(e))
    try:
        yield lab
    finally:
        lab.down()


def wanlab_fixture(scenario: str, *, scope: str = "module",
                   need_iperf3: bool = False) -> Callable[..., Any]:
    """A fixture yielding a running Lab of scenario (a bundled name or a scenario file path)."""

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def _lab() -> Iterator[Lab]:
        with wan_lab(scenario, need_iperf3) as lab:
            yield lab

    return _lab  # type: ignore[no-any-return]
