"""Convergence under gradient compression: a small MLP on generated data, trained on N ranks for
a fixed number of steps with each torchwan.hooks codec and without compression (over "wan" and,
side by side, Gloo). Writes bench/results/convergence.{json,md,png}.

    python3 -m bench.convergence.run [--world-size 4] [--steps 1000]
"""

from __future__ import annotations

import argparse
import json
import pathlib

from bench.common.launch import Loopback, run_world

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def label(row: dict) -> str:
    if row["codec"] == "none":
        return f"none ({row['backend']})"
    if row["codec"].startswith("backend-"):
        return f"{row['codec'].removeprefix('backend-')} (Options.compression)"
    return f"{row['codec']}{'' if row['codec'] in ('fp16', 'bf16') else '+EF'} (hook)"


def final_loss(row: dict) -> float:
    return sum(row["train_losses"][-FINAL_WINDOW:]) / FINAL_WINDOW


# Final train loss: mean of the last FINAL_WINDOW steps. Targets: how far above the uncompressed
# run's final loss each codec may end.
FINAL_WINDOW = 50
TARGETS = {"sign": 0.03, "topk": 0.03}
DEFAULT_TARGET = 0.01


def write_markdown(rows: list[dict], args: argparse.Namespace) -> str:
    reference = next(r for r in rows if r["backend"] == "wan" and r["codec"] == "none")
    lines = [
        f"# Convergence with compressed gradients, {args.world_size} ranks",
        "",
        f"MLP with {reference['parameters']:,} parameters, cross-entropy on a generated "
        f"10-class task, SGD (lr 0.05, momentum 0.9, cosine decay to 0), {args.steps} steps of "
        f"{args.batch} samples per rank, same seed and data for every run. Hook rows: "
        "`torchwan.hooks.compressed` (error feedback for every codec, top-k keeps 1%). "
        "Options.compression rows: no hook, DDP's plain allreduce over a \"wan\" group created "
        "with `torchwan.Options(compression=...)` (stateless, no error feedback). "
        f"Final train loss: mean of the last {FINAL_WINDOW} steps over all ranks; held-out loss "
        "and accuracy on 4096 other samples. Wire ratio: bytes a ring allreduce of fp32 would "
        "send per rank / bytes sent. Target: final loss at most 1% above uncompressed (3% for "
        "sign and top-k).",
        "",
        "| run | final train loss | vs uncompressed | target | held-out loss | held-out accuracy | "
        "wire ratio | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = final_loss(reference)
    for row in rows:
        final = final_loss(row)
        if row["codec"] == "none":
            verdict = "reference" if row is reference else ""
        else:
            limit = TARGETS.get(row["codec"], DEFAULT_TARGET)
            ok = final <= base * (1 + limit)
            verdict = f"≤ +{limit:.0%}: {'met' if ok else 'MISSED'}"
        lines.append(
            f"| {label(row)} | {final:.4f} | {final / base - 1:+.2%} | {verdict} | "
            f"{row['eval_loss']:.4f} | {row['eval_accuracy']:.3f} | {row['wire_ratio']:.2f}x | "
            f"{row['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: pathlib.Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the table and JSON carry the numbers; the picture is optional
        return
    figure, axis = plt.subplots(figsize=(8, 5))
    for row in rows:
        losses = row["train_losses"]
        window = 10  # smoothing: single-batch losses are noisy
        smooth = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
                  for i in range(len(losses))]
        axis.plot(smooth, label=f"{label(row)}, {row['wire_ratio']:.1f}x fewer bytes")
    axis.set_xlabel("step")
    axis.set_ylabel("train loss (10-step mean over ranks)")
    axis.set_yscale("log")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    worker = str(ROOT / "bench" / "convergence" / "worker.py")
    script_args = ["--steps", str(args.steps), "--batch", str(args.batch)]
    result = run_world(worker, script_args, args.world_size, Loopback())
    rows = [json.loads(line) for line in result.rank0_stdout.splitlines() if line.startswith("{")]

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "convergence.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    markdown = write_markdown(rows, args)
    (RESULTS / "convergence.md").write_text(markdown)
    plot(rows, RESULTS / "convergence.png")
    print(markdown)


if __name__ == "__main__":
    main()
