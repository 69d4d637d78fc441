"""When each unit of the top level is busy during a frame, from the frame model's descriptors.

:func:`frame_timeline` turns a :class:`~sim.cycles.frame.FrameCost` into busy intervals per
unit, each inside its descriptor's unit interval (``LayerCost.busy_start`` .. ``+ busy_cycles``:
the descriptor after any wait for the attention unit; a background ATTENTION's interval runs on
after its descriptor, beside the next head's GEMMs) and drawn from its start:

- ``array``: GEMM, ROUTE (gate GEMM) and EXPERTS descriptors, ``ceil(macs / (R x C))`` cycles:
  the useful MACs at the full array rate (fill, drain and padded tiles are the gap to the
  descriptor's length);
- ``attention``: ATTENTION, its unit interval; ``layernorm``: LAYERNORM, whole;
  ``router``: ROUTE, whole (the router takes the gate GEMM's logits as they come);
- ``dma``: every descriptor that moves data, ``ceil(bytes / mem_bytes_per_cycle)`` cycles (LOAD,
  STORE, GEMM weights and biases, gate and expert weights; the 64-byte descriptor fetches are
  not drawn).

The intervals follow ``LayerCost.busy_start``, so units that overlap in the model overlap here.
:func:`unit_busy_cycles` adds the units without a timeline row (epilogue score multiply, the
control multipliers), for the multiplier busy table of ``edge-moe report``.
"""
from __future__ import annotations

import math

from sim.config import Config
from sim.cycles.frame import FrameCost
from sim.memory_image import EpiMode, HwOp, lower_program

__all__ = ["TIMELINE_UNITS", "layer_busy", "frame_timeline", "unit_busy_cycles"]

TIMELINE_UNITS = ("array", "attention", "layernorm", "router", "dma")


def layer_busy(cfg: Config, layer) -> dict[str, int]:
    """Busy cycles of each unit within one descriptor (units that are idle left out)."""
    span = layer.busy_cycles         # the unit's own interval (a background ATTENTION's outlasts
    busy = {}                        # its descriptor; others start after a wait for attention)
    if layer.macs:
        busy["array"] = math.ceil(layer.macs / cfg.hw.macs_per_cycle)
    if layer.op == "ATTENTION":
        busy["attention"] = span
    elif layer.op == "LAYERNORM":
        busy["layernorm"] = span
    elif layer.op == "ROUTE":
        busy["router"] = span
    nbytes = layer.bytes_read + layer.bytes_written
    if nbytes:
        busy["dma"] = math.ceil(nbytes / cfg.hw.mem_bytes_per_cycle)
    # a unit cannot be busy longer than its interval
    return {u: min(c, span) for u, c in busy.items()}


def frame_timeline(cfg: Config, cost: FrameCost) -> dict[str, list[tuple[int, int]]]:
    """``unit -> [(start, end), ...]`` busy intervals (end exclusive), for TIMELINE_UNITS."""
    out: dict[str, list[tuple[int, int]]] = {u: [] for u in TIMELINE_UNITS}
    for layer in cost.layers:
        for unit, cyc in layer_busy(cfg, layer).items():
            if cyc:
                out[unit].append((layer.busy_start, layer.busy_start + cyc))
    return out


def _epilogue_score_beats(cfg: Config, cost: FrameCost) -> int:
    """Output beats that go through the epilogue's score multiply (RESIDUAL / SCALED mode).

    GEMM: ``m x ceil(n / C)`` beats when its epilogue mode is not PLAIN; EXPERTS: the expert
    fc2 (SCALED) gives ``ceil(dim / C)`` beats per chosen (token, expert) pair, ``tokens x k``
    of them whatever the routing.
    """
    md, C = cfg.model, cfg.hw.array_cols
    program = lower_program(cfg)
    beats = 0
    for layer in cost.layers:
        d = program[layer.index]
        if d.op is HwOp.GEMM and d.epi != EpiMode.PLAIN:
            beats += d.m * math.ceil(d.n / C)
        elif d.op is HwOp.EXPERTS:
            beats += md.tokens * md.top_k * math.ceil(md.dim / C)
    return beats


def unit_busy_cycles(cfg: Config, cost: FrameCost) -> dict[str, int]:
    """Busy cycles over the frame of every unit with multipliers (sim/multipliers.py) and DMA.

    Timeline units: the sum of their intervals. ``epilogue``: output beats through the score
    multiply. ``control``: one cycle per LOAD / STORE (job size) and ROUTE (gate address).
    """
    busy = {u: sum(e - s for s, e in iv) for u, iv in frame_timeline(cfg, cost).items()}
    busy["epilogue"] = _epilogue_score_beats(cfg, cost)
    busy["control"] = sum(x.op in ("LOAD", "STORE", "ROUTE") for x in cost.layers)
    return busy
