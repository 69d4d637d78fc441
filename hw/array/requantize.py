"""Requantize: narrow a vector of accumulators to activations (round half up, then saturate).

``Requantize(cfg, lanes=None)`` takes a stream of ``lanes`` signed accumulators
(``cfg.num.acc_bits`` wide, ``cfg.num.acc_frac`` fraction bits) and returns a stream of ``lanes``
activations in ``cfg.num.act``, each computed exactly as the golden model does::

    out[k] = sim.fixed.requantize(in[k], cfg.num.acc_frac, cfg.num.act)

i.e. add half an output LSB, arithmetic shift right by ``acc_frac - act.frac_bits`` (floor), and
clamp to ``[act.min_int, act.max_int]``. The arithmetic comes from the shared generators
:func:`sim.fixed.hw_requantize` so the rounding rule cannot drift from the golden model.

Ports (``amaranth.lib.stream``):

- ``i``: ``In(stream.Signature(ArrayLayout(signed(acc_bits), lanes)))``
- ``o``: ``Out(stream.Signature(ArrayLayout(signed(act.bits), lanes)))``

Timing:

- **Latency 1 cycle**: a beat accepted on a clock edge appears on ``o`` (``o.valid`` high) right
  after that edge.
- **Throughput 1 beat per cycle** with ``o.ready`` held high; full back-pressure support.
- One register stage with the usual pipeline enable ``i.ready = o.ready | ~o.valid``: the stage
  loads whenever it is empty or its beat is being taken. ``i.ready`` is therefore a combinational
  function of ``o.ready`` (no register on the ready path); put a FIFO / skid buffer in front if a
  long ready chain ever limits Fmax.
- Stream rules: ``o.valid`` does not depend on ``o.ready``; ``o.payload`` is held stable while
  ``o.valid & ~o.ready``.

Resources: ``lanes`` adders of ``acc_bits + 1`` bits and two comparators per lane, plus
``lanes * act.bits + 1`` flip-flops. No multipliers.
"""
from __future__ import annotations

from amaranth.hdl import Module, Shape, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.fixed import QFormat, hw_requantize

__all__ = ["Requantize", "qformat_shape"]


def qformat_shape(fmt: QFormat) -> Shape:
    """Amaranth shape of one value in ``fmt`` (signed or unsigned, ``fmt.bits`` wide)."""
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


class Requantize(wiring.Component):
    """Pipelined accumulator -> activation narrowing (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Source of every width: ``cfg.num.acc_bits``, ``cfg.num.acc_frac``, ``cfg.num.act``.
    lanes : int, optional
        Values per beat; defaults to ``cfg.hw.array_cols`` (one PE-array output row).

    Ports
    -----
    i : In(stream(ArrayLayout(signed(acc_bits), lanes)))
        One vector of accumulators per beat.
    o : Out(stream(ArrayLayout(signed(act.bits), lanes)))
        The narrowed vectors in input order.

    Attributes
    ----------
    latency : int
        Cycles from acceptance on ``i`` to presentation on ``o`` (1); throughput one beat per
        cycle.
    """

    latency = 1

    def __init__(self, cfg: Config, lanes: int | None = None):
        self.cfg = cfg
        self.lanes = cfg.hw.array_cols if lanes is None else int(lanes)
        if self.lanes < 1:
            raise ValueError(f"Requantize: lanes must be >= 1, got {lanes}")
        num = cfg.num
        self.acc_shape = signed(num.acc_bits)
        self.act_shape = qformat_shape(num.act)
        self.in_layout = data.ArrayLayout(self.acc_shape, self.lanes)
        self.out_layout = data.ArrayLayout(self.act_shape, self.lanes)
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        num = self.cfg.num

        # Pipeline enable: the output register is empty or its beat leaves on this edge.
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        with m.If(self.i.ready):
            m.d.sync += self.o.valid.eq(self.i.valid)
            with m.If(self.i.valid):
                for k in range(self.lanes):
                    m.d.sync += self.o.payload[k].eq(
                        hw_requantize(self.i.payload[k], num.acc_frac, num.act))
        return m
