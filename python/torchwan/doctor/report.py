"""The doctor's outputs: the text it prints, the JSON and the PNG heat map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RETRANSMIT_NOTE = ("retransmits: segments the sender's host retransmitted while it sent the probe "
                   "(delta of Tcp RetransSegs in /proc/net/snmp; it counts every connection of "
                   "the sender's network namespace, so ranks sharing a host count each other's "
                   "traffic too)")


def _matrix(title: str, rows: list[list[Any]], cell) -> list[str]:
    n = len(rows)
    lines = [title, "      " + "".join(f"{j:>9}" for j in range(n))]
    for i, row in enumerate(rows):
        lines.append(f"{i:>5} " + "".join(f"{'-' if i == j else cell(v):>9}"
                                          for j, v in enumerate(row)))
    return lines


def _retransmit_rates(m: dict[str, Any]) -> list[list[float]]:
    return [[r / s if s else 0.0 for r, s in zip(rr, ss)]
            for rr, ss in zip(m["retransmits"], m["segments"])]


def _settings_lines(m: dict[str, Any]) -> list[str]:
    lines = ["host TCP settings (per rank's host)",
             f"{'rank':>5}  {'host':<24} {'cc':<6} {'available':<18} {'rmem_max':>10} "
             f"{'wmem_max':>10} {'tcp_rmem':>10} {'tcp_wmem':>10} {'int8 GB/s':>9}"]
    for rank, h in enumerate(m["hosts"]):
        where = h["hostname"] + (f"/{h['address']}" if h["address"] else "")
        lines.append(f"{rank:>5}  {where[:24]:<24} {h['congestion_control']:<6} "
                     f"{' '.join(h['available_congestion_control'])[:18]:<18} "
                     f"{h['rmem_max']:>10} {h['wmem_max']:>10} {h['tcp_rmem_max']:>10} "
                     f"{h['tcp_wmem_max']:>10} {h['int8_codec_gbps']:>9.2f}")
    return lines


def text(m: dict[str, Any]) -> str:
    """Everything the doctor prints: matrices (row = sender), host settings, recommendations."""
    lines = [f"torchwan doctor: {m['world_size']} ranks, transport {m['transport']}, "
             f"{m['lanes']} lanes per peer, probe took {m['probe_seconds']:.1f} s", ""]
    lines += _matrix("RTT (ms), median of pings", m["rtt_ms"], lambda v: f"{v:.2f}") + [""]
    lines += _matrix("bandwidth (Gbit/s), row sends to column", m["bandwidth_gbps"],
                     lambda v: f"{v:.3f}") + [""]
    lines += _matrix("retransmitted segments (% of segments sent)", _retransmit_rates(m),
                     lambda v: f"{v:.3%}") + [RETRANSMIT_NOTE, ""]
    lines += _matrix("link (rung of the connection ladder)", m["link"], str) + [""]
    lines += _settings_lines(m) + ["", "recommendations"]
    for item in m["recommendations"]:
        mark = "CHANGE" if item["change"] else "ok"
        lines.append(f"  [{mark:>6}] {item['topic']}: {item['text']}")
        lines += [f"           $ {command}" for command in item.get("commands", [])]
    return "\n".join(lines)


def write_json(m: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps({**m, "retransmits_note": RETRANSMIT_NOTE}, indent=1) + "\n")


def write_png(m: dict[str, Any], path: Path) -> None:
    """Three heat maps side by side: RTT, bandwidth (row sends to column) and retransmit rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("RTT (ms)", m["rtt_ms"], "{:.2f}"),
              ("bandwidth (Gbit/s), row -> column", m["bandwidth_gbps"], "{:.2f}"),
              ("retransmits (% of segments)",
               [[100 * v for v in row] for row in _retransmit_rates(m)], "{:.3f}")]
    n = m["world_size"]
    figure, axes = plt.subplots(1, 3, figsize=(4.2 * 3, 3.8))
    for axis, (title, rows, fmt) in zip(axes, panels):
        # The diagonal (a rank with itself) is left blank rather than drawn as a zero.
        masked = [[float("nan") if i == j else v for j, v in enumerate(row)]
                  for i, row in enumerate(rows)]
        image = axis.imshow(masked, cmap="viridis")
        figure.colorbar(image, ax=axis, fraction=0.046)
        axis.set_title(title, fontsize=10)
        axis.set_xticks(range(n))
        axis.set_yticks(range(n))
        axis.set_xlabel("rank")
        axis.set_ylabel("rank")
        for i in range(n):
            for j in range(n):
                if i != j:
                    axis.text(j, i, fmt.format(rows[i][j]), ha="center", va="center",
                              color="white", fontsize=8)
    figure.suptitle(f"torchwan doctor: {n} ranks, links: "
                    + ", ".join(sorted({l for row in m["link"] for l in row if l != "self"})))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
