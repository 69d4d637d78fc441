"""Cycle and memory-traffic model of the attention unit (hw/attention/attention.py), exact for the RTL.

Notation: p = cfg.hw.attn_parallel lanes, dw = cfg.hw.attn_dot_width, hd = head_dim,
c = hd / dw (cycles per key per lane), N tokens, G = ceil(N / p) groups of query rows per head,
L = N - (G - 1) p rows in the last group, nw = normalizer width, D = divider latency.

One head in isolation (Q, K/V always valid, O always ready), counted in clock edges from the
first edge after reset (edge 1) to the edge of the last O transfer:

- the Q loader writes one chunk per cycle, so the p lanes hold group 0 after p c edges and the
  first K/V beat is accepted on edge p c + 1;
- then one K/V beat per edge: the last (G N c-th) one on edge p c + G N c;
- in lane 0 that beat's exponential appears E = e_latency(dw) edges later; the hold edge, V1a,
  V1b and the c V2 edges finish the row and start the divider (D edges); the normalizer's 4
  stages and the transfer edge put lane 0's first output beat E + c + D + 8 edges after the
  last K/V beat. Lanes 1 .. L-1 finish one edge apart, but the normalizer emits hd / nw beats per row
  (nw <= hd), so the L rows of the last group leave back to back, the last beat
  L hd / nw - 1 edges after the first:

      cycles = p c + G N c + E + 7 + c + D + L hd / nw

Back to back (heads streamed continuously) a head costs G N c cycles: the Q rows of the next
head load while the current one runs, and the normalizer (chosen so p hd / nw + D + 8 <= N c)
drains a group before the next one ends. G N c ~ N^2 c / p: cycles drop as 1/p.

Memory traffic: each K/V beat carries dw keys and dw values (2 dw act.storage_bytes bytes), one
beat per cycle, independent of p; Q and O add N hd act.storage_bytes bytes each per head.

Also here (pure Python, no Amaranth) the schedule choices the RTL uses: the divider's quotient
bits per cycle and the normalizer width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sim.config import Config

__all__ = ["E_LATENCY_FIXED", "LANE_EXP2_LATENCY", "adder_tree_levels", "e_latency", "recip_q_bits", "divider_bits_per_cycle", "divider_latency",
           "AttentionSchedule", "attention_schedule", "attention_head_cycles",
           "attention_steady_cycles", "attention_kv_bytes", "attention_traffic",
           "attention_sweep"]

# Lane pipeline from a key's last K chunk to its exponential (hw/attention/attention_lane.py,
# each stage at most one multiply, one wide add / compare or one barrel shift: docs/attention.md
# "Timing"): q * k operand and product registers (2), the adder tree's levels (one register per
# level: adder_tree_levels(dw)), the dot accumulator (1), the score: clamp, two partial
# products, their sum, round + saturate (4), ceil (1), running max (1), then the lane's
# pipelined Exp2 (LANE_EXP2_LATENCY). tests/sim/test_cycles_attention.py checks them against
# hw.attention.attention_lane.AttentionLane.latency and hw.attention.exp2.Exp2.
E_LATENCY_FIXED = 9
LANE_EXP2_LATENCY = 5
# Edges from the last K/V beat to lane 0's first output transfer besides e_latency, c (V2 edges,
# the last one hands l to the divider) and the divider latency D: e hold / V chunk pop (1), e * v
# operand and product registers V1a, V1b (2), normalizer N1 + N2 + N3 + output register (4) = 7; the
# output transfer is on the next edge after the register is loaded, which the "- 1 + L hd / nw"
# of the row beats absorbs.
_TAIL_FIXED = 7


def adder_tree_levels(dw: int) -> int:
    """Registered levels of the lane's dw-input adder tree: ceil(log2 dw)."""
    return (int(dw) - 1).bit_length()


def e_latency(dw: int) -> int:
    """Edges from a key's last K chunk entering a lane to its exponential (``e_event``)."""
    return E_LATENCY_FIXED + adder_tree_levels(dw) + LANE_EXP2_LATENCY


def recip_q_bits(cfg: Config) -> int:
    """Width of r = round(2^R / l), l >= 2^(exp.frac - 1): recip_frac + 2 bits."""
    n = cfg.num
    return n.exp.frac_bits + n.recip_frac - (n.exp.frac_bits - 1) + 1


def divider_bits_per_cycle(cfg: Config, period: int) -> int:
    """Fewest quotient bits per cycle so that one division (latency + 1 cycles) fits in
    ``period`` cycles."""
    qb = recip_q_bits(cfg)
    for k in range(1, qb + 1):
        if math.ceil(qb / k) + 1 <= period:
            return k
    return qb


def divider_latency(cfg: Config, bits_per_cycle: int) -> int:
    return math.ceil(recip_q_bits(cfg) / bits_per_cycle)


@dataclass(frozen=True)
class AttentionSchedule:
    p: int
    dw: int
    hd: int
    c: int
    N: int
    G: int
    last_rows: int
    div_bits_per_cycle: int
    div_latency: int
    norm_width: int


def attention_schedule(cfg: Config, tokens: int | None = None,
                       norm_width: int | None = None) -> AttentionSchedule:
    """Sizes and schedule choices of the attention unit for ``tokens`` (default cfg tokens).

    The lane dividers must finish within half a group period (N c cycles); the normalizer width
    nw is the smallest divisor of hd with D + 8 + p hd / nw <= N c, so that p finished rows are
    drained before the lanes finish the next group (hd if none is small enough).
    """
    N = cfg.model.tokens if tokens is None else int(tokens)
    p, dw, hd = cfg.hw.attn_parallel, cfg.hw.attn_dot_width, cfg.model.head_dim
    c = hd // dw
    G = math.ceil(N / p)
    period = N * c
    k = divider_bits_per_cycle(cfg, max(2, period // 2))
    lat = divider_latency(cfg, k)
    if norm_width is None:
        norm_width = hd
        for nw in (d for d in range(1, hd + 1) if hd % d == 0):
            if lat + 8 + p * (hd // nw) <= period:
                norm_width = nw
                break
    return AttentionSchedule(p=p, dw=dw, hd=hd, c=c, N=N, G=G, last_rows=N - (G - 1) * p,
                             div_bits_per_cycle=k, div_latency=lat, norm_width=norm_width)


def attention_head_cycles(cfg: Config, tokens: int | None = None,
                          norm_width: int | None = None) -> int:
    """Cycles of one isolated head, first edge to last O transfer (exact for the RTL)."""
    s = attention_schedule(cfg, tokens, norm_width)
    return (s.p * s.c + s.G * s.N * s.c + e_latency(s.dw) + _TAIL_FIXED + s.c + s.div_latency
            + s.last_rows * (s.hd // s.norm_width))


def attention_steady_cycles(cfg: Config, tokens: int | None = None) -> int:
    """Cycles per head when heads stream back to back: one K/V beat per cycle."""
    s = attention_schedule(cfg, tokens)
    return s.G * s.N * s.c


def attention_kv_bytes(cfg: Config, tokens: int | None = None) -> int:
    """K/V bytes read from memory for one head: G passes over N keys and N values."""
    s = attention_schedule(cfg, tokens)
    return s.G * s.N * s.c * 2 * s.dw * cfg.num.act.storage_bytes


def attention_traffic(cfg: Config, tokens: int | None = None) -> dict:
    """Per head: cycles (isolated and steady), K/V, Q and O bytes and bytes per cycle."""
    s = attention_schedule(cfg, tokens)
    b = cfg.num.act.storage_bytes
    kv = attention_kv_bytes(cfg, tokens)
    iso = attention_head_cycles(cfg, tokens)
    steady = attention_steady_cycles(cfg, tokens)
    qo = 2 * s.N * s.hd * b
    return dict(p=s.p, tokens=s.N, head_dim=s.hd, cycles=iso, steady_cycles=steady,
                kv_bytes=kv, q_bytes=qo // 2, o_bytes=qo // 2,
                kv_bytes_per_cycle=kv / iso, kv_bytes_per_steady_cycle=kv / steady,
                total_bytes_per_steady_cycle=(kv + qo) / steady,
                ideal_cycles=s.N * s.N * s.c / s.p + s.p - 1)


def attention_sweep(cfg: Config, ps=(1, 2, 4, 8), tokens: int | None = None) -> list[dict]:
    """attention_traffic for each p (attn_parallel) in ``ps``."""
    from sim.config import with_changes
    return [attention_traffic(with_changes(cfg, hw=dict(attn_parallel=p)), tokens) for p in ps]
