"""Direct, reverse and relayed rungs of the zmq link across emulated WAN links (50 ms, 1 Gbit/s):
two ranks on two public hosts of `wan-a`; a public and a NATed host of `nat`; two NATed hosts of
`nat` through a relay on its public host (a third rank there holds the store; the pair's
all_reduce crosses the relay, encrypted end to end as a relay makes the default). Needs root and
the lab (scripts/wanlab); hold the lab lock:

    flock /tmp/torchwan-lab.lock python3 -m bench.ladder.measure [direct] [reverse] [relay]
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.wanlab import Lab

REPO = Path(__file__).resolve().parents[2]
RANK = (Path(__file__).parent / "rank.py").read_text()


def run(lab: Lab, hosts: list[str], extra_env: dict[str, str] | None = None) -> dict:
    python_path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
    env_base = {"MASTER_ADDR": lab.ip(hosts[0]), "MASTER_PORT": "29511",
                "WORLD_SIZE": str(len(hosts)), "TORCHWAN_TRANSPORT": "zmq", "TORCHWAN_HOST": "",
                "PYTHONPATH": python_path, **(extra_env or {})}
    ranks = [lab.python(host, RANK, env={**env_base, "RANK": str(rank), "LOCAL_RANK": "0"},
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank, host in enumerate(hosts)]
    outputs = [rank.communicate(timeout=300) for rank in ranks]
    if any(rank.returncode for rank in ranks):
        raise RuntimeError("\n---\n".join(err[-2000:] for _, err in outputs))
    printed = [out.strip().splitlines()[-1] for out, _ in outputs if out.strip()]
    return json.loads(printed[0])


def run_relayed(lab: Lab, workdir: Path) -> dict:
    """LADDER_RELAY_PLAINTEXT=1: no job secret, so neither CURVE on the relay's hops nor
    end-to-end encryption (to see what the cryptography costs). LADDER_RELAY_WINDOW_BYTES: the
    relay's window. LADDER_RELAY_CONGESTION: the relay's --congestion (TORCHWAN_CONGESTION
    sets the members' end, as for any transport connection)."""
    plaintext = os.environ.get("LADDER_RELAY_PLAINTEXT") == "1"
    window = os.environ.get("LADDER_RELAY_WINDOW_BYTES", str(16 << 20))  # the relay's default
    relay_argv = [sys.executable, "-m", "torchwan._relay_cli", "--port", "443",
                  "--window-bytes", window]
    rank_env = {"LADDER_PAIR": "1,2", "TORCHWAN_RELAY": f"{lab.ip('pub')}:443"}
    congestion = os.environ.get("LADDER_RELAY_CONGESTION")  # e.g. system: the relay's own end
    if congestion:
        relay_argv += ["--congestion", congestion]
    if plaintext:
        rank_env["TORCHWAN_ENCRYPTION"] = "none"
    else:
        secret = workdir / "job.key"
        subprocess.run([sys.executable, "-m", "torchwan.secret", str(secret)], check=True,
                       stdout=subprocess.DEVNULL)
        relay_argv += ["--secret-file", str(secret)]
        rank_env["TORCHWAN_SECRET_FILE"] = str(secret)
    relay = lab.popen("pub", relay_argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                      text=True)
    try:
        time.sleep(1.0)
        result = run(lab, ["pub", "nat1", "nat2"], rank_env)
    finally:
        relay.terminate()
        relay.communicate(timeout=10)
    return {**result, "encrypted": not plaintext, "relay_window_bytes": int(window)}


def main() -> None:
    results = {}
    runs = (("wan-a", "direct", lambda lab: run(lab, [0, 1])),
            ("nat", "reverse", lambda lab: run(lab, ["pub", "nat1"])),
            ("nat", "relay", lambda lab: run_relayed(lab, Path(tempfile.mkdtemp()))))
    for scenario, label, measure in runs:
        if len(sys.argv) > 1 and label not in sys.argv[1:]:
            continue
        lab = Lab.up(scenario)
        try:
            results[label] = measure(lab)
        finally:
            lab.down()
        print(label, results[label], file=sys.stderr, flush=True)
    for label in ("reverse", "relay"):
        if label in results and "direct" in results:
            results[f"{label}_over_direct"] = results[label]["gbit_s"] / results["direct"]["gbit_s"]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
