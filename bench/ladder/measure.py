"""Direct versus reverse rung of the zmq link across one emulated WAN link (50 ms, 1 Gbit/s):
two ranks on two public hosts of `wan-a`, then a public and a NATed host of `nat`. Needs root
and the lab (scripts/wanlab); hold the lab lock:

    flock /tmp/torchwan-lab.lock python3 -m bench.ladder.measure
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from scripts.wanlab import Lab

REPO = Path(__file__).resolve().parents[2]
RANK = (Path(__file__).parent / "rank.py").read_text()


def run(lab: Lab, hosts: list[str]) -> dict:
    python_path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
    env_base = {"MASTER_ADDR": lab.ip(hosts[0]), "MASTER_PORT": "29511", "WORLD_SIZE": "2",
                "TORCHWAN_TRANSPORT": "zmq", "TORCHWAN_HOST": "", "PYTHONPATH": python_path}
    ranks = [lab.python(host, RANK, env={**env_base, "RANK": str(rank), "LOCAL_RANK": "0"},
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank, host in enumerate(hosts)]
    outputs = [rank.communicate(timeout=300) for rank in ranks]
    if any(rank.returncode for rank in ranks):
        raise RuntimeError("\n---\n".join(err[-2000:] for _, err in outputs))
    return json.loads(outputs[0][0].strip().splitlines()[-1])


def main() -> None:
    results = {}
    runs = (("wan-a", [0, 1], "direct"), ("nat", ["pub", "nat1"], "reverse"))
    for scenario, hosts, label in runs:
        lab = Lab.up(scenario)
        try:
            results[label] = run(lab, hosts)
        finally:
            lab.down()
        print(label, results[label], file=sys.stderr, flush=True)
    results["reverse_over_direct"] = results["reverse"]["gbit_s"] / results["direct"]["gbit_s"]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
