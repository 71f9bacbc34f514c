"""DiLoCo against DDP at an equal token budget: the character GPT of examples/diloco_train.py on 4
ranks, trained by DDP over Gloo, over "wan" and over "wan" with the int8 hook, by DiLoCo (H = 10
and 50, codec none and int8) and by Streaming DiLoCo (H = 50, 10 fragments, delay 1), beside
ranks that never communicate (the compute floor), on a WAN-lab scenario (one rank per host) or
loopback. Writes bench/results/diloco_<name>.{json,md,png}.

    python3 -m bench.diloco.run [--scenario wan-a] [--steps 1200] [--batch-size 4]

The default shape, 1,200 inner steps of 4 sequences per rank, keeps a step's compute small beside
one WAN round of its gradients, as a model whose gradients are large for its compute per step
would be, and gives DiLoCo at H=50 24 outer syncs.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import time

from bench.common.launch import Loopback, run_world

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
WORKER = ROOT / "bench" / "diloco" / "worker.py"
RUNS = ("ddp-gloo,ddp-wan,ddp-wan-int8,diloco-H10-none,diloco-H10-int8,diloco-H50-none,"
        "diloco-H50-int8,diloco-H50-none-F10-d1,diloco-H50-int8-F10-d1,local")

# The issue's targets.
SPEEDUP_TARGET = 10.0  # DiLoCo H=50 int8 tokens/s over DDP-Gloo's
LOSS_TARGET = 0.03  # its final validation loss at most this far above DDP-Gloo's
PEAK_TARGET = 4.0  # Streaming's largest burst this many times below DiLoCo's at the same H


def label(row: dict) -> str:
    if row["kind"] == "local":
        return "no communication (compute floor)"
    if row["kind"] == "ddp":
        return {"ddp-gloo": "DDP, Gloo", "ddp-wan": "DDP, wan",
                "ddp-wan-int8": "DDP, wan, int8 hook"}[row["name"]]
    name = "Streaming DiLoCo" if row["F"] > 1 else "DiLoCo"
    extra = f", F={row['F']}, delay {row['delay']}" if row["F"] > 1 else ""
    return f"{name}, H={row['H']}{extra}, {row['codec']}"


def summarise(rows: list[dict]) -> dict:
    by_name = {row["name"]: row for row in rows}
    gloo = by_name["ddp-gloo"]
    summary: dict = {"tokens_per_s_vs_ddp_gloo": {r["name"]: r["tokens_per_s"] / gloo["tokens_per_s"]
                                                  for r in rows},
                     "val_loss_vs_ddp_gloo": {r["name"]: r["final_val_loss"] / gloo["final_val_loss"] - 1
                                              for r in rows},
                     "bytes_per_step_vs_ddp_gloo": {r["name"]: gloo["bytes_per_step"] / max(r["bytes_per_step"], 1)
                                                    for r in rows}}
    targets = {}
    if "diloco-H50-int8" in by_name:
        row = by_name["diloco-H50-int8"]
        speedup = summary["tokens_per_s_vs_ddp_gloo"][row["name"]]
        loss = summary["val_loss_vs_ddp_gloo"][row["name"]]
        targets["speedup"] = {"measured": speedup, "target": SPEEDUP_TARGET,
                              "met": speedup >= SPEEDUP_TARGET}
        targets["loss"] = {"measured": loss, "target": LOSS_TARGET, "met": loss <= LOSS_TARGET}
    for codec in ("none", "int8"):
        streaming, plain = by_name.get(f"diloco-H50-{codec}-F10-d1"), by_name.get(f"diloco-H50-{codec}")
        if streaming and plain:
            ratio = plain["burst_bytes"] / streaming["burst_bytes"]
            targets[f"peak_{codec}"] = {"measured": ratio, "target": PEAK_TARGET,
                                        "met": ratio >= PEAK_TARGET}
    summary["targets"] = targets
    return summary


def markdown(rows: list[dict], summary: dict, meta: dict) -> str:
    first = rows[0]
    lines = [
        f"# DiLoCo against DDP, {first['world_size']} ranks, scenario `{meta['scenario']}`", "",
        f"Character GPT of `examples/diloco_train.py` ({first['parameters']:,} parameters, "
        f"width {meta['args']['width']}, {meta['args']['layers']} layers, context "
        f"{meta['args']['context']}), {first['steps']} inner steps of {meta['args']['batch_size']} "
        f"sequences per rank in every run: {first['tokens']:,} tokens each, the same initial "
        "model and per-rank data. AdamW (lr 3e-3) inside; DiLoCo's outer optimizer SGD, lr 0.7, "
        "Nesterov momentum 0.9. One rank per lab host, all on one machine "
        f"({meta['cpus']} CPUs, one thread per rank; load average {meta['load'][0]:.1f} / "
        f"{meta['load'][1]:.1f} / {meta['load'][2]:.1f} when the run ended), so compute is slow "
        "and the ratios below are those of this model on this machine.", "",
        "Tokens/s: all ranks' tokens over the slowest rank's training time (evaluations "
        "excluded). Bytes/step: payload bytes a rank sends per inner step (DDP without a hook: "
        "what a ring allreduce of the fp32 gradients sends; the int8 hook and DiLoCo count their "
        "own). Burst: the most bytes a rank sends at one inner step, what sets the peak "
        "bandwidth. Validation loss: 4 held-out batches of 32 sequences after the last step "
        "(rank 0's model; DiLoCo after flush()), uniform guess "
        f"{first['uniform_loss']:.3f}.", "",
        "| run | tokens/s | vs DDP-Gloo | bytes/step | less than DDP | burst (bytes) | "
        "val loss | vs DDP-Gloo | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = row["name"]
        ratio = summary["bytes_per_step_vs_ddp_gloo"][name]
        less = f"{ratio:.1f}x" if row["bytes_per_step"] else "–"
        lines.append(
            f"| {label(row)} | {row['tokens_per_s']:,.0f} | "
            f"{summary['tokens_per_s_vs_ddp_gloo'][name]:.2f}x | {row['bytes_per_step']:,.0f} | "
            f"{less} | {row['burst_bytes']:,} | "
            f"{row['final_val_loss']:.4f} | {summary['val_loss_vs_ddp_gloo'][name]:+.2%} | "
            f"{row['seconds']:.1f} |")
    lines += ["", "## Targets", ""]
    targets = summary["targets"]
    verdict = {True: "met", False: "**missed**"}
    if "speedup" in targets:
        t = targets["speedup"]
        lines.append(f"- DiLoCo H=50 int8 tokens/s vs DDP over Gloo: {t['measured']:.2f}x "
                     f"(target ≥ {t['target']:.0f}x): {verdict[t['met']]}")
        t = targets["loss"]
        lines.append(f"- its final validation loss vs DDP over Gloo's: {t['measured']:+.2%} "
                     f"(target ≤ +{t['target']:.0%}): {verdict[t['met']]}")
    for codec in ("none", "int8"):
        if f"peak_{codec}" in targets:
            t = targets[f"peak_{codec}"]
            lines.append(f"- Streaming (F=10) burst below DiLoCo's at H=50, {codec}: "
                         f"{t['measured']:.2f}x (target ≥ {t['target']:.0f}x): "
                         f"{verdict[t['met']]}")
    lines += ["", "The runs go one after another on a machine shared with other work, so its "
              "speed drifts between rows: compare the no-communication row with the DiLoCo rows "
              "only when they took about the same time per step (where DiLoCo is faster, the "
              "machine was)."]
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.8))
    for row in rows:
        steps, seconds, losses = zip(*row["curve"])
        style = {"ddp": "--", "local": ":"}.get(row["kind"], "-")
        axis.plot(seconds, losses, style, label=label(row), linewidth=1.4)
    axis.set_xscale("log")
    axis.set_xlabel("training time (s, log scale)")
    axis.set_ylabel("validation loss")
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The command that reproduces this run: the scenario and every option not left at its
    default."""
    words = ["python3 -m bench.diloco.run", f"--scenario {args.scenario}"]
    for key, value in vars(args).items():
        if key != "scenario" and value != parser.get_default(key):
            words.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="wan-a", help="a WAN-lab scenario, or loopback")
    parser.add_argument("--world-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--runs", default=RUNS)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()

    script_args = ["--runs", args.runs, "--steps", str(args.steps), "--batch-size",
                   str(args.batch_size), "--context", str(args.context), "--width",
                   str(args.width), "--layers", str(args.layers), "--eval-every",
                   str(args.eval_every)]
    started = time.monotonic()
    if args.scenario == "loopback":
        result = run_world(str(WORKER), script_args, args.world_size, Loopback())
    else:
        from bench.common.lab import running_lab

        with running_lab(args.scenario, args.world_size) as (placement, _link, lab_env):
            result = run_world(str(WORKER), script_args, args.world_size, placement, env=lab_env)
    rows = [json.loads(line) for line in result.rank0_stdout.splitlines()
            if line.startswith("{")]
    summary = summarise(rows)
    name = args.name or args.scenario
    meta = {"scenario": args.scenario, "machine": platform.node(), "cpus": os.cpu_count(),
            "load": os.getloadavg(), "wall_s": time.monotonic() - started, "args": vars(args),
            "command": command_line(parser, args)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"diloco_{name}.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=2) + "\n")
    text = markdown(rows, summary, meta)
    (RESULTS / f"diloco_{name}.md").write_text(text)
    plot(rows, RESULTS / f"diloco_{name}.png",
         f"Validation loss against training time, {rows[0]['world_size']} ranks, {args.scenario}")
    print(text)


if __name__ == "__main__":
    main()
