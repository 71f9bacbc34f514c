"""One rank of the ladder measurement: 64 MiB float32 all_reduce over the zmq link, 2 warm-up and
5 timed calls, between the ranks listed in LADDER_PAIR (e.g. "1,2"; default every rank) while
the others wait; the first of them prints one JSON line with the rung of each peer and the median
seconds. LADDER_OP=send: the first of them sends the 64 MiB to the second instead (one direction
only, so a relay's uplink carries the bytes once), and the receiver, which times from the barrier
to the message's arrival (one one-way delay more than the transfer), prints. LADDER_CALLS: timed
calls (default 5), for profiling a steady stream."""

import json
import os
import statistics
import time
from datetime import timedelta

import torch
import torch.distributed as dist

import torchwan

dist.init_process_group("wan", timeout=timedelta(seconds=120))
world = dist.get_world_size()
listed = os.environ.get("LADDER_PAIR", "")
pair = [int(rank) for rank in listed.split(",")] if listed else list(range(world))
group = dist.new_group(pair)
tensor = torch.ones(16 * 1024 * 1024, dtype=torch.float32)  # 64 MiB
one_way = os.environ.get("LADDER_OP") == "send"
timed_calls = int(os.environ.get("LADDER_CALLS", "5"))
seconds = []
if dist.get_rank() in pair:
    for call in range(2 + timed_calls):
        dist.barrier(group=group)
        start = time.perf_counter()
        if one_way:
            if dist.get_rank() == pair[0]:
                dist.send(tensor, pair[1])
            else:
                dist.recv(tensor, pair[0])
        else:
            dist.all_reduce(tensor, group=group)
        if call >= 2:
            seconds.append(time.perf_counter() - start)
links = {str(peer): entry["link"] for peer, entry in torchwan.stats()["peers"].items()}
dist.barrier()
if dist.get_rank() == pair[1 if one_way else 0]:
    median = statistics.median(seconds)
    print(json.dumps({"op": "send" if one_way else "all_reduce", "links": links,
                      "bytes": tensor.numel() * 4, "median_s": median,
                      "calls_s": [round(s, 4) for s in seconds],
                      "gbit_s": tensor.numel() * 4 * 8 / median / 1e9}), flush=True)
dist.destroy_process_group()
