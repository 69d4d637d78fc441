"""AttentionLane: one query row of the attention unit, fused QK^T -> online softmax -> PV.

A lane holds one query row q (double-buffered: ``q_next`` is loaded while ``q_cur`` is in use)
and consumes the K/V chunks of one pass over all N keys. Per key j (``c = hd / dw`` chunks of
``dw`` elements, one chunk per cycle):

- **K side**: ``s = q . k_j`` with ``dw`` multipliers and an adder tree, accumulated over the
  c chunks; ``t = to_score(s)`` (one multiply by the constant scale * log2 e, with s first
  clamped to the range where the result is not saturated anyway, then round + saturate); the
  integer running max ``M = max(M, ceil(t))``, its growth ``d`` and ``x = t - M``; then
  ``e = 2^x`` in the pipelined ``hw.attention.exp2.Exp2``.
- **V side**: chunk ci of v_j arrives on ``vin`` exactly when e_j leaves Exp2 (the parent's V
  sequencer and the lane skew guarantee it); ``l = rshift_round(l, d) + e`` (chunk 0), the
  ``dw`` products ``e * v`` and ``o = rshift_round(o, d) + e * v`` on the chunk of the output
  accumulator (stored as a rotating register of c chunks). On the last key the final o chunks
  go to the **hold** register and ``l`` to the lane's divider
  (``hw.attention.reciprocal.Reciprocal``); the shared normalizer reads ``hold`` and ``r`` and
  clears ``hold_full``.

Register stages (for the clock: each has at most one 18 x 18 multiply, one wide add / compare
or one barrel shift; docs/attention.md "Timing"):

    P1a  q, k chunk into the multipliers' input registers (``hw.fabric.Multiplier``: inside
         the MULT18X18D with ``cfg.hw.dsp_target == "ecp5"``)
    P1b  the dw products (the multipliers' output registers)
    T1..Tk  the adder tree, one register per level (k = ceil(log2 dw))
    P2   dot accumulator (complete after the key's last chunk)
    P3a  clamped dot, split s = hi 2^17 + lo, into two multipliers' input registers
    P3b  hi C, lo C (output registers)      P3c  s C = (hi C << 17) + lo C
    P4   t: the rounding add; saturation compares s C against constants in parallel
    P4b  ceil(t) and t - (ceil(t) << fs)
    P5   running max: one 11-bit compare, M, d, x = t - M (two narrow subtractions)
    Exp2 5 stages (lookup, multiply, add, shift, round); alongside, d clamped and folded with
         the row's first key into the rescale shifts of l and o
    V1a  e, v chunk into the e * v multipliers' input registers
    V1b  e * v (output registers); l = rshift_round(l, d_l) + e: one shift, one add
    V2   o = rshift_round(o, d_o) + e v: one shift, one add (the +1 of the rounding is wired
         into 2 e v + 1: ``_rescale_add``)

The running max, l and o are recurrences. With c = 1 (a key per cycle) their loops are one
compare + mux, and one barrel shift + one add, as short as an exact online softmax allows. With
c >= 2 keys and the ring's chunks come back at least c cycles apart, so l and the chunk next
at the ring's head are shifted ahead (``l_pre``, ``o_pre``) and the loops are one add; with
c >= 3 the shift itself is split over two registers (by the multiple of 8, then the rest).

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
    stall_next Out(1)      the value ``stall`` takes at the next edge
    hold      Out(ArrayLayout(signed(o_bits), hd))   finished (unnormalized) output row
    hold_full Out(1), hold_clear In(1)
    r         Out(stream(unsigned(q_bits)))          round(2^R / l) of the finished row

Latency: a key's last chunk on ``kin`` -> ``e_event``: ``AttentionLane.latency`` =
``sim.cycles.attention.e_latency(dw)`` = 9 + ceil(log2 dw) + 5 cycles (16 for dw = 4, 20 for
dw = 64); its V chunks then take 3 cycles (V1a, V1b, V2) to reach the accumulator. One chunk
per cycle.

Multipliers: 2 * dw (q*k and e*v, act x act / exp x act) + 2 (the scale constant, split in two
halves that each fit an 18 x 18 block) + 1 (exp2 interpolation).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.cycles.attention import (LANE_EXP2_LATENCY, adder_tree_levels, attention_schedule,
                                  e_latency, recip_q_bits)
from sim.golden.softmax import LOG2E, const_q, to_score
from hw.attention.exp2 import Exp2
from hw.attention.reciprocal import Reciprocal
from hw.attention.softmax import softmax_widths
from hw.fabric.multiplier import MULT18_WIDTH, Multiplier
from hw.fabric.replica import replicas


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


# Every multiplier of the lane keeps its operands and its product in registers (inside the
# MULT18X18D with dsp_target="ecp5"): 2 cycles, no combinational path through the block.
_MULT_REGS = {"input_reg": True, "pipeline_reg": False, "output_reg": True}


def _delay(m, en, value, name: str) -> Signal:
    """``value`` registered (clock enable ``en``)."""
    value = Value.cast(value)
    reg = Signal(value.shape(), name=name)
    with m.If(en):
        m.d.sync += reg.eq(value)
    return reg


def _stage(m, en, stage: str, src: dict) -> dict:
    """The tags travelling with a key (valid, first, ci, shifts, ...) through one register stage."""
    return {nm: _delay(m, en, v, f"{stage}_{nm}") for nm, v in src.items()}


def _shift_coarse(value, shift):
    """``value >> (shift & ~7)``: the first half of a barrel shift split over two registers."""
    shift = Value.cast(shift)
    return value >> Cat(Const(0, 3), shift[3:]) if len(shift) > 3 else value


def _shift_fine(value, shift):
    """``value >> (shift & 7)``: the second half (``(v >> a) >> b == v >> (a + b)``)."""
    return value >> Value.cast(shift)[:3]


def _rescale_add(acc, shift, add):
    """``rshift_round(acc, shift) + add`` (``hw_rshift_round_var``) as one barrel shift and one
    add: ``floor(((2 acc >> s) + 1) / 2) + a == ((2 acc >> s) + (2 a + 1)) >> 1`` because 2a is
    even, and ``2 a + 1`` is wiring. The caller's ``.eq`` drops the (zero) top bits."""
    return (((acc << 1) >> shift) + ((add << 1) | 1)) >> 1


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
        The lane must write a finished row but ``hold`` is still full (a register).
    stall_next : Out(1)
        The value ``stall`` takes at the next clock edge (the unit registers the OR of its
        lanes' next values, so its enable starts at one flip-flop).
    hold, hold_full : Out; hold_clear : In(1)
        The finished (unnormalized) output row, read and cleared by the normalizer.
    r : Out(stream(ArrayLayout(unsigned(q_bits), 1)))
        round(2^R / l) of the finished row.

    Attributes
    ----------
    latency : int
        Cycles from ``kin`` holding a key's last chunk to ``e_event``:
        ``sim.cycles.attention.e_latency(dw)``. Its V chunks then take 3 cycles (V1a, V1b,
        V2); throughput one chunk per cycle.
    """

    def __init__(self, cfg: Config, ap: AttentionParams, index: int):
        self.cfg, self.ap, self.index = cfg, ap, int(index)
        self.latency = e_latency(ap.dw)
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
            "stall": Out(1), "stall_next": Out(1),
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
        """K side, P1a / P1b: dw products (operand and product registers of the multipliers);
        T1 .. Tk: the adder tree, one register per level; P2: the dot product, complete after
        the key's last chunk. Returns P2's tags and {dot, over: dot > s_hi, under: dot < s_lo}."""
        ap, K, adv = self.ap, self.kin, self.adv
        dw, c, ab = ap.dw, ap.c, ap.act_bits
        k_el = [K.k[i] for i in range(dw)]
        q_el = [q_sel.word_select(i, ab).as_signed() for i in range(dw)]
        prods = []
        for i in range(dw):
            mul = Multiplier(signed(ab), signed(ab), **_MULT_REGS, target=self.cfg.hw.dsp_target)
            m.submodules[f"qk{i}"] = mul
            m.d.comb += [mul.a.eq(q_el[i]), mul.b.eq(k_el[i]), mul.en.eq(adv)]
            prods.append(mul.p)
        tags = _stage(m, adv, "p1a", {"valid": K.valid, "first": K.first, "last": K.last,
                                       "active": self.index < K.nrows, "ci": K.ci})
        tags = _stage(m, adv, "p1b", tags)
        level = 0
        while len(prods) > 1:
            level += 1
            prods = [_delay(m, adv, prods[i] + prods[i + 1] if i + 1 < len(prods) else prods[i],
                            f"t{level}_{i // 2}") for i in range(0, len(prods), 2)]
            tags = _stage(m, adv, f"t{level}", tags)
        assert level == adder_tree_levels(dw)
        dot = Signal(signed(ap.dot_bits))
        # P2 emits one valid item per key (after its last chunk).
        p2 = _stage(m, adv, "p2", {"valid": tags["valid"] & (tags["ci"] == c - 1),
                                   "first": tags["first"], "last": tags["last"],
                                   "active": tags["active"]})
        # Beside the dot, the same sum offset by the clamp's bounds, whose signs are the
        # clamp's compares: two more accumulators instead of two compares of the finished dot
        # in front of the score multipliers' input registers (19 carry levels, 11.4 ns routed).
        over_acc = Signal(signed(ap.dot_bits + 1))      # dot - (s_hi + 1): >= 0 iff dot > s_hi
        under_acc = Signal(signed(ap.dot_bits + 1))     # dot - s_lo: < 0 iff dot < s_lo
        with m.If(adv & tags["valid"]):
            first = tags["ci"] == 0
            m.d.sync += [dot.eq(Mux(first, 0, dot) + prods[0]),
                         over_acc.eq(Mux(first, -(ap.s_hi + 1), over_acc) + prods[0]),
                         under_acc.eq(Mux(first, -ap.s_lo, under_acc) + prods[0])]
        return p2, {"dot": dot, "over": ~over_acc[-1], "under": under_acc[-1]}

    def _score_and_exp(self, m, p2, dot):
        """K side, P3a: clamped dot into the multipliers' input registers; P3b: its two partial
        products by the score constant; P3c: their sum; P4: score t (rounding add, saturation
        compared on the unrounded sum in parallel); P4b: ceil t and t - (ceil t << fs);
        P5: running max M, its growth d and x = t - M; then the pipelined Exp2 with the tags
        and the clamped shifts alongside. Returns the tags, the shifts and e at Exp2's output."""
        ap, n, adv = self.ap, self.cfg.num, self.adv
        fs, target = n.score.frac_bits, self.cfg.hw.dsp_target
        # s * C = (hi 2^SPLIT + lo) C: two products that each fit one 18 x 18 multiplier.
        split = MULT18_WIDTH - 1
        cb = ap.score_const.bit_length()
        assert ap.s_bits - split <= MULT18_WIDTH and cb <= MULT18_WIDTH and ap.score_const > 0
        s_cl = Mux(dot["over"], ap.s_hi, Mux(dot["under"], ap.s_lo, dot["dot"]))
        mul_lo = Multiplier(unsigned(split), unsigned(cb), **_MULT_REGS, target=target)
        mul_hi = Multiplier(signed(ap.s_bits - split), unsigned(cb), **_MULT_REGS, target=target)
        m.submodules.score_lo, m.submodules.score_hi = mul_lo, mul_hi
        m.d.comb += [mul_lo.a.eq(s_cl[:split]), mul_hi.a.eq(s_cl[split:ap.s_bits].as_signed()),
                     mul_lo.b.eq(ap.score_const), mul_hi.b.eq(ap.score_const),
                     mul_lo.en.eq(adv), mul_hi.en.eq(adv)]
        p3a = _stage(m, adv, "p3a", p2)
        p3b = _stage(m, adv, "p3b", p3a)
        p3 = _stage(m, adv, "p3c", p3b)
        p3_prod = _delay(m, adv, (mul_hi.p << split) + mul_lo.p, "p3_prod")
        # P4: t = saturate(rshift_round(p3_prod, sh)); the saturation compares the unrounded
        # product against the thresholds where the rounded one leaves the score range.
        sh = ap.score_shift
        assert sh > 0
        half = 1 << (sh - 1)
        over = p3_prod >= ((n.score.max_int + 1) << sh) - half
        under = p3_prod < (n.score.min_int << sh) - half
        p4 = _stage(m, adv, "p4", p3)
        p4_t = Signal(signed(n.score.bits))
        with m.If(adv):
            m.d.sync += p4_t.eq(Mux(over, n.score.max_int, Mux(under, n.score.min_int,
                                                                 (p3_prod + half) >> sh)))
        # P4b: ceil(t) and t - (ceil(t) << fs) (the low bits of t as a value in (-1, 0]).
        frac = p4_t[:fs]
        t_hi = p4_t[fs:].as_signed()
        p4b = _stage(m, adv, "p4b", p4)
        ceil_t = _delay(m, adv, (t_hi + (frac != 0))[:ap.m_bits].as_signed(), "p4b_ceil")
        x_ceil = _delay(m, adv, Mux(frac == 0, 0, Cat(frac, Const(1, 1)).as_signed()),
                        "p4b_x_ceil")
        p4b_frac = _delay(m, adv, frac, "p4b_frac")
        p4b_hi = _delay(m, adv, t_hi, "p4b_hi")
        # P5: one compare against the running max, a mux and two narrow subtractions.
        run_m = Signal(signed(ap.m_bits))
        grow = Signal()
        m.d.comb += grow.eq(p4b["first"] | (ceil_t > run_m))
        p5 = _stage(m, adv, "p5", p4b)
        p5_d = Signal(range(1 << (ap.m_bits + 1)))
        p5_x = Signal(signed(n.score.bits + 1))
        with m.If(adv):
            m.d.sync += [
                p5_x.eq(Mux(grow, x_ceil, Cat(p4b_frac, p4b_hi - run_m).as_signed())),
                p5_d.eq(Mux(p4b["first"] | ~grow, 0, ceil_t - run_m)),
            ]
            with m.If(p4b["valid"]):
                m.d.sync += run_m.eq(Mux(grow, ceil_t, run_m))
        m.submodules.exp = exp = Exp2(self.cfg, pipelined=True, dsp_target=target)
        assert exp.latency == LANE_EXP2_LATENCY
        m.d.comb += [exp.x.eq(p5_x), exp.en.eq(adv)]
        # The rescale shifts of l and o, clamped (beyond width + 1 the result is 0 anyway) and
        # forced to that bound on a row's first key (l and o start from 0), computed here so
        # that the V side's accumulators see a register, not a compare.
        # They are kept only as wide as their bound: a wider shift amount makes the shifters
        # decode its always-zero high bits (that decode drove ~150 loads on the ULX3S estimate).
        l_max, o_max = ap.l_bits + 1, ap.o_bits + 1
        tags = _stage(m, adv, "pe0", {
            **p5,
            "d_l": Mux(p5["first"] | (p5_d > l_max), l_max, p5_d)[:l_max.bit_length()],
            "d_o": Mux(p5["first"] | (p5_d > o_max), o_max, p5_d)[:o_max.bit_length()]})
        # Exp2 samples p5_x on the next enabled edge, hence the tags trail x by one stage: the
        # last tag stage lines up with exp.y.
        for s in range(1, exp.latency):
            tags = _stage(m, adv, f"pe{s}", tags)
        m.d.comb += self.e_event.eq(tags["valid"])
        return SimpleNamespace(tags=tags, e=exp.y)

    def _value_side(self, m, key):
        """V side: hold e_j and its shifts for the V chunks; V1a: e and v into the multipliers'
        input registers; V1b: e * v (product registers) and the l update; V2: the output accumulator
        chunk (rotating, head = current chunk) and, on the last key, ``hold``."""
        ap, n, V, adv = self.ap, self.cfg.num, self.vin, self.adv
        dw, c = ap.dw, ap.c
        held = {nm: Signal.like(key.tags[nm], name=f"held_{nm}")
                for nm in ("last", "active", "d_l", "d_o")}
        e_held = Signal(n.exp.bits)
        with m.If(adv & key.tags["valid"]):
            m.d.sync += [e_held.eq(key.e), *[held[nm].eq(key.tags[nm]) for nm in held]]

        prods = []
        for i in range(dw):
            mul = Multiplier(unsigned(n.exp.bits), signed(ap.act_bits), **_MULT_REGS,
                             target=self.cfg.hw.dsp_target)
            m.submodules[f"ev{i}"] = mul
            m.d.comb += [mul.a.eq(e_held), mul.b.eq(V.v[i]), mul.en.eq(adv)]
            prods.append(mul.p)
        va = _stage(m, adv, "v1a", {"valid": V.valid, "ci": V.ci, "last": held["last"],
                                     "active": held["active"], "d_o": held["d_o"],
                                     "d_l": held["d_l"], "e": e_held})
        # V1b: l update, one edge before V2 (the divider takes l with the row's last V2 edge,
        # while the next row's first key may update it on the same edge).
        run_l = Signal(ap.l_bits)
        if c >= 3:
            # Keys are >= c >= 3 cycles apart: shift l by the next key's d_l in two steps ahead
            # of the update (by the multiple of 8 when its e leaves Exp2, by the rest when its
            # chunk 0 enters V1a), so neither the shifts nor the update exceed one level.
            l_pre1 = _delay(m, adv, _shift_coarse(run_l << 1, key.tags["d_l"]), "l_pre1")
            l_pre = _delay(m, adv, _shift_fine(l_pre1, held["d_l"]), "l_pre")
            l_next = (l_pre + ((va["e"] << 1) | 1)) >> 1
        elif c == 2:
            # Keys are 2 cycles apart: shift l by the next key's d_l (entering V1a now) one
            # cycle ahead, so the update is the add alone.
            l_pre = _delay(m, adv, (run_l << 1) >> held["d_l"], "l_pre")
            l_next = (l_pre + ((va["e"] << 1) | 1)) >> 1
        else:
            l_next = _rescale_add(run_l, va["d_l"], va["e"])
        with m.If(adv & va["valid"] & (va["ci"] == 0)):
            m.d.sync += run_l.eq(l_next)
        vb = _stage(m, adv, "v1b", {nm: va[nm] for nm in ("valid", "ci", "last", "active", "d_o")})
        # V1b's valid enables c x dw output registers and selects the dw shifted chunks: 608
        # loads on one net in the ULX3S build. Copies of it (one per chunk, one for the
        # selects) share those loads; vb["valid"] itself is left to the control logic.
        vb_v = replicas(m, va["valid"], c + 1, self.cfg.hw.fanout_target, "v1b_valid", enable=adv)
        vb_sel = vb_v[c]
        if c >= 3:
            # The selects of the o chunk two V2 steps ahead (V1b and V1a valid), registered
            # from their next values, a copy per multiplier lane: they were a 2-LUT decode of
            # two registers on ~300 mux inputs (ULX3S estimate, 11.6 ns to o_pre1).
            tgt = self.cfg.hw.fanout_target
            ahead2 = replicas(m, va["valid"] & V.valid, dw, tgt, "ahead2", enable=adv)
            ahead1 = replicas(m, va["valid"] | V.valid, dw, tgt, "ahead1", enable=adv)

        o_chunks = [[Signal(signed(ap.o_bits), name=f"o{ci}_{i}") for i in range(dw)]
                    for ci in range(c)]
        hold_chunks = [[Signal(signed(ap.o_bits), name=f"hold{ci}_{i}") for i in range(dw)]
                       for ci in range(c)]
        o_new = [Signal(signed(ap.o_bits), name=f"o_new{i}") for i in range(dw)]
        for i in range(dw):
            if c >= 3:
                # As for c == 2 below, two cycles ahead and in two steps: the chunk at the head
                # on the V2 step after next is o_chunks[k], k = the V2 steps of this and the next
                # cycle (V1b and V1a valid); shifted by the multiple of 8 of its d_o (its beat on
                # vin now), then by the rest (its beat in V1a).
                ahead = Mux(ahead2[i], o_chunks[2][i],
                            Mux(ahead1[i], o_chunks[1][i], o_chunks[0][i]))
                o_pre1 = _delay(m, adv, _shift_coarse(ahead << 1, held["d_o"]), f"o_pre1_{i}")
                o_pre = _delay(m, adv, _shift_fine(o_pre1, va["d_o"]), f"o_pre{i}")
                m.d.comb += o_new[i].eq((o_pre + ((prods[i] << 1) | 1)) >> 1)
            elif c == 2:
                # The chunk at the head of the ring on the next V2 step (o_chunks[1] if one is
                # taken now, else o_chunks[0]) is shifted one cycle ahead by that step's d_o
                # (entering V1b now); a V2 step happens exactly when V1b held a valid beat.
                o_pre = _delay(m, adv, (Mux(vb_sel, o_chunks[1][i], o_chunks[0][i]) << 1)
                               >> va["d_o"], f"o_pre{i}")
                m.d.comb += o_new[i].eq((o_pre + ((prods[i] << 1) | 1)) >> 1)
            else:
                m.d.comb += o_new[i].eq(_rescale_add(o_chunks[0][i], vb["d_o"], prods[i]))
        finishing = Signal()
        m.d.comb += finishing.eq(vb["valid"] & vb["last"] & vb["active"])
        # the row's first and last finishing chunks, registered with V1b (the divider's start
        # and the lane's stall were the compare of ci behind V1b's registers)
        va_finishing = va["valid"] & va["last"] & va["active"]
        va_first = Signal(name="v1a_fin_first")
        m.d.comb += va_first.eq(va_finishing & (va["ci"] == 0))
        fin_first = _delay(m, adv, va_first, "v1b_fin_first")
        fin_last = _delay(m, adv, va_finishing & (va["ci"] == c - 1), "v1b_fin_last")
        for ci in range(c):
            src = o_chunks[ci + 1] if ci + 1 < c else o_new
            with m.If(adv & vb_v[ci]):
                m.d.sync += [o_chunks[ci][i].eq(src[i]) for i in range(dw)]
        with m.If(adv & finishing):
            for ci in range(c):
                src = hold_chunks[ci + 1] if ci + 1 < c else o_new
                m.d.sync += [hold_chunks[ci][i].eq(src[i]) for i in range(dw)]
        for ci in range(c):
            for i in range(dw):
                m.d.comb += self.hold[ci * dw + i].eq(hold_chunks[ci][i])
        return SimpleNamespace(fin_last=fin_last, run_l=run_l, fin_first=fin_first,
                               va_first=va_first)

    def _finish_row(self, m, v1):
        """Divider: the finished row's l (``run_l`` already holds it after the key's chunk 0)."""
        m.submodules.div = div = self._div
        row_done = Signal()
        m.d.comb += row_done.eq(self.adv & v1.fin_last)
        m.d.comb += [div.i.valid.eq(row_done), div.i.payload[0].eq(v1.run_l)]
        wiring.connect(m, div.o, wiring.flipped(self.r))
        # set by a finished row, cleared by the normalizer's last beat of it
        hold_full_next = row_done | (~self.hold_clear & self.hold_full)
        m.d.sync += self.hold_full.eq(hold_full_next)
        # stall = fin_first & hold_full, as a register loaded with the product of both
        # registers' next values: the unit's enable (~stall of every lane, over the global
        # network to ~1,000 clock enables) then starts at a flip-flop (as a LUT of the two it
        # ran at 12.1-12.4 ns routed on the ULX3S)
        stall = Signal(name="stall_reg")
        fin_first_next = Mux(self.adv, v1.va_first, v1.fin_first)
        m.d.comb += self.stall_next.eq(fin_first_next & hold_full_next)
        m.d.sync += stall.eq(self.stall_next)
        m.d.comb += self.stall.eq(stall)

