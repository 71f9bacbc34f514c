"""DDP training throughput: a ~25M-parameter model, "wan" vs Gloo in the same processes, on
loopback or a WAN-lab scenario. Writes bench/results/ddp_<name>.{json,md}.

    python3 -m bench.ddp.run [--scenario wan-a] [--world-size 4] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import pathlib

from bench.common.launch import Loopback, run_world

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=4)
    parser.add_argument("--scenario", default="loopback")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--backends", default="wan,wan-int8,gloo",
                        help="wan, wan-int8 (Options(compression='int8')), wan-int8-hook "
                             "(torchwan.hooks.int8), gloo")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()

    script_args = ["--steps", str(args.steps), "--layers", str(args.layers),
                   "--backends", args.backends]
    worker = str(ROOT / "bench" / "ddp" / "worker.py")
    if args.scenario == "loopback":
        result = run_world(worker, script_args, args.world_size, Loopback())
    else:
        from bench.common.lab import running_lab

        with running_lab(args.scenario) as (placement, _link, lab_env):
            result = run_world(worker, script_args, args.world_size, placement, env=lab_env)
    rows = [json.loads(line) for line in result.rank0_stdout.splitlines() if line.startswith("{")]
    gloo = next(row for row in rows if row["backend"] == "gloo")
    speedups = {row["backend"]: row["steps_per_s"] / gloo["steps_per_s"] for row in rows}

    name = args.name or args.scenario
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ddp_{name}.json").write_text(json.dumps({"rows": rows, "speedup_vs_gloo": speedups},
                                                         indent=2) + "\n")
    lines = [f"# DDP training, {args.world_size} ranks, scenario `{args.scenario}`", "",
             f"{rows[0]['parameters'] / 1e6:.1f}M parameters, {args.steps} timed steps after one "
             "warm-up step, same seed and data for both backends.", "",
             "`wan-int8` is `wan` with `torchwan.Options(compression=\"int8\")`: lossy, so its "
             "checksum may differ in the last digits. `wan-int8-hook` is `wan` with DDP's comm "
             "hook `torchwan.hooks.int8`: int8 with error feedback through the backend's "
             "compressed allreduce, its future completed by the backend.", "",
             "| backend | steps/s | vs Gloo | parameter checksum |", "|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['steps_per_s']:.3f} | {speedups[r['backend']]:.2f}x | "
              f"{r['checksum']:.9e} |" for r in rows]
    (RESULTS / f"ddp_{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
