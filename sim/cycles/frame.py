"""Analytic cycle and traffic model of a whole frame on the top level (hw/top/).

The sequencer runs the hardware descriptors of :func:`sim.memory_image.lower_program` one at a
time (the next descriptor is fetched while one runs), so a frame costs the sum of its
descriptors. Each descriptor is modelled with its block's own exact model plus a small constant
for the top level's plumbing (job hand-off, the first DRAM access, draining the writer):

- GEMM: :func:`sim.cycles.gemm.gemm_cycles` + ``GEMM_OVERHEAD``;
- LAYERNORM: the gamma/beta load (``mem_latency`` + the bus beats of gamma and beta, at least
  ``dim / R``) + :func:`layernorm_cycles` + ``LN_OVERHEAD``;
- ATTENTION (``nheads`` heads back to back): the first head alone
  (:func:`attention_head_cycles`), every further one at the back-to-back rate
  (:func:`attention_steady_cycles`), + ``ATTN_OVERHEAD``;
- ROUTE and EXPERTS: the MoE path model :func:`sim.cycles.moe.moe_layer_cycles` (gate GEMM paced
  by the router; the ping/pong prefetcher's event model, with the tokens each expert received) +
  ``ROUTE_OVERHEAD`` / ``EXPERTS_OVERHEAD``;
- LOAD: one bus beat of ``mem_bytes_per_cycle`` per cycle + ``LOAD_OVERHEAD``;
- STORE: one beat per cycle + ``STORE_BURST_GAP`` per write burst of ``mem_max_burst`` beats
  (the DRAM model takes one write burst at a time and answers it before the next request:
  a property of the memory, which a real controller with posted writes would not have) +
  ``STORE_OVERHEAD``.

The overhead constants were measured once on the RTL (``FrameResult.trace``, tiny config) and are
checked, with the whole model, by tests/system/test_frame_model.py against RTL frames (tiny in
every CI run; a reduced-depth, full-width M3ViT frame marked slow): within 5 %.
MoE cost depends on the routing: pass the per-layer expert token counts (from the golden model)
for an exact comparison, or let the model spread tokens evenly (``tokens_per_expert``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.config import Config
from sim.memory_image import DESC_BYTES, HwOp, lower_program
from sim.cycles.attention import attention_head_cycles, attention_steady_cycles
from sim.cycles.gemm import gemm_cycles
from sim.cycles.layernorm import layernorm_cycles, param_load_cycles
from sim.cycles.moe import moe_layer_cycles, tokens_per_expert

__all__ = ["LayerCost", "FrameCost", "frame_cost", "GEMM_OVERHEAD", "LN_OVERHEAD",
           "ATTN_OVERHEAD", "ROUTE_OVERHEAD", "EXPERTS_OVERHEAD", "LOAD_OVERHEAD",
           "STORE_OVERHEAD", "STORE_BURST_GAP", "START_OVERHEAD"]

GEMM_OVERHEAD = 26       # job hand-off, first weight burst's latency share, writer drain
LN_OVERHEAD = 14
ATTN_OVERHEAD = 6
ROUTE_OVERHEAD = 9
EXPERTS_OVERHEAD = 27
LOAD_OVERHEAD = 20
STORE_OVERHEAD = 5
STORE_BURST_GAP = 2      # cycles between write bursts (response, next request)
START_OVERHEAD = 19      # CTRL.start -> first descriptor decoded


@dataclass(frozen=True)
class LayerCost:
    index: int
    op: str
    note: str
    cycles: int
    macs: int            # MACs on the PE array (0 for non-GEMM work; attention MACs separately)
    bytes_read: int
    bytes_written: int = 0
    start: int = field(kw_only=True)   # cycle the descriptor starts at, from CTRL.start


@dataclass(frozen=True)
class FrameCost:
    config: str
    layers: list
    cycles: int
    array_macs: int
    attention_macs: int
    bytes_read: int
    bytes_written: int
    macs_per_cycle: int
    clock_mhz: float

    @property
    def mac_utilization(self) -> float:
        """PE-array MACs of the frame / (cycles x array size)."""
        return self.array_macs / (self.cycles * self.macs_per_cycle)

    @property
    def ms_per_frame(self) -> float:
        return self.cycles / (self.clock_mhz * 1e3)


def _beats(cfg: Config, nbytes: int) -> int:
    return math.ceil(nbytes / cfg.hw.mem_bytes_per_cycle)


def frame_cost(cfg: Config, expert_counts: dict[int, list[int]] | None = None) -> FrameCost:
    """Model one frame. ``expert_counts[block]``: tokens routed to each expert (all experts,
    index order); default: tokens spread evenly over the experts."""
    m, n = cfg.model, cfg.num
    sb = n.act.storage_bytes
    wb = n.weight.storage_bytes
    bb = n.bias.storage_bytes
    layers = []
    moe_i = 0
    start = START_OVERHEAD
    program = lower_program(cfg)
    for i, d in enumerate(program):
        op = d.op
        macs = rd = wr = 0
        if op is HwOp.LOAD:
            rd = d.m * d.n * sb
            cyc = _beats(cfg, rd) + LOAD_OVERHEAD
        elif op is HwOp.STORE:
            wr = d.m * d.n * sb
            beats = _beats(cfg, wr)
            cyc = (beats + STORE_BURST_GAP * math.ceil(beats / cfg.hw.mem_max_burst)
                   + STORE_OVERHEAD)
        elif op is HwOp.GEMM:
            cyc = gemm_cycles(cfg, d.m, d.k, d.n) + GEMM_OVERHEAD
            macs = d.m * d.k * d.n
            rd = d.k * d.n * wb + (d.n * bb if d.bias else 0)
        elif op is HwOp.LAYERNORM:
            rd = m.dim * (n.ln_gamma.storage_bytes + sb)
            # gamma and beta arrive one after the other on the bus; the unit takes a parameter
            # beat only when both halves are there, so the load lasts as long as the bus needs.
            cyc = (cfg.hw.mem_latency + max(param_load_cycles(cfg), _beats(cfg, rd))
                   + layernorm_cycles(cfg, d.m) + LN_OVERHEAD)
        elif op is HwOp.ATTENTION:
            cyc = (attention_head_cycles(cfg, d.m) + (d.nheads - 1) * attention_steady_cycles(cfg, d.m)
                   + ATTN_OVERHEAD)
        elif op in (HwOp.ROUTE, HwOp.EXPERTS):
            block = m.moe_blocks[moe_i]
            counts = (expert_counts or {}).get(block) or tokens_per_expert(cfg)
            chosen = [c for c in counts if c]
            moe = moe_layer_cycles(cfg, chosen, router_slices=True)
            if op is HwOp.ROUTE:
                cyc = moe.route + ROUTE_OVERHEAD
                macs = m.tokens * m.dim * m.experts
                rd = m.experts * m.dim * wb
            else:
                cyc = moe.experts + EXPERTS_OVERHEAD
                macs = sum(chosen) * 2 * m.dim * m.expert_hidden
                rd = moe.bytes - m.experts * m.dim * wb
                moe_i += 1
        else:       # END
            continue
        layers.append(LayerCost(i, op.name, d.note, cyc, macs, rd, wr, start=start))
        start += cyc
    return FrameCost(cfg.name, layers, START_OVERHEAD + sum(x.cycles for x in layers),
                     sum(x.macs for x in layers), m.attention_macs,
                     len(program) * DESC_BYTES + sum(x.bytes_read for x in layers),
                     sum(x.bytes_written for x in layers),
                     cfg.hw.macs_per_cycle, cfg.hw.clock_mhz)
