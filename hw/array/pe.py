"""One multiply-accumulate processing element of the weight-stationary PE array.

The PE holds two weights (bank 0 and bank 1). Each cycle it is enabled it takes an activation
``x`` and the weight ``w[bank]`` into its multiplier, and :attr:`PE.mult_latency` advances later
adds their product to the partial sum arriving from the row above:

    product(t + L) = x(t) * w[bank(t)](t)          (L = cfg.hw.pe_mult_latency)
    psum_out      <= psum_in + product

``bank`` travels with the activation, so the array switches from one weight tile to the next
exactly when the first activation of the new tile reaches this PE, with no global swap step and
no bubble: the other bank is written (``w_we``) while this one computes.

The multiply is a :class:`hw.fabric.Multiplier` (``act.bits x weight.bits`` signed, one ECP5
MULT18X18D / one DSP48E2) with the registers of ``sim.config.PE_MULT_REGISTERS``: input
registers on ``x`` and ``w[bank]``, an output register on the product. On the ECP5
(``cfg.hw.dsp_target == "ecp5"``) they are the MULT18X18D's own registers, so the PE's only
fabric path is product -> psum adder -> psum register; the generic target puts the same
registers around a plain ``*`` (what simulators run). All of them use the array's advance ``en``
as clock enable, so a stall freezes the product pipeline with the partial sums.

Why the skew still lines up: every PE delays its product by the same L, so the partial sum of a
token leaves row r - 1 (one register) exactly when row r's product of the same token (its
activation entered row r one advance later, L advances ago) is ready. The array's latency grows
by L once, not per row. The weight is read when the activation enters the multiplier's input
register, the same advance as without the registers, so the loader's rule (overwrite row r once
the last beat of the old tile has entered row r) is unchanged.

Latency :attr:`latency` = 1 + L advances from ``x`` / ``bank`` to ``psum_out`` (``psum_in`` is
added in the last of them); throughput 1 MAC per advance.

``psum_in_shape`` / ``psum_out_shape`` are chosen by the array so every partial sum is exactly as
wide as its bound needs (see :mod:`hw.array.pe_array`); the assignment cannot truncate a valid value.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import PE_MULT_REGISTERS, Config

from hw.fabric.multiplier import Multiplier

__all__ = ["PE"]


class PE(wiring.Component):
    """Weight-stationary MAC PE with a double-buffered weight: ``psum_out = psum_in + x * w``.

    Parameters
    ----------
    cfg : Config
        Operand formats (``num.act``, ``num.weight``) and the multiplier target
        (``hw.dsp_target``).
    psum_in_shape, psum_out_shape : shape
        Widths of the partial sum entering from the row above and leaving to the row below.

    Ports:
      - ``en``: advance (the whole array shares one clock enable; also the multiplier's).
      - ``x`` (``signed(act.bits)``), ``bank`` (1): the activation and the weight bank it uses.
      - ``psum_in`` (``psum_in_shape``): the partial sum of the token whose ``x`` was presented
        :attr:`mult_latency` advances earlier.
      - ``psum_out`` (``psum_out_shape``, registered).
      - ``w_data`` (``signed(weight.bits)``), ``w_we`` (2 bits, one per bank): weight write; it
        takes effect at the end of the cycle whether or not ``en`` is high (the array's loader
        only writes a bank the PE no longer reads, see :class:`hw.array.gemm_engine.GemmEngine`).

    Attributes: :attr:`mult_latency` (``cfg.hw.pe_mult_latency``) and :attr:`latency`
    (1 + mult_latency) advances from ``x`` to ``psum_out``; one MAC per advance.
    """

    def __init__(self, cfg: Config, psum_in_shape, psum_out_shape):
        self._cfg = cfg
        self.psum_in_shape = Shape.cast(psum_in_shape)
        self.psum_out_shape = Shape.cast(psum_out_shape)
        self.mult_latency = cfg.hw.pe_mult_latency
        self.latency = 1 + self.mult_latency
        super().__init__({
            "en": In(1),
            "x": In(signed(cfg.num.act.bits)),
            "bank": In(1),
            "psum_in": In(self.psum_in_shape),
            "psum_out": Out(self.psum_out_shape),
            "w_data": In(signed(cfg.num.weight.bits)),
            "w_we": In(2),
        })

    def elaborate(self, platform):
        m = Module()
        wb = self._cfg.num.weight.bits
        w = [Signal(signed(wb), name=f"w{b}") for b in range(2)]
        for b in range(2):
            with m.If(self.w_we[b]):
                m.d.sync += w[b].eq(self.w_data)
        m.submodules.mult = mult = Multiplier(
            self.x.shape(), signed(wb), **PE_MULT_REGISTERS, target=self._cfg.hw.dsp_target)
        assert mult.latency == self.mult_latency
        m.d.comb += [mult.a.eq(self.x), mult.b.eq(Mux(self.bank, w[1], w[0])),
                     mult.en.eq(self.en)]
        with m.If(self.en):
            m.d.sync += self.psum_out.eq(self.psum_in + mult.p)
        return m
