"""What autoloading torchwan costs `import torch`: the time `import torchwan` takes once torch is
imported, and the whole `python -c "import torch"` with autoloading off and on, interleaved so
that both see the same machine. Medians and spreads of --repeat runs; writes
bench/results/import_time.{json,md}.

    python3 -m bench.import_time.run [--repeat 9]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

RESULTS = pathlib.Path(__file__).resolve().parents[2] / "bench" / "results"
TORCHWAN_AFTER_TORCH = (
    "import time, torch; start = time.perf_counter(); import torchwan; "
    "print(time.perf_counter() - start)"
)


def _run(code: str, autoload: str) -> float:
    env = {**os.environ, "TORCH_DEVICE_BACKEND_AUTOLOAD": autoload}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True).stdout
    whole = time.perf_counter() - start
    return float(out.strip()) if out.strip() else whole


def _summary(values: list[float]) -> dict:
    return {"median_s": statistics.median(values), "min_s": min(values), "max_s": max(values),
            "runs": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--out-dir", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args()
    torchwan_only, off, on = [], [], []
    for _ in range(args.repeat):
        torchwan_only.append(_run(TORCHWAN_AFTER_TORCH, "0"))
        off.append(_run("import torch", "0"))
        on.append(_run("import torch", "1"))
    load = os.getloadavg()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
        "load": load, "import_torchwan_after_torch": _summary(torchwan_only),
        "import_torch_autoload_off": _summary(off), "import_torch_autoload_on": _summary(on),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "import_time.json").write_text(json.dumps(result, indent=1) + "\n")

    def row(name: str, key: str) -> str:
        s = result[key]
        return (f"| {name} | {s['median_s'] * 1e3:.0f} ms | {s['min_s'] * 1e3:.0f}-"
                f"{s['max_s'] * 1e3:.0f} ms |")

    lines = [
        "# What autoloading costs `import torch`", "",
        f"Written by `python3 -m bench.import_time.run`; {result['date']}, {result['cpus']} CPUs, "
        f"load {load[0]:.1f}; {args.repeat} runs of each, interleaved.", "",
        "| measurement | median | spread |", "|---|---|---|",
        row("`import torchwan` once torch is imported", "import_torchwan_after_torch"),
        row('`python -c "import torch"`, `TORCH_DEVICE_BACKEND_AUTOLOAD=0`',
            "import_torch_autoload_off"),
        row('`python -c "import torch"`, autoloading on (torchwan loaded)',
            "import_torch_autoload_on"),
    ]
    (args.out_dir / "import_time.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
