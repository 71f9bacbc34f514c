"""The cost of data-plane encryption, measured side by side in one run:

- 64 MiB point-to-point throughput on loopback with encryption none / aes-256-gcm /
  chacha20-poly1305, for both transports (bench/transport/transport_bench);
- a 4-rank 64 MiB allreduce with the wan backend unencrypted, with AES-256-GCM and with
  ChaCha20-Poly1305, and with Gloo.

Every configuration runs --rounds times, interleaved so that a neighbour's load hits all of them
alike, and keeps its best. Writes bench/results/encryption.{json,md}.

    python3 -m bench.encryption.run [--build-dir build/enc] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from bench.common.launch import run_world  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CIPHERS = ("none", "aes-256-gcm", "chacha20-poly1305")
WORKER = pathlib.Path(__file__).resolve().parent / "allreduce_worker.py"


def p2p_run(binary: pathlib.Path, transport: str, encryption: str, nbytes: int,
            iterations: int, lanes: int) -> dict:
    output = subprocess.run(
        [str(binary), "--transport", transport, "--lanes", str(lanes), "--bytes", str(nbytes),
         "--iterations", str(iterations), "--encryption", encryption],
        check=True, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in output.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def allreduce_run(backend: str, encryption: str, transport: str, nbytes: int, iterations: int,
                  world: int, secret: str) -> dict:
    env = {"TORCHWAN_TRANSPORT": transport, "TORCHWAN_ENCRYPTION": encryption}
    if encryption != "none":
        env["TORCHWAN_SECRET_FILE"] = secret
    result = run_world(
        str(WORKER),
        ["--backend", backend, "--bytes", str(nbytes), "--iterations", str(iterations)],
        world, env=env, timeout=900,
    )
    lines = [line for line in result.rank0_stdout.splitlines() if line.startswith("{")]
    record = json.loads(lines[-1])
    if not record["correct"]:
        raise RuntimeError(f"{backend} {encryption}: wrong allreduce result")
    return record


def cpu_name() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build/enc")
    parser.add_argument("--bytes", type=int, default=64 << 20)
    parser.add_argument("--p2p-iterations", type=int, default=10)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--allreduce-iterations", type=int, default=5)
    parser.add_argument("--allreduce-transport", default="ucx")
    parser.add_argument("--world", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = ROOT / args.build_dir / "bench" / "transport_bench"

    p2p: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for transport in ("ucx", "zmq"):
            for cipher in CIPHERS:
                run = p2p_run(binary, transport, cipher, args.bytes, args.p2p_iterations, args.lanes)
                key = (transport, cipher)
                p2p[key] = max(p2p.get(key, 0.0), run["gbytes_per_s"])
                print(f"p2p {transport} {cipher}: {run['gbytes_per_s']:.3f} GB/s", flush=True)

    configs = [("wan", cipher) for cipher in CIPHERS] + [("gloo", "none")]
    allreduce: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as directory:
        secret = os.path.join(directory, "job.secret")
        subprocess.run([sys.executable, "-m", "torchwan.secret", secret], check=True,
                       capture_output=True)
        for _ in range(args.rounds):
            for backend, cipher in configs:
                run = allreduce_run(backend, cipher, args.allreduce_transport, args.bytes,
                                    args.allreduce_iterations, args.world, secret)
                best = min(run["seconds"])
                key = (backend, cipher)
                allreduce[key] = min(allreduce.get(key, float("inf")), best)
                print(f"allreduce {backend} {cipher}: best {best * 1e3:.1f} ms "
                      f"(median {statistics.median(run['seconds']) * 1e3:.1f} ms)", flush=True)

    world = args.world
    p2p_rows = [
        {"transport": transport, "encryption": cipher, "gbytes_per_s": p2p[(transport, cipher)],
         "vs_none": p2p[(transport, cipher)] / p2p[(transport, "none")]}
        for transport in ("ucx", "zmq") for cipher in CIPHERS
    ]
    gloo_seconds = allreduce[("gloo", "none")]
    allreduce_rows = []
    for backend, cipher in configs:
        seconds = allreduce[(backend, cipher)]
        algbw = args.bytes / seconds / 1e9
        allreduce_rows.append({
            "backend": backend, "encryption": cipher, "seconds": seconds,
            "algbw_gbytes_per_s": algbw, "busbw_gbytes_per_s": algbw * 2 * (world - 1) / world,
            "vs_wan_none": allreduce[("wan", "none")] / seconds,
            "vs_gloo": gloo_seconds / seconds,
        })
    result = {
        "bytes": args.bytes, "lanes": args.lanes, "p2p_iterations": args.p2p_iterations,
        "allreduce_iterations": args.allreduce_iterations,
        "allreduce_transport": args.allreduce_transport, "world": world, "rounds": args.rounds,
        "cpu": cpu_name(), "cores": os.cpu_count(), "p2p": p2p_rows, "allreduce": allreduce_rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "encryption.json").write_text(json.dumps(result, indent=2) + "\n")

    mib = args.bytes >> 20
    lines = [
        "# Cost of data-plane encryption",
        "",
        f"`python3 -m bench.encryption.run` on loopback, {result['cores']} cores ({result['cpu']}); "
        f"best of {args.rounds} interleaved rounds per configuration.",
        "",
        f"## {mib} MiB point-to-point ({args.lanes} lanes, {args.p2p_iterations} messages, 2 in flight)",
        "",
        "| transport | encryption | GB/s | vs none |",
        "|---|---|---|---|",
    ]
    for row in p2p_rows:
        lines.append(f"| {row['transport']} | {row['encryption']} | {row['gbytes_per_s']:.3f} | "
                     f"{row['vs_none']:.2f}x |")
    lines += [
        "",
        f"## {world}-rank {mib} MiB allreduce (float32, wan over {args.allreduce_transport})",
        "",
        "| backend | encryption | time (ms) | algbw (GB/s) | busbw (GB/s) | vs wan none | vs Gloo |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in allreduce_rows:
        lines.append(
            f"| {row['backend']} | {row['encryption']} | {row['seconds'] * 1e3:.1f} | "
            f"{row['algbw_gbytes_per_s']:.3f} | {row['busbw_gbytes_per_s']:.3f} | "
            f"{row['vs_wan_none']:.2f}x | {row['vs_gloo']:.2f}x |")
    lines.append("")
    (RESULTS / "encryption.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
