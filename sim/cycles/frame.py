"""Analytic cycle and traffic model of a whole frame on the top level (hw/top/).

The sequencer runs the hardware descriptors of :func:`sim.memory_image.lower_program` one at a
time (the next descriptor is fetched while one runs), except a *background* ATTENTION (one head,
``hw.attn_overlap``): the sequencer hands it to the attention unit once the unit is idle and
goes on with the next descriptors; those marked ``concurrent`` (the next head's Q/K/V GEMMs)
start at once, any other waits until the attention unit is idle. So the frame is the
sequencer's timeline: each descriptor's own time, plus its wait for the attention unit. Each
descriptor is modelled with its block's own exact model plus a small constant for the top
level's plumbing (job hand-off, the first DRAM access, draining the writer):

- GEMM: :func:`sim.cycles.gemm.gemm_cycles` (at least the weights' bus beats) + ``GEMM_OVERHEAD``;
- LAYERNORM: the gamma/beta load (``mem_latency`` + the bus beats of gamma and beta, at least
  ``dim / R``) + :func:`layernorm_cycles` + ``LN_OVERHEAD``;
- ATTENTION (``nheads`` heads back to back): the first head alone
  (:func:`attention_head_cycles`), every further one at the back-to-back rate
  (:func:`attention_steady_cycles`), + ``ATTN_OVERHEAD``;
- ROUTE and EXPERTS: the MoE path model :func:`sim.cycles.moe.moe_layer_cycles` (gate GEMM paced
  by the router; the ping/pong prefetcher's event model, with the tokens each expert received) +
  ``ROUTE_OVERHEAD`` / ``EXPERTS_OVERHEAD``; with streamed expert weights
  (``hw.expert_weights == "stream"``) EXPERTS is :func:`sim.cycles.moe.stream_schedule`'s whole
  descriptor (table, first grant, each expert GEMM reading its weights from memory);
- LOAD: one bus beat of ``mem_bytes_per_cycle`` per cycle + ``LOAD_OVERHEAD``;
- STORE: one beat per cycle + ``STORE_BURST_GAP`` per write burst of ``mem_max_burst`` beats
  (the DRAM model takes one write burst at a time and answers it before the next request:
  a property of the memory, which a real controller with posted writes would not have) +
  ``STORE_OVERHEAD``.

LOAD, GEMM, LAYERNORM and ROUTE also wait for the next descriptor's fetch on the read arbiter
(:func:`desc_contention_cycles`: its beats minus 2, so the model follows the memory beat, or
the job's register stage, ``sim.cycles.jobs.job_stage_cycles``, if that is longer).

The overhead constants were measured once on the RTL (``FrameResult.trace``, tiny config) and are
checked, with the whole model, by tests/system/test_frame_model.py against RTL frames (tiny in
every CI run; a reduced-depth, full-width M3ViT frame marked slow): within 5 %.
MoE cost depends on the routing: pass the per-layer expert token counts (from the golden model)
for an exact comparison, or let the model spread tokens evenly (``tokens_per_expert``).
A row-tiled H (``hw.hidden_rows``) needs nothing here: the program has one descriptor per tile,
and the MoE model splits each queue into chunks (:func:`sim.cycles.moe.expert_chunks`; the RTL's
EXPERTS is then a few cycles per reloaded chunk over the model, docs/top_level.md section 7).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.config import Config
from sim.memory_image import DESC_BYTES, HwOp, lower_program
from sim.cycles.attention import attention_head_cycles, attention_steady_cycles
from sim.cycles.gemm import gemm_cycles
from sim.cycles.jobs import job_stage_cycles
from sim.cycles.layernorm import layernorm_cycles, param_load_cycles
from sim.cycles.moe import moe_layer_cycles, tokens_per_expert

__all__ = ["LayerCost", "FrameCost", "frame_cost", "BUFFER_READ_LATENCY", "GEMM_OVERHEAD",
           "LN_OVERHEAD", "ATTN_OVERHEAD", "ROUTE_OVERHEAD", "EXPERTS_OVERHEAD", "LOAD_OVERHEAD",
           "STORE_OVERHEAD", "STORE_BURST_GAP", "START_EXTRA", "desc_fetch_cycles", "ISSUE", "ATTN_BG_BUSY",
           "descriptor_costs", "sequencer_timeline"]

# Cycles from a buffer read's address to its data (hw.top.buffers.BufferBank.latency: address
# register, block RAM, output register, the memory's word register). LAYERNORM, ATTENTION and STORE wait for one buffer
# read that nothing else hides (the first source row, the last K/V chunk, the first word
# stored); a GEMM's first buffer read overlaps its first weight burst.
BUFFER_READ_LATENCY = 4
# The next descriptor's fetch (DESC_BYTES, requested at decode) goes ahead of the first read of
# a descriptor that reads memory (LOAD, GEMM, LAYERNORM, ROUTE): :func:`desc_contention_cycles`
# is added to those, on top of these constants (measured with 8-byte beats: 6 cycles; 14 with
# 4-byte beats, 2 with 16-byte beats, as the RTL shows).
GEMM_OVERHEAD = 21       # job hand-off, first weight burst's latency share, writer drain
LN_OVERHEAD = 8 + BUFFER_READ_LATENCY
ATTN_OVERHEAD = 5 + BUFFER_READ_LATENCY
ROUTE_OVERHEAD = 4
EXPERTS_OVERHEAD = 29
LOAD_OVERHEAD = 16       # incl. the LOAD engine's registered buffer write (hw/top/load_store.py)
STORE_OVERHEAD = 4 + BUFFER_READ_LATENCY
STORE_BURST_GAP = 2      # cycles between write bursts (response, next request)
ISSUE = 2                # decode -> job handshake (DECODE, PREFETCH, the unit state)
ATTN_BG_BUSY = 4         # serial ATTENTION cycles not spent with the unit busy (hand-off, idle
#                          seen): a background head keeps the unit busy for cycles - this
DESC_FETCH_EXTRA = 6     # descriptor fetch: mem_latency + its beats + this (request -> decode;
#                          3 of them the sequencer's register stages: FIFO, tests, check)
START_EXTRA = 1          # CTRL.start -> first decode: one descriptor fetch + this


def desc_fetch_cycles(cfg: Config) -> int:
    """Decode to the next decode at the earliest: the next descriptor is requested right after
    a decode and arrives ``mem_latency`` + its beats later. Only a background ATTENTION (whose
    own time is 3 cycles) waits for it."""
    return cfg.hw.mem_latency + DESC_BYTES // cfg.hw.mem_bytes_per_cycle + DESC_FETCH_EXTRA


def desc_contention_cycles(cfg: Config) -> int:
    """Cycles a descriptor's first memory read waits behind the next descriptor's fetch on the
    read arbiter (its beats minus 2), or the job's register stage (``hw.job_stage``: the path
    starts that much later, and meets the fetch that much later), whichever is longer. A GEMM
    that waited for the attention unit finds that fetch done and pays the stage alone."""
    return max(DESC_BYTES // cfg.hw.mem_bytes_per_cycle - 2, job_stage_cycles(cfg))


@dataclass(frozen=True)
class LayerCost:
    index: int
    op: str
    note: str
    cycles: int          # the sequencer's time on it: from its decode to the next decode
    macs: int            # MACs on the PE array (0 for non-GEMM work; attention MACs separately)
    bytes_read: int
    bytes_written: int = 0
    start: int = 0       # cycle of its decode (from CTRL.start)
    busy_start: int = 0  # its unit's busy interval (a background ATTENTION outlives its
    busy_cycles: int = 0  # descriptor; other units are busy inside it)


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


def descriptor_costs(cfg: Config, program: list,
                     expert_counts: dict[int, list[int]] | None = None) -> list:
    """``(cycles, macs, bytes_read, bytes_written)`` of each descriptor of ``program`` on its
    own, before the sequencer's timeline (``None`` for END). ATTENTION reads only the attention
    unit's sizes and the descriptor; the MoE layers take ``expert_counts`` as in
    :func:`frame_cost` (a program with ROUTE / EXPERTS must be a whole frame's)."""
    m, n = cfg.model, cfg.num
    sb = n.act.storage_bytes
    wb = n.weight.storage_bytes
    bb = n.bias.storage_bytes
    out = []
    contention = desc_contention_cycles(cfg)
    job_stage = job_stage_cycles(cfg)
    route_overhead = ROUTE_OVERHEAD + contention   # also the gap before EXPERTS is decoded
    moe_i = 0
    moe_cache = {}              # ROUTE and EXPERTS of a block (and equal blocks) share one model
    for d in program:
        op = d.op
        macs = rd = wr = 0
        if op is HwOp.LOAD:
            rd = d.m * d.n * sb
            cyc = _beats(cfg, rd) + LOAD_OVERHEAD + contention
        elif op is HwOp.STORE:
            wr = d.m * d.n * sb
            beats = _beats(cfg, wr)
            cyc = (beats + STORE_BURST_GAP * math.ceil(beats / cfg.hw.mem_max_burst)
                   + STORE_OVERHEAD + job_stage)
        elif op is HwOp.GEMM:
            macs = d.m * d.k * d.n
            rd = d.k * d.n * wb + (d.n * bb if d.bias else 0)
            # A GEMM of few rows (a row tile, hw.hidden_rows) waits for its weights: a weight
            # tile of R x C weights must arrive within the max(M, R) cycles it is used for.
            # A lower bound only (the strided reads' own rate is not modelled).
            cyc = (max(gemm_cycles(cfg, d.m, d.k, d.n), _beats(cfg, rd)) + GEMM_OVERHEAD
                   + contention)
        elif op is HwOp.LAYERNORM:
            rd = m.dim * (n.ln_gamma.storage_bytes + sb)
            # gamma and beta arrive one after the other on the bus; the unit takes a parameter
            # beat only when both halves are there, so the load lasts as long as the bus needs.
            cyc = (cfg.hw.mem_latency + max(param_load_cycles(cfg), _beats(cfg, rd))
                   + layernorm_cycles(cfg, d.m) + LN_OVERHEAD + contention)
        elif op is HwOp.ATTENTION:
            cyc = (attention_head_cycles(cfg, d.m) + (d.nheads - 1) * attention_steady_cycles(cfg, d.m)
                   + ATTN_OVERHEAD + job_stage)
        elif op in (HwOp.ROUTE, HwOp.EXPERTS):
            block = m.moe_blocks[moe_i]
            counts = (expert_counts or {}).get(block) or tokens_per_expert(cfg)
            chosen = [c for c in counts if c]
            key = tuple(chosen)
            if key not in moe_cache:
                moe_cache[key] = moe_layer_cycles(cfg, chosen, router_slices=True,
                                                  job_stage=job_stage,
                                                  expert_weights=cfg.hw.expert_weights,
                                                  route_gap=route_overhead)
            moe = moe_cache[key]
            if op is HwOp.ROUTE:
                cyc = moe.route + route_overhead
                macs = m.tokens * m.dim * m.experts
                rd = m.experts * m.dim * wb
            else:
                # streamed expert weights: the model is the whole descriptor already
                cyc = moe.experts + (EXPERTS_OVERHEAD if cfg.hw.expert_weights == "prefetch"
                                     else 0)
                macs = sum(chosen) * 2 * m.dim * m.expert_hidden
                rd = moe.bytes - m.experts * m.dim * wb
                moe_i += 1
        else:       # END
            out.append(None)
            continue
        out.append((cyc, macs, rd, wr))
    return out


def sequencer_timeline(cfg: Config, program: list, own: list,
                       want_times: bool = True) -> tuple[int, list | None]:
    """(frame cycles, ``(start, cycles, busy_start, busy_cycles)`` per descriptor but END): the
    sequencer's timeline of ``program`` whose descriptors cost ``own``
    (:func:`descriptor_costs`). Reads from ``cfg`` only the memory's latency and beat (the
    descriptor fetch) and ``hw.job_stage``, so a sweep may combine costs computed under
    different unit sizes;
    ``want_times=False`` returns only the frame cycles (and None), for sweeps."""
    fetch = desc_fetch_cycles(cfg)
    # a GEMM that waited for the attention unit pays the job stage, not the fetch contention
    waited_saving = desc_contention_cycles(cfg) - job_stage_cycles(cfg)
    attention, gemm = HwOp.ATTENTION, HwOp.GEMM
    t = fetch + START_EXTRA      # the sequencer's clock: decode of the next descriptor
    attn_free = 0                # first cycle the attention unit is idle again
    times = [] if want_times else None
    for d, c in zip(program, own):
        if c is None:           # END: waits for a background attention
            t = max(t, attn_free)
            continue
        cyc = c[0]
        op = d.op
        if op is attention and d.background:
            # The sequencer hands the head over as soon as the unit is idle and goes on (once
            # the next descriptor is there).
            issue = max(t + ISSUE, attn_free)
            busy = cyc - ATTN_BG_BUSY
            span = max(issue + 1 - t, fetch)
            if want_times:
                times.append((t, span, issue + 1, busy))
            attn_free = issue + 1 + busy
        else:
            wait = 0 if d.concurrent or attn_free <= t + ISSUE else attn_free - (t + ISSUE)
            if wait >= fetch and op is gemm:
                cyc -= waited_saving
            span = cyc + wait
            if want_times:
                times.append((t, span, t + wait + ISSUE, cyc - ISSUE))
        t += span
    return t, times


def frame_cost(cfg: Config, expert_counts: dict[int, list[int]] | None = None,
               program: list | None = None) -> FrameCost:
    """Model one frame. ``expert_counts[block]``: tokens routed to each expert (all experts,
    index order); default: tokens spread evenly over the experts. ``program``: the descriptors
    (default ``lower_program(cfg)``, which builds a weight image for the addresses and is most
    of this function's time); the costs read each descriptor's op, shape and overlap flags,
    not its addresses, so a sweep may pass the program of a config that lowers alike."""
    m = cfg.model
    program = lower_program(cfg) if program is None else program
    own = descriptor_costs(cfg, program, expert_counts)
    t, times = sequencer_timeline(cfg, program, own)
    layers = [LayerCost(i, d.op.name, d.note, span, c[1], c[2], c[3], start, busy_start, busy)
              for (i, d), c, (start, span, busy_start, busy)
              in zip(((i, d) for i, d in enumerate(program) if own[i] is not None),
                     (c for c in own if c is not None), times)]
    return FrameCost(cfg.name, layers, t,
                     sum(x.macs for x in layers), m.attention_macs,
                     len(program) * DESC_BYTES + sum(x.bytes_read for x in layers),
                     sum(x.bytes_written for x in layers),
                     cfg.hw.macs_per_cycle, cfg.hw.clock_mhz)
