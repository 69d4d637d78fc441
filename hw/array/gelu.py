"""Piecewise-linear GELU: one lane (:class:`GeluLane`) and a lane-parallel stream (:class:`GeluUnit`).

Bit-exact with :func:`sim.golden.gelu.gelu_pwl`::

    a   = min(|x|, act.max_int)             # |x| of the most negative code saturates
    i   = a >> sb,  r = a mod 2^sb          # sb = gelu_step_bits(cfg): the grid step is 2^sb LSBs
    d   = T[i] + round_half_up((T[i+1] - T[i]) * r, sb)   if i < segments else 0
    y   = saturate(round_half_up((max(x, 0) << extra) - d, extra), act)

with extra = gelu_table_frac - act.frac_bits.

``T`` is the golden correction table ``gelu_table(cfg)`` (d(a) = a * Phi(-a) at the grid points).
The lane stores it as two small ROMs, ``T[i]`` and the slope ``T[i+1] - T[i]``, so the per-value
work is one ROM read, one small multiply (slope x ``sb``-bit remainder, written as ``sb``
shifted adds so it uses no DSP), two adds and a saturation.

Pipeline (both classes): 5 register stages.
  0. a = min(|x|, act.max_int).
  1. segment index, ROM read (slope, lo * 2^sb + half), remainder.
  2a. the first half of the levels of one add tree of 1 + sb terms,
      lo * 2^sb + half - half3 * 2^sb + slope * r (half3 = stage 3's rounding half);
  2b. the rest of the tree, >> sb: d - half3.
  3. ((ReLU(x) << extra) - (d - half3)) >> extra (= the rounding shift), saturation; or x
     itself when bypassed.
Latency 5 cycles (advances), throughput 1 value per lane per cycle.

``bypass`` lets the GEMM epilogue keep the same latency whether or not a GEMM applies GELU (the
mode is a per-GEMM command bit, not an elaboration parameter).
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.fixed import hw_rshift_round, hw_saturate
from sim.golden.gelu import gelu_step_bits, gelu_table

__all__ = ["GeluLane", "GeluUnit", "add_levels", "add_tree", "gelu_rom", "shift_add_mul"]


def gelu_rom(cfg: Config) -> tuple[list[int], list[int]]:
    """The lane's two ROMs: ``lo[i] = T[i]`` and ``slope[i] = T[i+1] - T[i]`` for each segment."""
    t = [int(v) for v in gelu_table(cfg)]
    return t[:-1], [t[i + 1] - t[i] for i in range(len(t) - 1)]


def shift_add_mul(m: Module, a, b, name: str = "sam"):
    """``a * b`` for signed ``a`` and unsigned ``b`` as a balanced tree of shifted adds.

    Written out so synthesis keeps it in LUTs: yosys maps every ``*`` of 2 bits or more onto a
    MULT18X18D on ECP5, and the DSPs belong to the PE array. Each partial sum is a ``keep`` wire
    so yosys builds ripple-carry adders (carry chains) instead of merging the whole tree into
    one carry-save multiplier in plain LUTs: ~3x fewer LUTs (16 x 16 bits: ~140 CCU2C + ~260
    LUT4 instead of ~1400 LUT4). Cost ~ len(b) - 1 adders, depth ceil(log2 len(b)).
    """
    from amaranth.hdl import Value
    a, b = Value.cast(a), Value.cast(b)
    return add_tree(m, [Mux(b[i], a.as_signed() << i, 0) for i in range(len(b))], name)


def add_tree(m: Module, terms, name: str = "sum"):
    """The signed sum of ``terms`` as a balanced tree of ``keep`` adders (see
    :func:`shift_add_mul`); depth ceil(log2 len(terms)) carry chains."""
    return add_levels(m, terms, name)[0].as_signed()


def add_levels(m: Module, terms, name: str = "sum", levels: int | None = None) -> list:
    """The first ``levels`` levels (all when None) of :func:`add_tree`'s balanced tree: the
    partial sums left, ceil(len(terms) / 2^levels) of them, each a ``keep`` wire (or a term
    passed through), so that a caller can register them and add the rest a stage later."""
    terms = list(terms) or [Const(0, signed(1))]
    level = 0
    while len(terms) > 1 and (levels is None or level < levels):
        nxt = []
        for i in range(0, len(terms), 2):
            if i + 1 < len(terms):
                total = terms[i] + terms[i + 1]
                wire = Signal(signed(len(total)), name=f"{name}_l{level}_{i // 2}",
                              attrs={"keep": 1})
                m.d.comb += wire.eq(total)
                nxt.append(wire)
            else:
                nxt.append(terms[i])
        terms, level = nxt, level + 1
    return terms


def _shape_for(values) -> Shape:
    return Shape.cast(range(min(min(values), 0), max(max(values), 0) + 1))


class GeluLane(wiring.Component):
    """One PWL GELU lane with a clock enable; see the module docstring for the arithmetic.

    Parameters: ``cfg`` (``num.act``, ``num.gelu_segments``, ``num.gelu_table_frac``).

    Ports: ``en`` (advance the pipeline), ``x`` (activation in, ``cfg.num.act``), ``bypass``
    (output ``x`` unchanged instead of GELU(x)), ``y`` (registered result of the ``x`` presented
    :attr:`latency` advances earlier). Throughput 1 value per advance.
    """

    latency = 5

    def __init__(self, cfg: Config):
        self._cfg = cfg
        act = cfg.num.act
        super().__init__({
            "en": In(1),
            "x": In(signed(act.bits)),
            "bypass": In(1),
            "y": Out(signed(act.bits)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._cfg.num
        act = n.act
        sb = gelu_step_bits(self._cfg)
        extra = n.gelu_table_frac - act.frac_bits
        seg_bits = (n.gelu_segments - 1).bit_length()   # gelu_segments is a power of two
        lo_vals, slope_vals = gelu_rom(self._cfg)
        slope_shape = _shape_for(slope_vals)
        slope_rom = Array(Const(v, slope_shape) for v in slope_vals)

        # stage 0: |x| (its negation and clamp were a carry chain and a compare in front of the
        # table lookup: one stage of ~17 levels)
        # |x| > max_int only for x = min_int: that clamp is an AND of x's bits beside the
        # negation, not a compare after it (a second carry chain in series, 12.3-12.6 ns
        # routed on the ULX3S)
        x = self.x
        ax = Mux(x < 0, -x, x)                            # act.bits + 1 bits: |min_int| fits
        a = Signal(unsigned(act.bits - 1))                # golden: min(|x|, max_int)
        x0 = Signal(signed(act.bits))
        byp0 = Signal()
        with m.If(self.en):
            m.d.sync += [a.eq(Mux(x == act.min_int, act.max_int, ax[:act.bits - 1])),
                         x0.eq(x), byp0.eq(self.bypass)]

        # stage 1: segment lookup. ``lo`` and the rounding half are one ROM word,
        # base = lo * 2^sb + half, so that stage 2 is one add tree:
        # (base + slope * r) >> sb == lo + round_half_up(slope * r, sb) exactly, as lo * 2^sb is
        # a multiple of 2^sb. Before, stage 2 was the slope x r tree, the rounding add and the
        # lo add in series: the ULX3S build's routed worst path (14.6 ns). Outside the table
        # slope = 0 and base = half, so d = 0.
        # Stage 3's rounding half is folded in as well: the tree gives d - half3 (exactly,
        # half3 * 2^sb being a multiple of 2^sb), so stage 3 subtracts and shifts, no add.
        half = 1 << (sb - 1) if sb else 0
        half3 = 1 << (extra - 1) if extra > 0 else 0
        base_vals = [(v << sb) + half - (half3 << sb) for v in lo_vals]
        outside = half - (half3 << sb)
        base_shape = _shape_for(base_vals + [outside])
        base_rom = Array(Const(v, base_shape) for v in base_vals)
        idx = a >> sb
        inside = idx < n.gelu_segments
        seg = idx[:seg_bits] if seg_bits else Const(0, 1)
        x1 = Signal(signed(act.bits))
        byp1 = Signal()
        base1 = Signal(base_shape)
        slope1 = Signal(slope_shape)
        r1 = Signal(unsigned(max(sb, 1)))
        with m.If(self.en):
            m.d.sync += [
                x1.eq(x0), byp1.eq(byp0), r1.eq(a[:sb] if sb else 0),
                base1.eq(Mux(inside, base_rom[seg], outside)),
                slope1.eq(Mux(inside, slope_rom[seg], 0)),
            ]

        # stage 2: interpolation, d = (base + slope * r) >> sb: the slope x remainder
        # shift-adds (no DSP) and base in one balanced tree, registered after its first
        # ``levels_2a`` levels (stage 2a) and finished in stage 2b. In one stage its 1 + sb
        # terms were ceil(log2(1 + sb)) carry chains in series: the ULX3S build's routed
        # worst group (11.2 ns, 23 endpoints).
        terms = [Mux(r1[i], slope1.as_signed() << i, 0) for i in range(sb)]
        tree_depth = len(terms).bit_length()              # ceil(log2(1 + sb)) levels
        levels_2a = (tree_depth + 1) // 2
        part = add_levels(m, [base1] + terms, "interp_a", levels_2a)
        part_2a = [Signal(signed(len(p)), name=f"interp_p{i}") for i, p in enumerate(part)]
        x2a = Signal(signed(act.bits))
        byp2a = Signal()
        with m.If(self.en):
            m.d.sync += [r.eq(p) for r, p in zip(part_2a, part)]
            m.d.sync += [x2a.eq(x1), byp2a.eq(byp1)]
        d_val = add_tree(m, part_2a, "interp_b") >> sb
        # |round(slope * r / 2^sb)| <= |slope|, so d lies within lo + [min(slope, 0), max(slope, 0)]
        d2 = Signal(_shape_for([v - half3 for v in lo_vals + [max(lo_vals) + max(slope_vals),
                                                              min(lo_vals) + min(slope_vals)]]))
        x2 = Signal(signed(act.bits))
        byp2 = Signal()
        with m.If(self.en):
            m.d.sync += [d2.eq(d_val), x2.eq(x2a), byp2.eq(byp2a)]

        # stage 3: ReLU(x) - d, one rounding, saturation
        relu = Mux(x2 > 0, x2, 0)
        # d2 = d - half3: ((relu << extra) - d2) >> extra is the golden's round-half-up shift
        g = hw_saturate((((relu << extra) - d2) >> extra) if extra > 0
                        else hw_rshift_round((relu << extra) - d2, extra), act)
        with m.If(self.en):
            m.d.sync += self.y.eq(Mux(byp2, x2, g))
        return m


class GeluUnit(wiring.Component):
    """Stream GELU unit: ``lanes`` values (default ``cfg.hw.array_cols``) per beat, 1 beat/cycle.

    Parameters: ``cfg``, ``lanes`` (default ``cfg.hw.array_cols``).

    Ports: ``i``: stream of ``ArrayLayout(signed(act.bits), lanes)``; ``o``: same layout, GELU
    of each lane, beats in input order. Latency :attr:`latency` = 5 cycles from an ``i``
    handshake to ``o.valid``; throughput one beat per cycle. Back-pressure stalls the whole pipeline (``i.ready = ~o.valid | o.ready``),
    so beats are never dropped or reordered.
    """

    latency = GeluLane.latency

    def __init__(self, cfg: Config, lanes: int | None = None):
        self._cfg = cfg
        self.lanes = lanes or cfg.hw.array_cols
        layout = data.ArrayLayout(signed(cfg.num.act.bits), self.lanes)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        valid = [Signal(name=f"valid{s}") for s in range(1, self.latency)] + [self.o.valid]
        with m.If(en):
            m.d.sync += valid[0].eq(self.i.valid)
            m.d.sync += [valid[s].eq(valid[s - 1]) for s in range(1, self.latency)]
        for lane in range(self.lanes):
            g = m.submodules[f"lane{lane}"] = GeluLane(self._cfg)
            m.d.comb += [g.en.eq(en), g.x.eq(self.i.payload[lane]), g.bypass.eq(0),
                         self.o.payload[lane].eq(g.y)]
        return m
