"""Runs torch's own backend test suite (torch.testing._internal.distributed.distributed_test, the
one Gloo and NCCL are tested with) on 2 ranks for "wan" and for Gloo, and writes what each passed,
failed and skipped, and every test wan fails that Gloo passes, to tests/torch_suite/results.md.

    python3 tests/torch_suite/run.py                      # the whole suite, wan and gloo
    python3 tests/torch_suite/run.py --backends wan -k test_monitored_barrier_gloo

How the backend under test replaces Gloo is described in suite_case.py. The suite needs the
`expecttest` package (pip install expecttest), as torch's own test runs do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import unittest
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_RESULTS = HERE / "results.md"

# What CI runs (tests/python/test_torch_compat.py): the tests covering all_gather_coalesced, sparse
# allreduce, timeouts and monitored_barrier, and a handful of core collectives.
CI_SUBSET = [
    "test_all_gather_coalesced_simple",
    "test_all_gather_coalesced_with_empty",
    "test_sparse_all_reduce_sum",
    "test_barrier_timeout_full_group",
    "test_monitored_barrier_gloo",
    "test_monitored_barrier_gloo_subgroup",
    "test_monitored_barrier_gloo_rank_0_timeout",
    "test_all_reduce_sum",
    "test_broadcast",
    "test_all_gather",
    "test_reduce_sum",
    "test_send_recv",
]

# Failures that come from the test asserting a backend's name rather than from what the backend
# does; the report shows these notes beside them.
NAME_ASSERTIONS = {
    "test_get_backend": "asserts that the default group's backend is named BACKEND (gloo); "
    "fails for every backend but Gloo by construction",
    "test_ddp_logging_data_cpu": "compares DDP's logged backend name with dist.get_backend(); "
    "torch logs every third-party backend as 'custom' (ProcessGroup.BackendType.CUSTOM), which "
    "no backend can change",
}

# Each test spawns its ranks; a test that hangs is failed by the suite after this many seconds.
PER_TEST_TIMEOUT_S = 120


class _RecordingResult(unittest.TextTestResult):
    """Keeps each test's outcome, its last lines of detail and how long it took, and writes them
    all to `path` after every test, so an interrupted run still leaves what it did."""

    path: Path | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records: dict[str, dict] = {}
        self._started = 0.0

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def _record(self, test, status, detail=""):
        name = test.id().rsplit(".", 1)[-1]
        self.records[name] = {
            "status": status,
            "seconds": round(time.monotonic() - self._started, 2),
            "detail": detail[-1500:],
        }
        if self.path is not None:
            self.path.write_text(json.dumps(self.records, indent=1))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failed", self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "failed", self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "passed")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "failed", "unexpected success")


def _worker(backend: str, names: list[str] | None, out: Path) -> None:
    """Runs in its own process: the backend is chosen at import of the suite."""
    os.environ["TORCH_SUITE_BACKEND"] = backend
    os.environ["TEMP_DIR"] = tempfile.mkdtemp(prefix="torch-suite-")
    os.environ.setdefault("DISTRIBUTED_TESTS_DEFAULT_TIMEOUT", str(PER_TEST_TIMEOUT_S))
    os.environ.setdefault("PYTORCH_PRINT_REPRO_ON_FAILURE", "0")
    # Connections between ranks on one machine; also keeps torchwan off other interfaces.
    os.environ.setdefault("TORCHWAN_HOST", "127.0.0.1")
    sys.path.insert(0, str(HERE))
    import suite_case

    loader = unittest.TestLoader()
    available = loader.getTestCaseNames(suite_case.TorchSuite)
    if names:
        unknown = sorted(set(names) - set(available))
        if unknown:
            raise SystemExit(f"not tests of torch's suite: {', '.join(unknown)}")
        available = [name for name in available if name in names]
    suite = unittest.TestSuite(suite_case.TorchSuite(name) for name in available)
    _RecordingResult.path = out
    runner = unittest.TextTestRunner(resultclass=_RecordingResult, verbosity=2, stream=sys.stdout)
    runner.run(suite)


def run_backend(
    backend: str, names: list[str] | None = None, log: Path | None = None
) -> tuple[dict[str, dict], float]:
    """Runs the suite (or the tests `names`) for one backend; returns each test's record and the
    wall time in seconds. The suite's own output goes to `log` (or is discarded)."""
    with tempfile.TemporaryDirectory() as directory:
        # Beside the log when there is one: the records of a run cut short stay there.
        out = log.with_suffix(".partial.json") if log else Path(directory) / "records.json"
        out.unlink(missing_ok=True)
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", backend, "--out"]
        command.append(str(out))
        if names:
            command += ["--tests", *names]
        started = time.monotonic()
        with open(log if log else os.devnull, "w") as sink:
            subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=False)
        elapsed = time.monotonic() - started
        if not out.exists():
            where = f"; see {log}" if log else ""
            raise RuntimeError(f"the {backend} run of torch's suite wrote no results{where}")
        return json.loads(out.read_text()), elapsed


def rerun_failures(
    backend: str, records: dict[str, dict], seconds: float, log: Path
) -> tuple[dict[str, dict], float]:
    """Runs the failed tests once more: a failure that does not repeat is recorded as a pass
    marked `rerun` (the report lists them), so a flaky test is visible but not counted twice."""
    failed = sorted(name for name, record in records.items() if record["status"] == "failed")
    if not failed:
        return records, seconds
    print(f"{backend}: running its {len(failed)} failed tests once more", flush=True)
    again, extra = run_backend(backend, failed, log)
    merged = dict(records)
    for name in failed:
        if again.get(name, {}).get("status") == "passed":
            merged[name] = {**again[name], "rerun": records[name]["detail"]}
    return merged, seconds + extra


def _counts(records: dict[str, dict]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for record in records.values():
        counts[record["status"]] += 1
    return counts


def _first_line(detail: str) -> str:
    """The line of a failure's detail that says what went wrong: its last exception line."""
    lines = [line.strip() for line in detail.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Exit)\b", line)]
    chosen = (errors or lines or [""])[-1]
    return chosen.replace("|", "\\|")[:200]


def write_report(
    runs: dict[str, tuple[dict[str, dict], float]], path: Path, command: str, partial: bool
) -> None:
    import torch

    lines = [
        "# torch's distributed test suite on `wan` and Gloo",
        "",
        f"`{command}`: torch {torch.__version__}, Python {platform.python_version()}, "
        f"2 ranks on one machine ({os.cpu_count()} CPU cores, no GPU), "
        f"{datetime.now(timezone.utc):%Y-%m-%d}.",
        "The tests are those torch runs for Gloo (`BACKEND=gloo`); see `suite_case.py` for how "
        "their process groups become `wan`.",
    ]
    if partial:
        first, *others = runs
        lines.append(
            f"{', '.join(others)}: run only on the tests {first} failed "
            "(`--only-where-first-fails`)."
        )
    lines += [
        "",
        "| backend | passed | failed | skipped | wall time |",
        "|---|---|---|---|---|",
    ]
    for backend, (records, seconds) in runs.items():
        counts = _counts(records)
        lines.append(
            f"| {backend} | {counts['passed']} | {counts['failed']} | {counts['skipped']} | "
            f"{seconds / 60:.1f} min |"
        )
    if "wan" in runs and "gloo" in runs:
        wan, gloo = runs["wan"][0], runs["gloo"][0]
        # Only tests both backends ran are compared.
        regressions = sorted(
            name
            for name, record in wan.items()
            if record["status"] == "failed" and gloo.get(name, {}).get("status") == "passed"
        )
        both = sorted(
            name
            for name, record in wan.items()
            if record["status"] == "failed" and gloo.get(name, {}).get("status") == "failed"
        )
        lines += ["", f"## Tests wan fails that Gloo passes ({len(regressions)})", ""]
        for name in regressions:
            note = f" ({NAME_ASSERTIONS[name]})" if name in NAME_ASSERTIONS else ""
            lines.append(f"- `{name}`: {_first_line(wan[name]['detail'])}{note}")
        lines += ["", f"## Tests both fail ({len(both)})", ""]
        lines += [f"- `{name}`: {_first_line(gloo[name]['detail'])}" for name in both]
    first_records = next(iter(runs.values()))[0]
    reasons = Counter(r["detail"] for r in first_records.values() if r["status"] == "skipped")
    lines += ["", f"## Why {next(iter(runs))} skipped tests", ""]
    lines += [f"- {count}: {reason}" for reason, count in reasons.most_common()]
    for backend, (records, _) in runs.items():
        flaky = sorted(name for name, record in records.items() if "rerun" in record)
        if flaky:
            lines += ["", f"## Passed on {backend} only when run a second time ({len(flaky)})", ""]
            lines += [f"- `{name}`: first {_first_line(records[name]['rerun'])}" for name in flaky]
    for backend, (records, _) in runs.items():
        failed = sorted(name for name, record in records.items() if record["status"] == "failed")
        lines += ["", f"## Every failure of {backend} ({len(failed)})", ""]
        lines += [f"- `{name}`: {_first_line(records[name]['detail'])}" for name in failed]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="wan,gloo", help="comma-separated (default wan,gloo)")
    parser.add_argument("-k", "--tests", nargs="*", help="only these tests of the suite")
    parser.add_argument("--ci-subset", action="store_true", help="only the tests CI runs")
    parser.add_argument(
        "--only-where-first-fails",
        action="store_true",
        help="run the second and later backends only on the tests the first one failed (the "
        "whole suite takes about half an hour per backend on 2 cores)",
    )
    parser.add_argument(
        "--rerun-failures",
        action="store_true",
        help="run each backend's failed tests once more; the report names those that then pass",
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--log-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="BACKEND=FILE",
        help="take a backend's results from the .json an earlier run left in --log-dir",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.tests, args.out)
        return
    names = CI_SUBSET if args.ci_subset else args.tests
    reused = dict(item.split("=", 1) for item in args.reuse)
    runs = {}
    for position, backend in enumerate(args.backends.split(",")):
        if position > 0 and args.only_where_first_fails:
            first = next(iter(runs.values()))[0]
            names = sorted(name for name, record in first.items() if record["status"] == "failed")
            if not names:
                break
        args.log_dir.mkdir(parents=True, exist_ok=True)
        log = args.log_dir / f"torch-suite-{backend}.log"
        if backend in reused:
            saved = json.loads(Path(reused[backend]).read_text())
            runs[backend] = (saved["records"], saved["seconds"])
            print(f"{backend}: the results of an earlier run, {reused[backend]}", flush=True)
        else:
            print(f"{backend}: running torch's suite, output in {log}", flush=True)
            runs[backend] = run_backend(backend, names, log)
        if args.rerun_failures:
            runs[backend] = rerun_failures(backend, *runs[backend], log.with_suffix(".rerun.log"))
        if backend not in reused or args.rerun_failures:
            records, seconds = runs[backend]
            saved = {"records": records, "seconds": seconds}
            log.with_suffix(".json").write_text(json.dumps(saved, indent=1))
        counts = _counts(runs[backend][0])
        print(f"{backend}: {counts} in {runs[backend][1]:.0f} s", flush=True)
    partial = args.only_where_first_fails and len(runs) > 1
    command = "python3 tests/torch_suite/run.py " + " ".join(sys.argv[1:])
    write_report(runs, args.results, command, partial)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
