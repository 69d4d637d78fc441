"""``edge-moe report --plot FILE.png``: the frame's timeline and per-descriptor array utilization.

Top axis: one row per unit (array, attention, LayerNorm, router, DMA), one bar per busy interval
of :func:`sim.cycles.timeline.frame_timeline` (x in cycles from CTRL.start). Bottom axis: one bar
per descriptor that uses the PE array (GEMM, ROUTE, EXPERTS), its utilization
MACs / (cycles x R x C), x = descriptor index. matplotlib with the Agg backend (no display).
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from sim.config import Config  # noqa: E402
from sim.cycles.frame import FrameCost  # noqa: E402
from sim.cycles.timeline import TIMELINE_UNITS, frame_timeline  # noqa: E402

__all__ = ["plot_frame"]

UNIT_LABELS = {"array": "PE array", "attention": "attention", "layernorm": "LayerNorm",
               "router": "router", "dma": "DMA"}
OP_COLORS = {"GEMM": "tab:blue", "ROUTE": "tab:orange", "EXPERTS": "tab:green"}


def plot_frame(cfg: Config, cost: FrameCost, path) -> matplotlib.figure.Figure:
    """Draw the figure, write it to ``path`` (PNG) and return it (closed to pyplot)."""
    timeline = frame_timeline(cfg, cost)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), height_ratios=(1, 1.2))
    rows = list(reversed(TIMELINE_UNITS))            # array on top
    for y, unit in enumerate(rows):
        ivs = timeline[unit]
        if ivs:
            top.barh([y] * len(ivs), [e - s for s, e in ivs], left=[s for s, _ in ivs],
                     height=0.7, label=unit)
    top.set_yticks(range(len(rows)), [UNIT_LABELS[u] for u in rows])
    top.set_xlim(0, cost.cycles)
    top.set_xlabel("cycle")
    top.set_title(f"{cfg.name}: {cost.cycles:,} cycles per frame (busy intervals from the "
                  f"frame model)")

    rc = cfg.hw.macs_per_cycle
    used = [x for x in cost.layers if x.macs]
    for op, color in OP_COLORS.items():
        xs = [x for x in used if x.op == op]
        if xs:
            bottom.bar([x.index for x in xs], [x.macs / (x.cycles * rc) for x in xs],
                       color=color, label=op)
    bottom.set_ylim(0, 1)
    bottom.set_xlabel("descriptor")
    bottom.set_ylabel(f"array utilization (MACs / (cycles x {rc}))")
    bottom.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return fig
