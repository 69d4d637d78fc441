"""AttentionLane: one query row of the attention unit, fused QK^T -> online softmax -> PV.

A lane holds one query row q (double-buffered: ``q_next`` is loaded while ``q_cur`` is in use)
and consumes the K/V chunks of one pass over all N keys. Per key j (``c = hd / dw`` chunks of
``dw`` elements, one chunk per cycle):

- **K side** (P1..P5): ``s = q . k_j`` with ``dw`` multipliers and an adder tree, accumulated
  over the c chunks (P1 products, P2 sum); ``t = to_score(s)`` (P3 one multiply by the constant
  scale * log2 e, with s first clamped to the range where the result is not saturated anyway,
  P4 round + saturate); P5 integer running max ``M = max(M, ceil(t))``, its growth ``d`` and
  ``x = t - M``; then ``e = 2^x`` in ``hw.attention.exp2.Exp2`` (3 stages, P6..P8).
- **V side** (V1, V2): chunk ci of v_j arrives on ``vin`` exactly when e_j leaves Exp2 (the
  parent's V sequencer and the lane skew guarantee it); V1: ``l = rshift_round(l, d) + e``
  (chunk 0) and the ``dw`` products ``e * v``; V2: ``o = rshift_round(o, d) + e * v`` on the
  chunk of the output accumulator (stored as a rotating register of c chunks). On the last key
  the final o chunks go to the **hold** register and ``l`` to the lane's divider
  (``hw.attention.reciprocal.Reciprocal``); the shared normalizer reads ``hold`` and ``r`` and
  clears ``hold_full``.

Every stage advances on ``adv`` (the unit's global pipeline enable); ``kin`` / ``vin`` carry a
``valid`` bit, so input gaps travel as bubbles. ``kout`` / ``vout`` are ``kin`` / ``vin``
registered: chained lane to lane they delay the K/V beat by one cycle per lane (the skew).

Ports::

    adv       In(1)        global pipeline enable
    kin, kout In/Out(kbeat layout)  {valid, k[dw], ci, first, last, nrows}
    vin, vout In/Out(vbeat layout)  {valid, v[dw], ci}
    q_we, q_chunk, q_data, q_full   load chunk q_chunk of q_next (only while q_full is low);
                                    the last chunk sets q_full; the lane's first beat of a
                                    group swaps q_next into q_cur and clears it
    e_event   Out(1)       e_j leaves Exp2 this cycle (drives the V sequencer of lane 0)
    stall     Out(1)       the lane must write a finished row but hold is still full
    hold      Out(ArrayLayout(signed(o_bits), hd))   finished (unnormalized) output row
    hold_full Out(1), hold_clear In(1)
    r         Out(stream(unsigned(q_bits)))          round(2^R / l) of the finished row

Latency: a key's last chunk on ``kin`` -> ``e_event`` 8 cycles (``AttentionLane.latency``); its V
chunks then take 2 cycles (V1, V2) to reach the accumulator. One chunk per cycle.

Multipliers: 2 * dw (q*k and e*v, act x act / exp x act) + 1 (scale constant).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.cycles.attention import E_LATENCY as _MODEL_E_LATENCY
from sim.cycles.attention import attention_schedule, recip_q_bits
from sim.fixed import hw_rshift_round, hw_saturate
from sim.golden.softmax import LOG2E, const_q, to_score
from hw.attention.exp2 import Exp2, hw_rshift_round_var
from hw.attention.reciprocal import Reciprocal
from hw.attention.softmax import softmax_widths
from hw.common import tree_sum

__all__ = ["AttentionParams", "attention_params", "AttentionLane", "kbeat_layout",
           "vbeat_layout"]


@dataclass(frozen=True)
class AttentionParams:
    """Sizes of the attention unit derived from a Config and a token count."""

    p: int            # lanes (query rows in flight)
    dw: int           # multipliers per lane for q.k (and for e*v)
    hd: int           # head dimension
    c: int            # chunks per row (cycles per key per lane)
    N: int            # tokens (keys per pass, query rows per head)
    G: int            # groups of p query rows per head
    act_bits: int
    dot_bits: int     # q . k, exact
    s_lo: int         # dot products outside [s_lo, s_hi] saturate the score anyway
    s_hi: int
    s_bits: int       # clamped dot product
    score_const: int  # const_q(scale * log2 e)
    score_shift: int  # 2 * act.frac + const_frac - score.frac
    m_bits: int
    l_bits: int
    o_bits: int       # output accumulator
    q_bits: int       # reciprocal
    div_bits_per_cycle: int
    norm_width: int   # outputs normalized per cycle (O beat width)


def _to_score_int(cfg: Config, s: int) -> int:
    return int(to_score(cfg, s, 2 * cfg.num.act.frac_bits, cfg.model.attn_scale * LOG2E))


# (num, model, lo, hi) -> _score_clamp: the clamp reads only the formats and the attention
# scale, and its binary searches over numpy scalars dominate attention_params' time (sweeps
# over hardware sizes call it thousands of times).
_SCORE_CLAMP_CACHE: dict = {}


def _score_clamp(cfg: Config, lo: int, hi: int) -> tuple[int, int]:
    """Smallest s with to_score(s) = max and largest with = min, inside [lo, hi] (monotone)."""
    key = (cfg.num, cfg.model, lo, hi)
    if key not in _SCORE_CLAMP_CACHE:
        _SCORE_CLAMP_CACHE[key] = _score_clamp_search(cfg, lo, hi)
    return _SCORE_CLAMP_CACHE[key]


def _score_clamp_search(cfg: Config, lo: int, hi: int) -> tuple[int, int]:
    smax, smin = cfg.num.score.max_int, cfg.num.score.min_int
    a, b = 0, hi
    if _to_score_int(cfg, hi) < smax:
        s_hi = hi
    else:
        while a < b:
            mid = (a + b) // 2
            if _to_score_int(cfg, mid) >= smax:
                b = mid
            else:
                a = mid + 1
        s_hi = a
    a, b = lo, 0
    if _to_score_int(cfg, lo) > smin:
        s_lo = lo
    else:
        while a < b:
            mid = (a + b + 1) // 2
            if _to_score_int(cfg, mid) <= smin:
                a = mid
            else:
                b = mid - 1
        s_lo = a
    return s_lo, s_hi


def attention_params(cfg: Config, tokens: int | None = None,
                     norm_width: int | None = None) -> AttentionParams:
    """Derive every size; the divider speed and the default ``norm_width`` come from
    :func:`sim.cycles.attention.attention_schedule` (shared with the cycle model)."""
    n, h, mdl = cfg.num, cfg.hw, cfg.model
    N = mdl.tokens if tokens is None else int(tokens)
    p, dw, hd = h.attn_parallel, h.attn_dot_width, mdl.head_dim
    c = hd // dw
    if N < 1 or p > N:
        raise ValueError(f"attention: tokens {N} must be >= attn_parallel {p}")
    if N * c <= p:
        raise ValueError(f"attention: a pass of N * c = {N * c} cycles must be longer than "
                         f"the lane skew p = {p}")
    ab = n.act.bits
    dot_max = hd << (2 * ab - 2)
    dot_bits = dot_max.bit_length() + 1
    s_lo, s_hi = _score_clamp(cfg, -dot_max, dot_max)
    s_bits = max(abs(s_lo), abs(s_hi)).bit_length() + 1
    w = softmax_widths(cfg, N)
    sched = attention_schedule(cfg, N, norm_width)
    if hd % sched.norm_width:
        raise ValueError(f"attention: norm_width {sched.norm_width} must divide head_dim {hd}")
    return AttentionParams(
        p=p, dw=dw, hd=hd, c=c, N=N, G=sched.G, act_bits=ab, dot_bits=dot_bits,
        s_lo=s_lo, s_hi=s_hi, s_bits=s_bits,
        score_const=const_q(cfg, mdl.attn_scale * LOG2E),
        score_shift=2 * n.act.frac_bits + n.const_frac - n.score.frac_bits,
        m_bits=w["m_bits"], l_bits=w["l_bits"],
        o_bits=(N << (n.exp.frac_bits + ab - 1)).bit_length() + 1,
        q_bits=recip_q_bits(cfg), div_bits_per_cycle=sched.div_bits_per_cycle,
        norm_width=sched.norm_width)


def kbeat_layout(ap: AttentionParams) -> data.StructLayout:
    """A K beat on ``kin`` / ``kout``: one chunk of k_j and its position in the pass."""
    return data.StructLayout({"valid": 1, "k": data.ArrayLayout(signed(ap.act_bits), ap.dw),
                              "ci": range(ap.c), "first": 1, "last": 1,
                              "nrows": range(ap.p + 1)})


def vbeat_layout(ap: AttentionParams) -> data.StructLayout:
    """A V beat on ``vin`` / ``vout``: one chunk of v_j."""
    return data.StructLayout({"valid": 1, "v": data.ArrayLayout(signed(ap.act_bits), ap.dw),
                              "ci": range(ap.c)})


_TAGS = ("valid", "first", "last", "active")


def _tags(stage: str) -> dict:
    """The 1-bit tags travelling with a key through a pipeline stage."""
    return {nm: Signal(1, name=f"{stage}_{nm}") for nm in _TAGS}


def _pass_tags(dst: dict, src: dict) -> list:
    return [dst[nm].eq(src[nm]) for nm in dst]


class AttentionLane(wiring.Component):
    """One query-row lane (see the module docstring).

    Parameters
    ----------
    cfg : Config
    ap : AttentionParams
        From :func:`attention_params`.
    index : int
        Lane number; the lane is *active* in a group when ``index < kin.nrows``.

    Ports
    -----
    adv : In(1)
        Global pipeline enable.
    kin, kout : In / Out(kbeat_layout)
        K beats, one chunk per cycle (chunk ci of key j, keys in order); ``kout`` is ``kin``
        registered (the lane skew).
    vin, vout : In / Out(vbeat_layout)
        V chunks of key j, arriving when e_j leaves Exp2; ``vout`` is ``vin`` registered.
    q_we, q_chunk, q_data : In
        Write chunk ``q_chunk`` of ``q_next`` (only while ``q_full`` is low).
    q_full : Out(1)
        Set by the last chunk; the lane's first beat of a group moves q_next to q_cur.
    e_event : Out(1)
        e_j leaves Exp2 this cycle.
    stall : Out(1)
        The lane must write a finished row but ``hold`` is still full.
    hold, hold_full : Out; hold_clear : In(1)
        The finished (unnormalized) output row, read and cleared by the normalizer.
    r : Out(stream(ArrayLayout(unsigned(q_bits), 1)))
        round(2^R / l) of the finished row.

    Attributes
    ----------
    latency : int
        Cycles from ``kin`` holding a key's last chunk to ``e_event``: P1 .. P5 + Exp2 (8).
        Its V chunks then take 2 cycles (V1, V2); throughput one chunk per cycle.
    """

    latency = 5 + Exp2.latency

    def __init__(self, cfg: Config, ap: AttentionParams, index: int):
        self.cfg, self.ap, self.index = cfg, ap, int(index)
        self._div = Reciprocal(cfg, ap.l_bits, 1, ap.div_bits_per_cycle)
        assert self._div.q_bits == ap.q_bits
        kb, vb = kbeat_layout(ap), vbeat_layout(ap)
        super().__init__({
            "adv": In(1),
            "kin": In(kb), "kout": Out(kb),
            "vin": In(vb), "vout": Out(vb),
            "q_we": In(1), "q_chunk": In(range(ap.c)),
            "q_data": In(data.ArrayLayout(signed(ap.act_bits), ap.dw)),
            "q_full": Out(1),
            "e_event": Out(1),
            "stall": Out(1),
            "hold": Out(data.ArrayLayout(signed(ap.o_bits), ap.hd)),
            "hold_full": Out(1),
            "hold_clear": In(1),
            "r": Out(stream.Signature(data.ArrayLayout(unsigned(ap.q_bits), 1))),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If(self.adv):
            m.d.sync += [self.kout.eq(self.kin), self.vout.eq(self.vin)]
        q_sel = self._query_row(m)
        p2, dot = self._dot_product(m, q_sel)
        key = self._score_and_exp(m, p2, dot)
        v1 = self._value_side(m, key)
        self._finish_row(m, v1)
        return m

    def _query_row(self, m):
        """The query row, double buffered; returns the q chunk that meets the ``kin`` chunk."""
        ap, K = self.ap, self.kin
        dw, c, ab = ap.dw, ap.c, ap.act_bits
        q_next = [Signal(dw * ab, name=f"q_next{i}") for i in range(c)]
        q_cur = [Signal(dw * ab, name=f"q_cur{i}") for i in range(c)]
        start = Signal()
        m.d.comb += start.eq(self.adv & K.valid & K.first & (K.ci == 0))
        with m.If(self.q_we):
            for i in range(c):
                with m.If(self.q_chunk == i):
                    m.d.sync += q_next[i].eq(self.q_data.as_value())
            with m.If(self.q_chunk == c - 1):
                m.d.sync += self.q_full.eq(1)
        with m.If(start):
            m.d.sync += [q_cur[i].eq(q_next[i]) for i in range(c)]
            m.d.sync += self.q_full.eq(0)
        q_sel = Signal(dw * ab)
        with m.Switch(K.ci):
            for i in range(c):
                with m.Case(i):
                    m.d.comb += q_sel.eq(Mux(K.first, q_next[i], q_cur[i]) if i == 0
                                         else q_cur[i])
        return q_sel

    def _dot_product(self, m, q_sel):
        """K side, P1: dw products; P2: the dot product, complete after the key's last chunk."""
        ap, K = self.ap, self.kin
        dw, c, ab = ap.dw, ap.c, ap.act_bits
        p1 = _tags("p1")
        p1_ci = Signal(range(c))
        p1_prod = [Signal(signed(2 * ab), name=f"p1_prod{i}") for i in range(dw)]
        p2 = _tags("p2")
        dot = Signal(signed(ap.dot_bits))
        k_el = [K.k[i] for i in range(dw)]
        q_el = [q_sel.word_select(i, ab).as_signed() for i in range(dw)]
        with m.If(self.adv):
            m.d.sync += [
                p1["valid"].eq(K.valid), p1["first"].eq(K.first), p1["last"].eq(K.last),
                p1["active"].eq(self.index < K.nrows), p1_ci.eq(K.ci),
                *[p1_prod[i].eq(q_el[i] * k_el[i]) for i in range(dw)],
                # P2 emits one valid item per key (after its last chunk).
                p2["valid"].eq(p1["valid"] & (p1_ci == c - 1)),
                *_pass_tags({nm: p2[nm] for nm in ("first", "last", "active")}, p1),
            ]
            with m.If(p1["valid"]):
                m.d.sync += dot.eq(Mux(p1_ci == 0, 0, dot) + tree_sum(p1_prod))
        return p2, dot

    def _score_and_exp(self, m, p2, dot):
        """K side, P3: clamped dot x score constant; P4: score t; P5: running max M, its growth
        d and x = t - M; P6 .. P8: tags alongside Exp2. Returns the tags, d and e at P8."""
        ap, n = self.ap, self.cfg.num
        fs = n.score.frac_bits
        p3 = _tags("p3")
        p3_prod = Signal(signed(ap.s_bits + ap.score_const.bit_length() + 1))
        p4 = _tags("p4")
        p4_t = Signal(signed(n.score.bits))
        p5 = _tags("p5")
        run_m = Signal(signed(ap.m_bits))
        p5_d = Signal(range(1 << (ap.m_bits + 1)))
        p5_x = Signal(signed(n.score.bits + 1))
        pe = [_tags(f"p{6 + s}") for s in range(Exp2.latency)]
        pe_d = [Signal.like(p5_d, name=f"p{6 + s}_d") for s in range(Exp2.latency)]

        s_cl = Mux(dot > ap.s_hi, ap.s_hi, Mux(dot < ap.s_lo, ap.s_lo, dot))
        ceil_t = Signal(signed(ap.m_bits))
        m_new = Signal(signed(ap.m_bits))
        m.d.comb += [
            ceil_t.eq(-((-p4_t) >> fs)),
            m_new.eq(Mux(p4["first"] | (ceil_t > run_m), ceil_t, run_m)),
        ]
        m.submodules.exp = exp = Exp2(self.cfg)
        m.d.comb += [exp.x.eq(p5_x), exp.en.eq(self.adv)]
        with m.If(self.adv):
            m.d.sync += [
                *_pass_tags(p3, p2), p3_prod.eq(s_cl * ap.score_const),
                *_pass_tags(p4, p3),
                p4_t.eq(hw_saturate(hw_rshift_round(p3_prod, ap.score_shift), n.score)),
                *_pass_tags(p5, p4),
                p5_x.eq(p4_t - (m_new << fs)),
                p5_d.eq(Mux(p4["first"], 0, m_new - run_m)),
                *_pass_tags(pe[0], p5), pe_d[0].eq(p5_d),
                *[s for i in range(1, Exp2.latency)
                  for s in (*_pass_tags(pe[i], pe[i - 1]), pe_d[i].eq(pe_d[i - 1]))],
            ]
            with m.If(p4["valid"]):
                m.d.sync += run_m.eq(m_new)
        # Exp2 samples p5_x on the next enabled edge, hence the tags trail x by one stage: the
        # last tag stage lines up with exp.y.
        m.d.comb += self.e_event.eq(pe[-1]["valid"])
        return SimpleNamespace(tags=pe[-1], d=pe_d[-1], e=exp.y)

    def _value_side(self, m, key):
        """V side: hold e_j and d_j for the V chunks; V1: l update and e * v; V2: the output
        accumulator chunk (rotating, head = current chunk) and, on the last key, ``hold``."""
        ap, n, V = self.ap, self.cfg.num, self.vin
        dw, c, ab = ap.dw, ap.c, ap.act_bits
        e_held = Signal(n.exp.bits)
        d_held = Signal.like(key.d)
        first_held, last_held, active_held = Signal(), Signal(), Signal()
        with m.If(self.adv & key.tags["valid"]):
            m.d.sync += [e_held.eq(key.e), d_held.eq(key.d), first_held.eq(key.tags["first"]),
                         last_held.eq(key.tags["last"]), active_held.eq(key.tags["active"])]

        run_l = Signal(ap.l_bits)
        v1 = _tags("v1")
        v1_ci = Signal(range(c))
        v1_d = Signal.like(key.d)
        v1_prod = [Signal(signed(n.exp.bits + ab + 1), name=f"v1_prod{i}") for i in range(dw)]
        d_cl_l = Mux(d_held > ap.l_bits + 1, ap.l_bits + 1, d_held)
        with m.If(self.adv):
            m.d.sync += [v1["valid"].eq(V.valid), v1["first"].eq(first_held),
                         v1["last"].eq(last_held), v1["active"].eq(active_held),
                         v1_ci.eq(V.ci), v1_d.eq(d_held),
                         *[v1_prod[i].eq(e_held * V.v[i]) for i in range(dw)]]
            with m.If(V.valid & (V.ci == 0)):
                m.d.sync += run_l.eq(Mux(first_held, 0, hw_rshift_round_var(run_l, d_cl_l))
                                     + e_held)

        o_chunks = [[Signal(signed(ap.o_bits), name=f"o{ci}_{i}") for i in range(dw)]
                    for ci in range(c)]
        hold_chunks = [[Signal(signed(ap.o_bits), name=f"hold{ci}_{i}") for i in range(dw)]
                       for ci in range(c)]
        d_cl_o = Mux(v1_d > ap.o_bits + 1, ap.o_bits + 1, v1_d)
        o_new = [Signal(signed(ap.o_bits), name=f"o_new{i}") for i in range(dw)]
        for i in range(dw):
            m.d.comb += o_new[i].eq(
                Mux(v1["first"], 0, hw_rshift_round_var(o_chunks[0][i], d_cl_o)) + v1_prod[i])
        finishing = Signal()
        m.d.comb += finishing.eq(v1["valid"] & v1["last"] & v1["active"])
        m.d.comb += self.stall.eq(finishing & (v1_ci == 0) & self.hold_full)
        with m.If(self.adv & v1["valid"]):
            for ci in range(c):
                src = o_chunks[ci + 1] if ci + 1 < c else o_new
                m.d.sync += [o_chunks[ci][i].eq(src[i]) for i in range(dw)]
            with m.If(finishing):
                for ci in range(c):
                    src = hold_chunks[ci + 1] if ci + 1 < c else o_new
                    m.d.sync += [hold_chunks[ci][i].eq(src[i]) for i in range(dw)]
        for ci in range(c):
            for i in range(dw):
                m.d.comb += self.hold[ci * dw + i].eq(hold_chunks[ci][i])
        return SimpleNamespace(finishing=finishing, ci=v1_ci, run_l=run_l)

    def _finish_row(self, m, v1):
        """Divider: the finished row's l (``run_l`` already holds it after the key's chunk 0)."""
        m.submodules.div = div = self._div
        row_done = Signal()
        m.d.comb += row_done.eq(self.adv & v1.finishing & (v1.ci == self.ap.c - 1))
        m.d.comb += [div.i.valid.eq(row_done), div.i.payload[0].eq(v1.run_l)]
        wiring.connect(m, div.o, wiring.flipped(self.r))
        with m.If(row_done):
            m.d.sync += self.hold_full.eq(1)
        with m.Elif(self.hold_clear):
            m.d.sync += self.hold_full.eq(0)


assert AttentionLane.latency == _MODEL_E_LATENCY, "sim.cycles.attention.E_LATENCY is out of date"
