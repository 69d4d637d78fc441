"""Exp2: pipelined base-2 exponential 2^x of a non-positive score, bit-exact with the golden model.

``Exp2(cfg)`` computes ``sim.golden.softmax.exp2_fixed(cfg, x)``:

- input ``x``: ``signed(cfg.num.score.bits + 1)``, score fraction bits, **must be <= 0**. One
  bit wider than a score because softmax feeds ``t - M`` with ``t`` a score and
  ``M = ceil(max t)``, which reaches down to about ``2 * score.min_int`` (a narrower signal
  sign-extends into it, so score-width callers need not care);
- output ``y``: ``unsigned(cfg.num.exp.bits)``, UQ1.f in ``cfg.num.exp`` (``y <= 2^exp.frac``).

Method (identical to the golden model): ``i = floor(x)``, ``f = x - i`` in [0, 1). The top
``log2(exp2_segments)`` bits of ``f`` index a table of 2^(k / segments) (``exp.frac`` fraction
bits, ``segments + 1`` entries); the remaining low bits ``r`` interpolate linearly:
``mant = lo[idx] + rshift_round(diff[idx] * r, low_bits)`` in [1, 2); then
``y = rshift_round(mant, -i)``. The table is stored as (lo, diff) pairs so stage 2 needs one small
multiplier (diff is ~exp.frac - log2(segments) + 1 bits, r is low_bits bits).

Ports (a plain pipeline, not a stream: the user owns valid/ready and drives ``en``)::

    x  : In(signed(score.bits + 1)) operand, sampled on a clock edge with en = 1
    en : In(1)                      pipeline advance (clock enable of every stage)
    y  : Out(unsigned(exp.bits))    result

Timing: **latency** ``Exp2.latency`` = 3 enabled cycles: the ``x`` sampled on the edge of the
k-th cycle with ``en = 1`` appears on ``y`` after the (k + 2)-th following enabled edge, i.e.
after 3 enabled edges counting the sampling one. Throughput one value per enabled cycle. With
``en`` low every stage holds, so ``y`` is stable (stall = clock gating of the pipeline).

Stages: (1) split x, clamp the shift, table lookup and the interpolation multiply (into a
register: the multiplier's output register, ``hw.fabric.Multiplier``); (2) the rounding add
``mant = ((lo << low) + half + diff r) >> low``; (3) variable rounding right shift.

``Exp2(cfg, pipelined=True)`` (the attention lanes, for the clock: docs/attention.md "Timing")
has **latency** ``Exp2.PIPELINED_LATENCY`` = 5, each stage at most one multiply, one add or one
barrel shift: (1) split, clamp, table lookup into the multiplier's input registers; (2) the
product in the multiplier's output register (``hw.fabric.Multiplier``: inside the MULT18X18D
with ``dsp_target="ecp5"``); (3) ``mant = ((lo << low) + half + diff r) >> low``, one add
(``lo << low`` has ``low`` zero bits, so adding it before the rounding shift is exact);
(4) the barrel shift ``(2 mant) >> sh``; (5) the rounding ``(. + 1) >> 1``. Same results.

Resources: one (diff x r) multiplier of about 11 x 5 bits (LUTs, not a DSP, at the default
formats), a 2 x (segments) entry constant table, a barrel shifter of exp.bits + 1 bits.
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.golden.softmax import exp2_table
from hw.fabric.multiplier import Multiplier

__all__ = ["Exp2", "exp2_params", "hw_rshift_round_var"]


def exp2_params(cfg: Config) -> dict:
    """Derived sizes of the exp2 unit (shared with the softmax / attention units)."""
    n = cfg.num
    seg_bits = n.exp2_segments.bit_length() - 1
    low_bits = n.score.frac_bits - seg_bits
    table = [int(v) for v in exp2_table(cfg)]
    diffs = [table[k + 1] - table[k] for k in range(n.exp2_segments)]
    mant_bits = max(table).bit_length()          # mant <= table[-1] = 2^exp.frac
    return dict(seg_bits=seg_bits, low_bits=low_bits, table=table, diffs=diffs,
                mant_bits=mant_bits, diff_bits=max(max(diffs).bit_length(), 1),
                # rshift_round(m, n) == 0 for every m < 2^mant_bits once n >= mant_bits + 1
                max_shift=mant_bits + 1)


def hw_rshift_round_var(value, shift):
    """Amaranth expression: rshift_round(value, shift) for a *variable* shift >= 0.

    ``floor((v + 2^(s-1)) / 2^s) == floor((floor(2v / 2^s) + 1) / 2)``, which needs no
    shift-dependent constant: shift 2v, add one, drop one bit. The result fits the width of
    ``value`` (signedness preserved).
    """
    twice = (value << 1) >> shift
    # The rounded result always fits the width of ``value``; the caller's .eq drops the top bit.
    return (twice + 1) >> 1


class Exp2(wiring.Component):
    """2^x for x <= 0, three-stage pipeline with a common enable (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Widths from ``cfg.num.score``, ``cfg.num.exp``; table size from ``cfg.num.exp2_segments``.

    Ports
    -----
    x : In(signed(score.bits + 1))
        Operand (<= 0), sampled on an edge with ``en`` high.
    en : In(1)
        Pipeline advance.
    y : Out(unsigned(exp.bits))
        2^x in ``cfg.num.exp``.

    Attributes
    ----------
    pipelined : bool
        Five stages of at most one multiply / add / shift each instead of three
        (``PIPELINED_LATENCY``); same results.
    dsp_target : str
        ``hw.fabric.Multiplier`` target of the pipelined variant's interpolation multiply.

    Attributes
    ----------
    latency : int
        Enabled cycles from sampling ``x`` to the result on ``y`` (3, or 5 pipelined);
        throughput one value per enabled cycle. The class attribute is the default variant's.
    """

    latency = 3
    PIPELINED_LATENCY = 5

    def __init__(self, cfg: Config, pipelined: bool = False, dsp_target: str = "generic"):
        self.cfg = cfg
        self.pipelined, self.dsp_target = bool(pipelined), dsp_target
        self.latency = self.PIPELINED_LATENCY if self.pipelined else type(self).latency
        self.p = exp2_params(cfg)
        super().__init__({
            "x": In(signed(cfg.num.score.bits + 1)),
            "en": In(1),
            "y": Out(unsigned(cfg.num.exp.bits)),
        })

    def elaborate(self, platform):
        if self.pipelined:
            return self._elaborate_pipelined()
        m = Module()
        n, p = self.cfg.num, self.p
        fs = n.score.frac_bits
        low = p["low_bits"]

        lo_rom = Array(Const(v, unsigned(p["mant_bits"])) for v in p["table"][:-1])
        diff_rom = Array(Const(v, unsigned(p["diff_bits"])) for v in p["diffs"])

        # Stage 1: split x = i + f; -i is the right shift (clamped: beyond max_shift the result
        # is 0 anyway, so the barrel shifter stays exp.bits wide); table lookup on the top of f
        # and the interpolation product diff[idx] * r, registered. The product used to be formed
        # in stage 2 from the registered (diff, r) in front of the rounding add: the ULX3S
        # routed 13.03 ns path (s1_diff -> mult -> 11 carries -> s2_mant); now stage 1 is the
        # table (a few LUTs) and the multiply, stage 2 one add.
        x = self.x
        neg_i = Signal(range((1 << n.score.int_bits) + 1))
        m.d.comb += neg_i.eq(-(x >> fs))
        s1_lo = Signal(unsigned(p["mant_bits"]))
        s1_sh = Signal(range(p["max_shift"] + 1))
        f = x[:fs]
        idx = f[low:] if low < fs else Const(0, 1)
        if low > 0:
            m.submodules.interp = mul = Multiplier(
                unsigned(p["diff_bits"]), unsigned(low), output_reg=True, target=self.dsp_target)
            m.d.comb += [mul.a.eq(diff_rom[idx]), mul.b.eq(f[:low]), mul.en.eq(self.en)]
            s1_prod = mul.p
        else:
            s1_prod = Const(0, 1)
        # Stage 2: mant = lo + rshift_round(diff * r, low) = ((lo << low) + half + diff r) >> low
        # (``lo << low`` has ``low`` zero bits, so adding it before the rounding shift is exact).
        half = (1 << (low - 1)) if low > 0 else 0
        s2_mant = Signal(unsigned(p["mant_bits"]))
        s2_sh = Signal.like(s1_sh)
        # Stage 3: y = rshift_round(mant, sh).
        y = Signal(unsigned(n.exp.bits))

        with m.If(self.en):
            m.d.sync += [
                s1_lo.eq(lo_rom[idx]),
                s1_sh.eq(Mux(neg_i > p["max_shift"], p["max_shift"], neg_i)),
                s2_mant.eq((((s1_lo << low) | half) + s1_prod) >> low),
                s2_sh.eq(s1_sh),
                y.eq(hw_rshift_round_var(s2_mant, s2_sh)),
            ]
        m.d.comb += self.y.eq(y)
        return m

    def _elaborate_pipelined(self):
        m = Module()
        n, p = self.cfg.num, self.p
        fs, low = n.score.frac_bits, p["low_bits"]
        lo_rom = Array(Const(v, unsigned(p["mant_bits"])) for v in p["table"][:-1])
        diff_rom = Array(Const(v, unsigned(p["diff_bits"])) for v in p["diffs"])
        x = self.x
        neg_i = Signal(range((1 << n.score.int_bits) + 1))
        m.d.comb += neg_i.eq(-(x >> fs))
        f = x[:fs]
        idx = f[low:] if low < fs else Const(0, 1)

        def stage(value, name):
            reg = Signal(value.shape(), name=name)
            with m.If(self.en):
                m.d.sync += reg.eq(value)
            return reg

        # S1: lookup; diff and r go straight into the multiplier's input registers.
        s1_lo = stage(lo_rom[idx], "s1_lo")
        s1_sh = stage(Mux(neg_i > p["max_shift"], p["max_shift"], neg_i), "s1_sh")
        if low > 0:
            m.submodules.interp = mul = Multiplier(
                unsigned(p["diff_bits"]), unsigned(low), input_reg=True, output_reg=True,
                target=self.dsp_target)
            m.d.comb += [mul.a.eq(diff_rom[idx]), mul.b.eq(f[:low]), mul.en.eq(self.en)]
            prod = mul.p                                        # S2 (output register)
        else:
            prod = Const(0, 1)
        s2_lo, s2_sh = stage(s1_lo, "s2_lo"), stage(s1_sh, "s2_sh")
        # S3: mant = lo + rshift_round(diff r, low) as one add before the shift.
        half = (1 << (low - 1)) if low > 0 else 0
        s3_mant = Signal(unsigned(p["mant_bits"]), name="s3_mant")
        with m.If(self.en):
            m.d.sync += s3_mant.eq((((s2_lo << low) | half) + prod) >> low)
        s3_sh = stage(s2_sh, "s3_sh")
        # S4: (2 mant) >> sh; S5: (. + 1) >> 1 (hw_rshift_round_var in two stages).
        s4_twice = stage((s3_mant << 1) >> s3_sh, "s4_twice")
        y = Signal(unsigned(n.exp.bits))
        with m.If(self.en):
            m.d.sync += y.eq((s4_twice + 1) >> 1)
        m.d.comb += self.y.eq(y)
        return m
