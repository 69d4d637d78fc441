"""Pipelined 1/sqrt of the LayerNorm, bit-exact with ``sim.golden.layernorm.rsqrt_fixed``.

For a positive integer V (the row statistic ``D*S2 - S1^2 + E``) the unit returns (y, k) with
``1/sqrt(V) ~= y * 2^-(rsqrt_frac + k)``, computed exactly as the golden model does:

1. leading-one detector: ``k = (bit_length(V) - 1) >> 1`` so that V lies in [4^k, 4^(k+1));
2. mantissa ``m = floor(V * 2^(rsqrt_frac - 2k))`` in [2^f, 2^(f+2)) (a barrel shift), whose top
   ``rsqrt_lut_bits`` bits index the ROM ``y0 = 1/sqrt(bucket middle)`` (the golden table itself);
3. one Newton step ``t = rnd(y0^2 >> f)``, ``t2 = rnd(t*m >> f)``,
   ``y = rnd(y0*(3*2^f - t2) >> (f+1))``
   (``rnd`` = round half up, ``f`` = rsqrt_frac): t comes from the ROM with y0 (a function of the
   entry), t*m and y0*(3*2^f - t2) are one multiplier each, each product in a register (the
   multiplier's output register: ``hw.fabric.Multiplier`` of ``cfg.hw.dsp_target``), the
   rounding of t2 and the subtract are one add, and the final rounding of y is combinational
   behind the last product register.

Ports: ``i`` (always ready) carries ``{v, tag}``; ``o`` (no back-pressure: the consumer must take
every result) carries ``{y, k, tag}``. ``tag`` is an opaque payload delayed with V (the LayerNorm
unit passes the row-buffer bank). Latency :attr:`latency` = 6 cycles, throughput one V per cycle,
fully pipelined (there is no stall: results appear exactly ``latency`` cycles after their input).
Stages: (1) leading pair, (2a) mantissa shift (and the ROM address), (2) ROM read into a register,
(3) t*m, (4) d = 3*2^f - t2,
(5) y0*d (``o.payload.y`` is its rounding, combinational; ``k``, ``tag``, ``valid`` registered).
Cost: two multipliers whose operands are sized from the exhaustive ranges of
:func:`rsqrt_bounds` (<= 17 bits each for f = 15: one MULT18X18D each) and a
2^rsqrt_lut_bits-entry ROM of {t, y0}.
The always-ready streams make ``i.ready`` / ``o.ready`` constants, so as a Verilog top level the
component needs explicit ports (``boards.synth_report`` passes them).
"""
from __future__ import annotations

import numpy as np
from amaranth.hdl import C, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.fixed import hw_rshift_round, rshift_round
from sim.golden.layernorm import rsqrt_fixed, rsqrt_table
from hw.fabric.multiplier import MULT18_WIDTH, Multiplier

__all__ = ["Rsqrt", "rsqrt_bounds"]


def rsqrt_bounds(cfg: Config) -> dict[str, int]:
    """Ranges of the Newton-step intermediates over every reachable mantissa (sizes the datapath).

    Everything after the LUT depends only on the mantissa m in [2^f, 2^(f+2)), so all of them are
    evaluated (the golden formulas of ``rsqrt_fixed``, step by step): ``t_max`` (y0^2 step),
    ``t2_max`` (m*t step), ``d_min``/``d_max`` (3*2^f - t2) and ``y_max``. Tight widths keep each
    multiplier within one 18x18 DSP for f = 15. For f > 20 analytic bounds are used instead.
    The final y is also checked against the golden ``rsqrt_fixed`` itself (V = m << f has k = f
    and mantissa m exactly).
    """
    f, lb = cfg.num.rsqrt_frac, cfg.num.rsqrt_lut_bits
    if f > 20:
        return {"t_max": 1 << f, "t2_max": 1 << (f + 2), "d_min": (3 << f) - (1 << (f + 2)),
                "d_max": 3 << f, "y_max": 3 << (f - 1)}
    m = np.arange(1 << f, 1 << (f + 2), dtype=np.int64)
    y0 = rsqrt_table(cfg)[m >> (f + 2 - lb)]
    t = rshift_round(y0 * y0, f)
    t2 = rshift_round(t * m, f)
    d = (3 << f) - t2
    y = rshift_round(y0 * d, f + 1)
    golden_y, _ = rsqrt_fixed(cfg, m << f)
    if not np.array_equal(y, golden_y):   # the step-by-step copy must be the golden function
        raise AssertionError("rsqrt_bounds: step-by-step Newton differs from rsqrt_fixed")
    if y.min() < 0:   # cannot happen for a sane table; the RTL keeps y unsigned
        raise ValueError(f"rsqrt: the golden Newton step goes negative ({y.min()})")
    return {"t_max": int(t.max()), "t2_max": int(t2.max()), "d_min": int(d.min()),
            "d_max": int(d.max()), "y_max": int(y.max())}


def _signed_for(lo: int, hi: int):
    """Smallest signed shape holding [lo, hi]."""
    bits = max(lo.bit_length(), hi.bit_length()) + 1
    return signed(bits)


class Rsqrt(wiring.Component):
    """1/sqrt(V) as (y, k) with ``1/sqrt(V) ~= y * 2^-(rsqrt_frac + k)`` (module docstring).

    Parameters
    ----------
    cfg : Config
        ``cfg.num.rsqrt_frac`` (f) and ``cfg.num.rsqrt_lut_bits`` (the ROM size).
    v_bits : int
        Width of V (unsigned, >= 1).
    tag_shape : shape
        An opaque side-band delayed with V (default 1 bit).

    Ports
    -----
    i : In(stream({v, tag}), always ready)
        One V per beat.
    o : Out(stream({y, k, tag}), always ready)
        The result of the V taken ``latency`` cycles earlier; no back-pressure.

    Attributes
    ----------
    latency : int
        Cycles from a beat on ``i`` to its result on ``o`` (6); throughput one V per cycle.
    """

    latency = 6

    def __init__(self, cfg: Config, v_bits: int, tag_shape=unsigned(1)):
        self._cfg = cfg
        self.v_bits = int(v_bits)
        if self.v_bits < 1:
            raise ValueError(f"Rsqrt: v_bits must be >= 1, got {v_bits}")
        self.k_max = (self.v_bits - 1) >> 1
        self.bounds = rsqrt_bounds(cfg)
        self.y_max = self.bounds["y_max"]
        self.y_shape = unsigned(self.y_max.bit_length())
        self.k_shape = unsigned(max(1, self.k_max.bit_length()))
        self._tag_shape = tag_shape
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "v": unsigned(self.v_bits), "tag": tag_shape}), always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({
                "y": self.y_shape, "k": self.k_shape, "tag": tag_shape}), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._cfg.num
        f, lb = n.rsqrt_frac, n.rsqrt_lut_bits
        table = [int(t) for t in rsqrt_table(self._cfg)]
        # The ROM holds y0 and t = rnd(y0^2 / 2^f) (the golden first Newton product, a function
        # of the table entry alone): {t, y0} per word, so no multiplier squares y0.
        y0_shape = unsigned(max(table).bit_length())
        t_table = [int(rshift_round(y * y, f)) for y in table]
        t_shape = unsigned(max(max(t_table).bit_length(), 1))
        rom = Memory(shape=unsigned(y0_shape.width + t_shape.width), depth=len(table),
                     init=[y | (t << y0_shape.width) for y, t in zip(table, t_table)])
        m.submodules.rom = rom
        rom_rd = rom.read_port()          # enabled every cycle: the pipeline never stalls

        def stage(name, shape):
            return Signal(shape, name=name)

        tag = [stage(f"tag{s}", self._tag_shape) for s in range(self.latency)]
        valid = [stage(f"valid{s}", 1) for s in range(self.latency)]

        # stage 1: k = (bit_length(V) - 1) >> 1, the index of the highest non-zero bit pair of V
        # (0 for V = 0), by a binary tree over the pairs: each node is (any pair non-zero, index
        # of the highest), the upper half's index when it has one. A priority chain over every
        # bit (the last matching If) was seven PFUMX + four LUT levels, the ULX3S estimate's
        # 12.9 ns rsqrt stage.
        v = self.i.payload.v
        kw = self.k_shape.width
        pairs = [v[2 * i:2 * i + 2].any() if 2 * i < self.v_bits else C(0, 1)
                 for i in range(1 << kw)]

        def highest(flags):       # (any flag, [index bits, LSB first])
            if len(flags) == 1:
                return flags[0], []
            h = len(flags) // 2
            lo_any, lo_idx = highest(flags[:h])
            hi_any, hi_idx = highest(flags[h:])
            return lo_any | hi_any, [Mux(hi_any, a, b) for a, b in zip(hi_idx, lo_idx)] + [hi_any]

        _, k_bits = highest(pairs)
        v1 = stage("v1", unsigned(self.v_bits))
        k1 = stage("k1", self.k_shape)
        m.d.sync += [v1.eq(v), k1.eq(Cat(*k_bits)), valid[0].eq(self.i.valid),
                     tag[0].eq(self.i.payload.tag)]

        # stage 2: mantissa m = floor(V * 2^(f - 2k)), one right barrel shift of V << f (this also
        # covers 2k < f, where the golden model shifts left); ROM address = top lb bits of m.
        mant = ((v1 << f) >> (k1 << 1))[:f + 2]
        m2a = stage("m2a", unsigned(f + 2))
        k2a = stage("k2a", self.k_shape)
        m.d.sync += [m2a.eq(mant), k2a.eq(k1), valid[1].eq(valid[0]), tag[1].eq(tag[0])]
        m2 = stage("m2", unsigned(f + 2))
        k2 = stage("k2", self.k_shape)
        # The ROM (a DP16KD on ECP5) is addressed with the shifted mantissa's top bits and its
        # data registered in rom_q beside m2: the multiplier of stage 3 then starts from
        # fabric registers, not from the block RAM's unregistered output (~5.8 ns clock-to-out
        # in front of the MULT18X18D: ULX3S estimate, 11.05 ns).
        m.d.comb += rom_rd.addr.eq(mant >> (f + 2 - lb))
        rom_q = Signal(rom.shape, name="rom_q")
        m.d.sync += [m2.eq(m2a), k2.eq(k2a), valid[2].eq(valid[1]), tag[2].eq(tag[1]),
                     rom_q.eq(rom_rd.data)]

        # stage 3: y0 and t from the ROM; the product t * m into a register (the multiplier's
        # output register, ``hw.fabric.Multiplier``)
        y0, t = rom_q[:y0_shape.width], rom_q[y0_shape.width:]
        bnd = self.bounds
        target = self._cfg.hw.dsp_target

        def product(name, a, b):
            a, b = Value.cast(a), Value.cast(b)
            fits = max(len(a), len(b)) <= MULT18_WIDTH
            mul = m.submodules[name] = Multiplier(a.shape(), b.shape(), output_reg=True,
                                                  target=target if fits else "generic")
            m.d.comb += [mul.a.eq(a), mul.b.eq(b)]
            return mul.p

        p3 = product("tm", t, m2)
        y03 = stage("y03", y0_shape)
        k3 = stage("k3", self.k_shape)
        m.d.sync += [y03.eq(y0), k3.eq(k2), valid[3].eq(valid[2]), tag[3].eq(tag[2])]

        # stage 4: d = 3 * 2^f - t2 with t2 = rnd(t * m / 2^f) (~= 2^f: m * y0^2 is close to
        # one), as one subtract: 3 * 2^f - floor((p + 2^(f-1)) / 2^f)
        # = floor((3 * 2^2f + 2^(f-1) - 1 - p) / 2^f) (-floor(a / b) = floor((b - 1 - a) / b)).
        # The rounding add, the subtract and the multiply of the old stages 4 and 5 were the
        # ULX3S routed 12.56 ns path (t24 -> 17 carries + mult -> y).
        # For every reachable m, d lies in [d_min, d_max] and y in [0, y_max] (both checked
        # exhaustively by rsqrt_bounds), so these widths are exact.
        assert f >= 1
        c4 = (3 << (2 * f)) + (1 << (f - 1)) - 1
        diff = stage("diff", _signed_for(bnd["d_min"], bnd["d_max"]))
        y04 = stage("y04", y0_shape)
        k4 = stage("k4", self.k_shape)
        m.d.sync += [diff.eq((c4 - p3) >> f), y04.eq(y03), k4.eq(k3), valid[4].eq(valid[3]),
                     tag[4].eq(tag[3])]

        # stage 5: the product y0 * d in a register; the output y = rnd(y0 * d / 2^(f+1)) is
        # formed from it combinationally (one rounding add in front of the consumer's register)
        py = product("yd", y04, diff)
        m.d.comb += self.o.payload.y.eq(hw_rshift_round(py, f + 1)[:self.y_shape.width])
        m.d.sync += [self.o.payload.k.eq(k4), valid[5].eq(valid[4]), tag[5].eq(tag[4])]
        m.d.comb += [self.o.valid.eq(valid[5]), self.o.payload.tag.eq(tag[5])]
        return m
