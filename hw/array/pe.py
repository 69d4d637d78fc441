"""One multiply-accumulate processing element of the weight-stationary PE array.

The PE holds two weights (bank 0 and bank 1). Each cycle it is enabled it computes

    psum_out <= psum_in + x * w[bank]

where ``bank`` travels with the activation, so the array switches from one weight tile to the
next exactly when the first activation of the new tile reaches this PE, with no global swap step
and no bubble: the other bank is written (``w_we``) while this one computes.

Latency 1 cycle (advance), throughput 1 MAC per cycle. The multiply is ``act.bits x weight.bits``
signed (16 x 16 by default): one ECP5 MULT18X18D / one DSP48E2.

``psum_in_shape`` / ``psum_out_shape`` are chosen by the array so every partial sum is exactly as
wide as its bound needs (see :mod:`hw.array.pe_array`); the assignment cannot truncate a valid value.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

__all__ = ["PE"]


class PE(wiring.Component):
    """Weight-stationary MAC PE with a double-buffered weight: ``psum_out = psum_in + x * w``.

    Parameters
    ----------
    cfg : Config
        Operand formats (``num.act``, ``num.weight``).
    psum_in_shape, psum_out_shape : shape
        Widths of the partial sum entering from the row above and leaving to the row below.

    Ports:
      - ``en``: advance (the whole array shares one clock enable).
      - ``x`` (``signed(act.bits)``), ``bank`` (1): the activation and the weight bank it uses.
      - ``psum_in`` (``psum_in_shape``), ``psum_out`` (``psum_out_shape``, registered).
      - ``w_data`` (``signed(weight.bits)``), ``w_we`` (2 bits, one per bank): weight write; it
        takes effect at the end of the cycle whether or not ``en`` is high (the array's loader
        only writes a bank the PE no longer reads, see :class:`hw.array.gemm_engine.GemmEngine`).

    Latency :attr:`latency` = 1 advance from ``x`` / ``psum_in`` to ``psum_out``; one MAC per
    advance.
    """

    latency = 1

    def __init__(self, cfg: Config, psum_in_shape, psum_out_shape):
        self._cfg = cfg
        self.psum_in_shape = Shape.cast(psum_in_shape)
        self.psum_out_shape = Shape.cast(psum_out_shape)
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
        with m.If(self.en):
            m.d.sync += self.psum_out.eq(self.psum_in + self.x * Mux(self.bank, w[1], w[0]))
        return m
