"""Attention: fused QK^T -> online exp2 softmax -> PV with p query-row lanes and one K/V pass
per group of p rows (the streaming reorder), bit-exact with ``attention_head``.

``Attention(cfg, tokens=None, norm_width=None)`` computes, head after head,
``sim.golden.softmax.attention_head(cfg, q, k, v)`` for q, k, v of shape (N, head_dim).

Structure (``p = cfg.hw.attn_parallel`` lanes, ``dw = cfg.hw.attn_dot_width`` multipliers per
lane for q.k and as many for e*v, ``c = head_dim / dw`` chunks per row):

- the **K/V stream** carries, for each group of p query rows, every key/value row once, chunk by
  chunk (order: ``hw.attention.attention_stream``). An accepted beat enters lane 0 and is passed
  on, one register per lane, so lane i sees the same beat i cycles after lane 0 (the *skew*):
  every lane consumes every K/V beat, and external memory delivers one K chunk + one V chunk per
  cycle whatever p is. Scores never leave the lanes and each score is exponentiated once (online
  softmax with an integer running max: rescaling the sum and the output accumulator is a shift).
- V chunks wait in a small FIFO until lane 0 has the exponential of their key
  (``AttentionLane.latency`` cycles after the key's last K chunk); they then travel down the lanes
  with the same skew, so each lane meets v_j exactly when its own e_j is ready.
- **Q rows** are loaded into the lanes' ``q_next`` buffers while the previous group runs; a group
  starts (its first K/V beat is accepted) only when all p lanes hold their row (lanes beyond the
  last row of a head's final, partial group get a dummy and their results are dropped).
- Each lane finishes its row into a hold register and starts its divider; the shared
  ``AttentionNormalizer`` turns the rows, in order, into O beats.

Ports (``amaranth.lib.stream``; beat order in ``hw.attention.attention_stream``)::

    q   In(stream(ArrayLayout(signed(act.bits), dw)))        Q rows, c beats per row
    kv  In(stream({"k": ArrayLayout(act, dw), "v": ArrayLayout(act, dw)}))
    o   Out(stream({"o": ArrayLayout(act, norm_width), "last": 1}))   O rows, hd/nw beats each
    kv_bytes  Out(48)    bytes accepted on kv since reset (the memory-port counter)
    cycles    Out(48)    cycles since reset

Throughput: one K/V beat per cycle; a head takes ``G * N * c`` K/V beats (G = ceil(N / p)), so
about ``N^2 * c / p`` cycles, while the K/V port moves ``2 * dw * act.storage_bytes`` bytes per
cycle independent of p. The normalizer (``norm_width`` outputs per cycle, chosen so that p rows
fit in a group period) and the lane dividers keep up, so heads stream back to back. Latency and
the exact cycle count of an isolated head: ``sim.cycles.attention.attention_head_cycles``.

Stalls: O back-pressure stops everything only when a lane must hand over a row while its hold
register is still waiting for the normalizer; Q/K/V gaps travel as bubbles.

Resources: p lanes of 2 * dw + 2 multipliers (+ a small one in each Exp2), ``norm_width``
multipliers of o_bits x q_bits in the normalizer, p sequential dividers, p * hd * o_bits * 2
accumulator/hold flip-flops, a (2c + e_latency(dw) + 4)-entry FIFO of dw values.
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.cycles.attention import e_latency
from hw.attention.attention_lane import (AttentionLane, AttentionParams, attention_params,
                                         kbeat_layout, vbeat_layout)
from hw.attention.attention_normalize import AttentionNormalizer, out_layout
from hw.attention.attention_stream import kv_bytes_per_beat
from hw.common import Loop, count_nested
from hw.fabric.global_buffer import on_global

__all__ = ["Attention", "STAT_BITS", "attention_layouts"]

STAT_BITS = 48


def attention_layouts(cfg: Config, ap: AttentionParams) -> dict:
    """Payload layouts of the ``q``, ``kv`` and ``o`` streams."""
    act = signed(cfg.num.act.bits)
    return dict(q=data.ArrayLayout(act, ap.dw),
                kv=data.StructLayout({"k": data.ArrayLayout(act, ap.dw),
                                      "v": data.ArrayLayout(act, ap.dw)}),
                o=out_layout(cfg, ap))


class Attention(wiring.Component):
    """Attention unit with p skewed query-row lanes (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Sizes from ``cfg.model.head_dim``, ``cfg.hw.attn_parallel``, ``cfg.hw.attn_dot_width``;
        formats from ``cfg.num``.
    tokens : int, optional
        N (keys per pass and query rows per head); default ``cfg.model.tokens``.
    norm_width : int, optional
        Outputs normalized per cycle (O beat width); default from ``attention_params``.

    Ports
    -----
    q : In(stream(ArrayLayout(act, dw)))
        Q rows in order, c beats per row (``hw.attention.attention_stream``).
    kv : In(stream({k, v}))
        Per group of p rows: every key/value row once, chunk by chunk.
    o : Out(stream({o, last}))
        O rows in order, ``head_dim / norm_width`` beats each; ``last`` ends a head.
    kv_bytes, cycles : Out(48)
        Bytes accepted on ``kv`` and cycles since reset.

    Attributes
    ----------
    ap : AttentionParams
        Every derived size (p, dw, c, N, G, widths, norm_width, ...).

    Latency and throughput: one K/V beat per cycle; the cycle count of a head is
    ``sim.cycles.attention.attention_head_cycles`` (the latency is not a single constant: it
    depends on N, c and the divider; see the module docstring).
    """

    def __init__(self, cfg: Config, tokens: int | None = None, norm_width: int | None = None):
        self.cfg = cfg
        self.ap: AttentionParams = attention_params(cfg, tokens, norm_width)
        ap = self.ap
        lay = attention_layouts(cfg, ap)
        self.q_layout, self.kv_layout, self.o_layout = lay["q"], lay["kv"], lay["o"]
        self.bytes_per_beat = kv_bytes_per_beat(cfg)
        self.vfifo_depth = 2 * ap.c + e_latency(ap.dw) + 4
        super().__init__({
            "q": In(stream.Signature(self.q_layout)),
            "kv": In(stream.Signature(self.kv_layout)),
            "o": Out(stream.Signature(self.o_layout)),
            "kv_bytes": Out(STAT_BITS),
            "cycles": Out(STAT_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, ap = self.cfg, self.ap

        lanes = []
        for i in range(ap.p):
            lane = AttentionLane(cfg, ap, i)
            m.submodules[f"lane{i}"] = lane
            lanes.append(lane)
        m.submodules.norm = norm = AttentionNormalizer(cfg, ap)
        m.submodules.vfifo = vfifo = SyncFIFO(width=ap.dw * ap.act_bits, depth=self.vfifo_depth)

        # The lanes' pipeline enable reaches thousands of their registers: over a global network
        # with hw.fanout_target "ecp5"; the K/V input and the V FIFO's handshakes use the
        # unbuffered value (the same one). It is a register, loaded with the NOR of the lanes'
        # next stall values (= the NOR of their stall registers, a cycle later): as a NOR of
        # those registers it took two LUT levels before the global buffer's (the stall ->
        # clock enable paths: 11.3-11.5 ns routed on the ULX3S).
        adv_raw = Signal(init=1)
        m.d.sync += adv_raw.eq(~_any([ln.stall_next for ln in lanes]))
        adv = on_global(m, adv_raw, cfg.hw.fanout_target, "adv_global")
        for ln in lanes:
            m.d.comb += ln.adv.eq(adv)

        accept = self._kv_input(m, adv_raw, lanes, vfifo)
        self._v_sequencer(m, adv_raw, lanes, vfifo)
        self._q_loader(m, lanes)

        for i, ln in enumerate(lanes):
            m.d.comb += [norm.holds[i].eq(ln.hold), norm.hold_full[i].eq(ln.hold_full),
                         ln.hold_clear.eq(norm.hold_clear[i])]
            wiring.connect(m, ln.r, norm.r[i])
        wiring.connect(m, norm.o, wiring.flipped(self.o))

        # memory-port counters
        with m.If(accept):
            m.d.sync += self.kv_bytes.eq(self.kv_bytes + self.bytes_per_beat)
        m.d.sync += self.cycles.eq(self.cycles + 1)
        return m

    def _group_rows(self, group):
        """Query rows of a group: p, or fewer in the last (partial) group of a head."""
        ap = self.ap
        return Mux(group == ap.G - 1, ap.N - (ap.G - 1) * ap.p, ap.p)

    def _chunk_row_group(self, m, advance, name, rows, chunk_is_last=None):
        """Counters (chunk, row, group): chunk 0 .. c-1 of row 0 .. rows-1 of group 0 .. G-1,
        stepped when ``advance``; the chunk level also wraps on ``chunk_is_last``."""
        ap = self.ap
        chunk = Signal(range(ap.c), name=f"{name}_chunk")
        row = Signal(range(rows), name=f"{name}_row")
        group = Signal(range(ap.G), name=f"{name}_group")
        chunk_last = chunk == ap.c - 1
        if chunk_is_last is not None:
            chunk_last = chunk_is_last | chunk_last
        with m.If(advance):
            count_nested(m, [Loop(chunk, is_last=chunk_last), Loop(row, last=rows - 1),
                             Loop(group, last=ap.G - 1)])
        return chunk, row, group

    def _kv_input(self, m, adv, lanes, vfifo):
        """K/V input: a beat is accepted into lane 0's K register and the V FIFO; the lanes
        pass K on, one register each. A group starts only when every lane holds its Q row."""
        ap = self.ap
        N = ap.N
        q_ok = Signal()
        accept = Signal()
        kv_chunk, kv_key, kv_group = self._chunk_row_group(m, accept, "kv", N)
        # (kv_chunk == 0) & (kv_key == 0) as a register stepped with the counters (they wrap
        # together to 0 on the group's last beat): the compares of kv_key in front of kv.ready
        # and the counters' enables were the ULX3S routed 10.31 ns group (attention.py:173)
        group_start = Signal(init=1)
        with m.If(accept):
            m.d.sync += group_start.eq((kv_chunk == ap.c - 1) & (kv_key == N - 1))
        nrows_in = Signal(range(ap.p + 1))
        m.d.comb += [
            nrows_in.eq(self._group_rows(kv_group)),
            q_ok.eq(_all([ln.q_full for ln in lanes])),
            self.kv.ready.eq(adv & vfifo.w_rdy & (~group_start | q_ok)),
            accept.eq(self.kv.valid & self.kv.ready),
        ]
        k0 = Signal(kbeat_layout(ap))
        with m.If(adv):
            m.d.sync += [k0.valid.eq(accept), k0.k.eq(self.kv.payload.k), k0.ci.eq(kv_chunk),
                         k0.first.eq(kv_key == 0), k0.last.eq(kv_key == N - 1),
                         k0.nrows.eq(nrows_in)]
        m.d.comb += [vfifo.w_en.eq(accept), vfifo.w_data.eq(self.kv.payload.v.as_value())]
        m.d.comb += lanes[0].kin.eq(k0)
        for a, b in zip(lanes, lanes[1:]):
            m.d.comb += b.kin.eq(a.kout)
        return accept

    def _v_sequencer(self, m, adv, lanes, vfifo):
        """Lane 0's e_j leaves Exp2: pop v_j's c chunks on this and the next c - 1 advancing
        cycles. Keys are >= c cycles apart, so a new e never arrives mid-sequence."""
        c = self.ap.c
        v0 = Signal(vbeat_layout(self.ap))
        v_chunk = Signal(range(c))
        v_busy = Signal()
        pop = Signal()
        m.d.comb += [pop.eq(adv & (lanes[0].e_event | v_busy)), vfifo.r_en.eq(pop)]
        with m.If(adv):
            m.d.sync += [v0.valid.eq(pop), v0.v.eq(vfifo.r_data),
                         v0.ci.eq(Mux(v_busy, v_chunk, 0))]
            if c > 1:
                with m.If(pop):
                    cur = Mux(v_busy, v_chunk, 0)
                    m.d.sync += [v_chunk.eq(Mux(cur == c - 1, 0, cur + 1)),
                                 v_busy.eq(cur != c - 1)]
        m.d.comb += lanes[0].vin.eq(v0)
        for a, b in zip(lanes, lanes[1:]):
            m.d.comb += b.vin.eq(a.vout)

    def _q_loader(self, m, lanes):
        """Fills q_next of lane ``q_lane`` for group ``q_group``; lanes past the rows of a partial
        group get a dummy fill (no Q beat) so that every lane's q_full tracks the same group
        sequence."""
        c = self.ap.c
        real = Signal()
        lane_full = Signal()
        load = Signal()
        q_chunk, q_lane, q_group = self._chunk_row_group(m, load, "q", self.ap.p,
                                                         chunk_is_last=~real)
        m.d.comb += [
            real.eq(q_lane < self._group_rows(q_group)),
            lane_full.eq(Array(ln.q_full for ln in lanes)[q_lane]),
            self.q.ready.eq(real & ~lane_full),
            load.eq(~lane_full & (~real | self.q.valid)),
        ]
        for i, ln in enumerate(lanes):
            m.d.comb += [ln.q_we.eq(load & (q_lane == i)),
                         ln.q_chunk.eq(Mux(real, q_chunk, c - 1)),
                         ln.q_data.eq(self.q.payload)]


def _any(bits):
    out = 0
    for b in bits:
        out = out | b
    return out


def _all(bits):
    out = 1
    for b in bits:
        out = out & b
    return out
