"""Reciprocal: sequential divider r = round(2^R / l) of a softmax running sum, bit-exact.

``Reciprocal(cfg, l_bits, lanes=1, bits_per_cycle=1)`` computes, for each of ``lanes`` sums ``l``
of one beat, ``sim.golden.softmax.reciprocal(cfg, l) = floor((2^R + floor(l / 2)) / l)`` with
``R = cfg.num.exp.frac_bits + cfg.num.recip_frac`` (``recip_bits(cfg)``).

Range assumption (why the divider is short): ``l >= 2^(exp.frac - 1)``. In a softmax row the
element that sets the final (integer, ceil) max has ``t - M`` in (-1, 0], so its exponential is
at least 1/2 and is never shifted out; hence ``r <= 2^(recip_frac + 1)`` and only
``q_bits = recip_frac + 2`` quotient bits are non-zero. The restoring division starts with the
remainder ``X >> q_bits`` (already < l) and retires ``bits_per_cycle`` quotient bits per cycle.
Inputs below the assumed minimum give a wrong (truncated) quotient.

Ports (``amaranth.lib.stream``):

- ``i``: ``In(stream.Signature(ArrayLayout(unsigned(l_bits), lanes)))``
- ``o``: ``Out(stream.Signature(ArrayLayout(unsigned(q_bits), lanes)))``

Timing: ``latency = ceil(q_bits / bits_per_cycle)`` cycles from the accepting edge to ``o.valid``;
one division at a time, so throughput is one beat per ``latency + 1`` cycles (a new beat is
accepted on the edge that hands the result over). ``o.payload`` is stable while ``o.valid``.

Resources per lane: ``bits_per_cycle`` subtractors of ``l_bits + 1`` bits, about
``l_bits + 2 * q_bits`` flip-flops. No multipliers.
"""
from __future__ import annotations

import math

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.cycles.attention import recip_q_bits
from sim.golden.softmax import recip_bits

__all__ = ["Reciprocal", "recip_q_bits"]


class Reciprocal(wiring.Component):
    """Sequential restoring divider for round(2^R / l) (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Supplies R (``exp.frac_bits + recip_frac``).
    l_bits : int
        Width of the running sums (``l < 2^l_bits``; must be <= R + 1).
    lanes : int
        Independent sums per beat, divided in lock step.
    bits_per_cycle : int
        Quotient bits retired per cycle (restoring steps unrolled per cycle).

    Ports
    -----
    i : In(stream(ArrayLayout(unsigned(l_bits), lanes)))
        One set of sums per beat, accepted while idle or on the edge that hands a result over.
    o : Out(stream(ArrayLayout(unsigned(q_bits), lanes)))
        round(2^R / l) per lane.

    Attributes
    ----------
    latency : int
        ``ceil(q_bits / bits_per_cycle)`` cycles from the accepting edge to ``o.valid``;
        throughput one beat per ``latency + 1`` cycles.
    """

    def __init__(self, cfg: Config, l_bits: int, lanes: int = 1, bits_per_cycle: int = 1):
        self.cfg = cfg
        self.R = recip_bits(cfg)
        self.l_bits = int(l_bits)
        if not 1 <= self.l_bits <= self.R + 1:
            raise ValueError(f"Reciprocal: l_bits {l_bits} must be in [1, R + 1 = {self.R + 1}]")
        self.lanes = int(lanes)
        self.bits_per_cycle = int(bits_per_cycle)
        if self.lanes < 1 or self.bits_per_cycle < 1:
            raise ValueError("Reciprocal: lanes and bits_per_cycle must be >= 1")
        self.q_bits = recip_q_bits(cfg)
        self.latency = math.ceil(self.q_bits / self.bits_per_cycle)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(self.l_bits), self.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(self.q_bits), self.lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        R, qb, lb, k = self.R, self.q_bits, self.l_bits, self.bits_per_cycle
        steps = self.latency * k            # >= q_bits: extra leading steps produce zeros
        x_bits = R + 1                      # X = 2^R + floor(l / 2) < 2^(R + 1)

        busy = Signal()
        count = Signal(range(self.latency + 1))
        m.d.comb += self.i.ready.eq(~busy & (~self.o.valid | self.o.ready))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        for lane in range(self.lanes):
            l_in = self.i.payload[lane]
            div = Signal(lb, name=f"div{lane}")
            # rem < div always holds, so it needs l_bits bits; one more for the shifted-in bit.
            rem = Signal(lb, name=f"rem{lane}")
            low = Signal(steps, name=f"low{lane}")     # numerator bits still to shift in
            quo = Signal(steps, name=f"quo{lane}")
            x = Signal(x_bits, name=f"x{lane}")
            m.d.comb += x.eq((1 << R) + (l_in >> 1))
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [div.eq(l_in), rem.eq(x >> steps), low.eq(x[:steps]), quo.eq(0)]
            with m.If(busy):
                r_cur, lo_cur, q_cur = rem, low, quo
                for s in range(k):
                    trial = Cat(lo_cur[-1], r_cur)               # (rem << 1) | next bit
                    # One carry chain per step: the subtraction's sign is the compare (a
                    # compare, then a subtract of the masked divisor, was two chains in series
                    # and the attention lane's 11.4 ns routed group).
                    diff = Signal(signed(lb + 2), name=f"diff{lane}_s{s}")
                    m.d.comb += diff.eq(trial - div)
                    ge = ~diff[-1]
                    r_next = Signal(lb, name=f"rem{lane}_s{s}")
                    m.d.comb += r_next.eq(Mux(ge, diff[:lb], trial[:lb]))
                    r_cur = r_next
                    lo_cur = Cat(0, lo_cur[:-1])
                    q_cur = Cat(ge, q_cur[:-1])
                m.d.sync += [rem.eq(r_cur), low.eq(lo_cur), quo.eq(q_cur)]
            m.d.comb += self.o.payload[lane].eq(quo[:qb])

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [busy.eq(1), count.eq(self.latency)]
        with m.Elif(busy):
            m.d.sync += count.eq(count - 1)
            with m.If(count == 1):
                m.d.sync += [busy.eq(0), self.o.valid.eq(1)]
        return m
