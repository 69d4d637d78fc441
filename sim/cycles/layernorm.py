"""Cycle model of the LayerNorm unit (hw/norm/layernorm.py), exact for full-rate streams.

With ``B = dim / lanes`` beats per row, ``Ls`` = LATENCY_STATS (last input beat accepted ->
statistics visible) and ``Le`` = LATENCY_EMIT (row-buffer read issued -> beat on the output),
row r (0-based) of a back-to-back sequence, input always valid and output always ready:

    in[r]    = max(in[r-1] + B, issue[r-banks] + B)    first beat accepted (a free row slot)
    stats[r] = in[r] + B - 1 + Ls
    issue[r] = max(stats[r], issue[r-1] + B)           first read of the row
    out[r]   = issue[r] + Le                           first output beat

Total cycles (first input beat to last output beat, both inclusive) = issue[R-1] + B - 1 + Le + 1.
Steady state: a row every ``max(B, (2B + Ls - 1) / banks)`` cycles on average
(:func:`layernorm_period`): a slot is busy from a row's first input beat to its last read.
A parameter (gamma/beta) load is B cycles once the unit has drained (:func:`param_load_cycles`).
"""
from __future__ import annotations

from sim.config import Config

__all__ = ["LATENCY_STATS", "LATENCY_EMIT", "layernorm_schedule", "layernorm_cycles",
           "layernorm_period", "layernorm_latency", "param_load_cycles"]

# Must equal LayerNorm.latency_stats / latency_emit of hw/norm/layernorm.py (a test checks; sim/
# does not import hw/).
LATENCY_STATS = 13
LATENCY_EMIT = 8


def _beats(cfg: Config, lanes: int | None) -> int:
    lanes = cfg.hw.array_rows if lanes is None else lanes
    if cfg.model.dim % lanes:
        raise ValueError(f"dim {cfg.model.dim} is not a multiple of lanes {lanes}")
    return cfg.model.dim // lanes


def layernorm_schedule(cfg: Config, rows: int, *, lanes: int | None = None,
                       banks: int = 3) -> list[tuple[int, int]]:
    """(cycle of the first input beat, cycle of the first output beat) of each row."""
    b = _beats(cfg, lanes)
    ins, issues = [], []
    for r in range(rows):
        start = ins[-1] + b if ins else 0
        if r >= banks:
            start = max(start, issues[r - banks] + b)
        ins.append(start)
        stats = start + b - 1 + LATENCY_STATS
        issues.append(max(stats, issues[-1] + b) if issues else stats)
    return [(i, s + LATENCY_EMIT) for i, s in zip(ins, issues)]


def layernorm_cycles(cfg: Config, rows: int, *, lanes: int | None = None, banks: int = 3) -> int:
    """Cycles for ``rows`` back-to-back rows, first input beat to last output beat inclusive."""
    if rows <= 0:
        return 0
    b = _beats(cfg, lanes)
    _, first_out = layernorm_schedule(cfg, rows, lanes=lanes, banks=banks)[-1]
    return first_out + b


def layernorm_latency(cfg: Config, *, lanes: int | None = None) -> int:
    """Cycles from a row's first input beat to its first output beat on an empty unit."""
    return _beats(cfg, lanes) - 1 + LATENCY_STATS + LATENCY_EMIT


def layernorm_period(cfg: Config, *, lanes: int | None = None, banks: int = 3) -> float:
    """Steady-state cycles per row (average; B = dim / lanes whenever 2B + Ls - 1 <= banks * B)."""
    b = _beats(cfg, lanes)
    return max(float(b), (2 * b + LATENCY_STATS - 1) / banks)


def param_load_cycles(cfg: Config, *, lanes: int | None = None) -> int:
    """Cycles to load one gamma/beta set (one beat per cycle) into a drained unit."""
    return _beats(cfg, lanes)
