"""The least time a run of back-to-back collective calls can take on an emulated WAN-lab link,
whatever the algorithm, per call: what the benchmark's time per call is set against.

Three facts of the lab make it a bound rather than an estimate:
- bandwidth: every host sends through its own shaped uplink, which passes at most one token
  bucket (`burst_bytes`) at line rate and then `uplink_bps`; ingress is not shaped. So moving B
  bytes out of the hosts takes at least (B - their buckets) / their summed rates.
- latency: the lab holds every packet for the pair's one-way delay before the receiver sees it.
  The run cannot end before its last byte has left its sender and crossed one such delay, nor
  before the first call's outputs got inputs from the farthest pair in play.
- order: a rank issues a call only when its previous call returned. Where every rank's output
  needs every rank's input (all but broadcast), call i+1 cannot end anywhere before the data the
  last rank to finish call i sent afterwards has crossed one delay: one delay per call. A
  broadcast's root waits for nobody, so its calls may overlap and only the bytes count.
Only ONE one-way delay is charged per call, never ceil(log2 world): a root may send to every
rank at once, so more would not be a bound. Uncompressed bytes are assumed: a codec sends fewer,
and its rows get no bound.
"""

from __future__ import annotations

from typing import Any


def bytes_on_the_wire(collective: str, size: int, hosts: int) -> float:
    """The fewest bytes that must cross uplinks in a `size`-byte call over `hosts` hosts
    (nccl-tests' size convention), counted per element: a reduction of n inputs needs n-1
    transfers wherever it happens, and delivering a value to the n-1 hosts that lack it needs
    n-1 more. Allreduce: 2(n-1) per element; reduce-scatter: n-1; allgather: n-1 per element of
    the output; broadcast: n-1, of which the root must send every byte at least once; barrier:
    none (only its one-way delay per call counts)."""
    n = hosts
    if collective == "barrier":
        return 0
    if collective == "allreduce":
        return 2 * (n - 1) * size
    if collective in ("reduce_scatter", "allgather", "broadcast"):
        return (n - 1) * size
    raise ValueError(f"no lower bound for collective {collective!r}")


def lower_bound_seconds(collective: str, size: int, link: dict[str, Any],
                        calls: int = 1) -> float | None:
    """Per call, for `calls` back-to-back calls (see the module docstring); None when a host's
    uplink is unshaped (no bound from rate)."""
    rates, bursts = link["uplink_bps"], link["burst_bytes"]
    if link["hosts"] < 2 or not all(rates):
        return None
    # However the algorithm shares the bytes out, the uplinks together carry them; the buckets
    # fill up once, before the run.
    volume = calls * bytes_on_the_wire(collective, size, link["hosts"])
    transfer = max(0.0, volume - sum(bursts)) * 8 / sum(rates)
    if collective == "broadcast":
        # ... and every byte leaves the root once, through the root's uplink alone.
        transfer = max(transfer, max(0.0, calls * size - bursts[0]) * 8 / rates[0])
        nearest, farthest = link["root_one_way_min_s"], link["root_one_way_max_s"]
        in_order = 0.0
    else:
        nearest, farthest = link["one_way_min_s"], link["one_way_max_s"]
        in_order = farthest + (calls - 1) * nearest
    return max(transfer + nearest, in_order, farthest) / calls
