"""Analytic cycle model of the tiled GEMM engine (hw/array/gemm_engine.py), exact for the RTL.

Counted from the cycle after the command handshake to the cycle of the last output handshake
(what the engine's ``cycles`` counter reports), with every input stream always valid and the
output always ready. R x C array, kt = ceil(K / R), nt = ceil(N / C), T = kt * nt tiles:

- the loader writes tile 0's R weight rows in cycles 1 .. R; tile 0 starts at cycle R + 1;
- tile j starts P = max(M, R) cycles after tile j - 1: M cycles of activation beats, or, when
  M < R, the R cycles it takes to load a weight tile (one row of C weights per cycle) into the
  second bank;
- the last beat (cycle R + (T - 1) P + M) leaves the array :func:`pe_array_latency` = R + L
  cycles later (L = ``cfg.hw.pe_mult_latency``: the registers of every PE's multiplier, the same
  in every PE, so they add to the array once), passes the accumulator stage (1 cycle) and the
  epilogue (:func:`epilogue_latency` cycles: EPILOGUE_LATENCY, less GELU's 3 stages when
  ``hw.gelu_site`` is "act" and GELU runs on the activation reads instead).

    cycles = 2 R + (T - 1) max(M, R) + M + L + 1 + epilogue_latency

``mac_active_cycles`` (beats issued) is T * M, and the MAC utilization of useful (unpadded) work
is ``M K N / (cycles R C)``.
"""
from __future__ import annotations

import math

from sim.config import Config, GemmShape

__all__ = ["EPILOGUE_LATENCY", "GELU_LATENCY", "epilogue_latency", "act_read_extra",
           "pe_array_latency", "gemm_tiles",
           "gemm_cycles", "gemm_active_cycles",
           "gemm_utilization", "steady_state_utilization", "frame_gemm_cycles"]

# Register stages of hw.array.epilogue.Epilogue (bias, requantize, 5 x GELU, score product, final add).
# Kept here as a number so the model does not import Amaranth; tests/sim/test_cycles_gemm.py
# checks it against Epilogue.latency.
EPILOGUE_LATENCY = 10
GELU_LATENCY = 5          # hw.array.gelu.GeluLane.latency (checked by the same test)


def epilogue_latency(cfg: Config) -> int:
    """Register stages of the config's epilogue: GELU's are there only with ``gelu_site``
    "epilogue"."""
    return EPILOGUE_LATENCY - (GELU_LATENCY if cfg.hw.gelu_on_reads else 0)


def act_read_extra(cfg: Config) -> int:
    """Cycles GELU adds to the top level's activation reads (``gelu_site`` "act"): they delay a
    GEMM's start where nothing hides them (weights already on chip, the expert prefetch); a
    first weight burst from memory hides them."""
    return GELU_LATENCY if cfg.hw.gelu_on_reads else 0


def pe_array_latency(cfg: Config) -> int:
    """Cycles from a beat entering the PE array to its sums leaving it (hw.array.pe_array):
    R rows of partial-sum registers plus the PE multipliers' registers."""
    return cfg.hw.array_rows + cfg.hw.pe_mult_latency


def gemm_tiles(cfg: Config, k: int, n: int) -> tuple[int, int]:
    """(kt, nt): K and N tile counts."""
    return math.ceil(k / cfg.hw.array_rows), math.ceil(n / cfg.hw.array_cols)


def gemm_cycles(cfg: Config, m: int, k: int, n: int) -> int:
    """Engine cycles of one M x K x N GEMM (exact for the RTL without back-pressure)."""
    if min(m, k, n) < 1:
        raise ValueError(f"GEMM sizes must be >= 1, got {m} x {k} x {n}")
    R = cfg.hw.array_rows
    kt, nt = gemm_tiles(cfg, k, n)
    tiles = kt * nt
    return R + (tiles - 1) * max(m, R) + m + pe_array_latency(cfg) + 1 + epilogue_latency(cfg)


def gemm_active_cycles(cfg: Config, m: int, k: int, n: int) -> int:
    """Cycles in which a beat enters the array (the engine's ``mac_active_cycles``)."""
    kt, nt = gemm_tiles(cfg, k, n)
    return kt * nt * m


def gemm_utilization(cfg: Config, m: int, k: int, n: int) -> float:
    """Useful MACs / (cycles x R x C) for one GEMM, fill and drain included."""
    return m * k * n / (gemm_cycles(cfg, m, k, n) * cfg.hw.macs_per_cycle)


def steady_state_utilization(cfg: Config, m: int, k: int, n: int) -> float:
    """Utilization of the tile loop alone (no fill / drain): M K N / (T max(M, R) R C)."""
    kt, nt = gemm_tiles(cfg, k, n)
    return m * k * n / (kt * nt * max(m, cfg.hw.array_rows) * cfg.hw.macs_per_cycle)


def frame_gemm_cycles(cfg: Config, shapes: list[GemmShape] | None = None) -> int:
    """Sum of gemm_cycles over a frame's linear layers (GemmShape.count times each).

    MoE expert shapes from ``cfg.model.gemms()`` carry all routed tokens (M = tokens * top_k);
    they are split here into ``experts`` GEMMs with the tokens spread evenly, as the router
    queues run them (one GEMM per expert, its tokens only).
    """
    md = cfg.model
    total = 0
    for g in shapes if shapes is not None else md.gemms():
        if g.name.startswith("expert_"):
            per, extra = divmod(g.m, md.experts)
            cyc = sum(gemm_cycles(cfg, per + (e < extra), g.k, g.n)
                      for e in range(md.experts) if per + (e < extra) > 0)
        else:
            cyc = gemm_cycles(cfg, g.m, g.k, g.n)
        total += cyc * g.count
    return total
