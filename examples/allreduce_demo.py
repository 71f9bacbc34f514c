"""The main job: 4 ranks all-reduce one realistic gradient (100 MiB of float32, about ResNet-50's)
on the "wan" backend, on "wan" with int8 compression and on Gloo, check each result against
Gloo's, and print time, algbw and busbw side by side. On an emulated WAN (the WAN lab's `wan-a`:
4 hosts, 50 ms RTT, 1 Gbit/s) when this machine can run it (root, network namespaces), else on
loopback, saying why. The WAN run writes bench/results/demo_wan-a.{md,json,png}.

    python3 examples/allreduce_demo.py [--loopback] [--megabytes 100] [--world-size 4]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the checkout: bench/
from bench.demo.run import run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loopback", action="store_true",
                        help="run on this machine's loopback even where the WAN lab could run")
    parser.add_argument("--megabytes", type=int, default=100, help="MiB per allreduce")
    parser.add_argument("--world-size", type=int, default=4)
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds of timed calls per backend (at least one call)")
    args = parser.parse_args()
    run(args.megabytes, args.world_size, args.loopback, args.budget)


if __name__ == "__main__":
    main()
