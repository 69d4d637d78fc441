"""StreamSlice: a register slice (two-entry skid buffer) for an ``amaranth.lib.stream``.

Both directions are registered: ``o.valid`` / ``o.payload`` come from the main register and
``i.ready`` is "the skid register is empty", so no combinational path crosses the slice. That is
what it is for: cutting a long handshake chain between units that sit far apart on the FPGA (the
top level puts one on every memory read master's request, between the master's credit logic and
the read arbiter's round-robin pick).

Latency: 1 cycle (a beat taken at edge t is offered from t + 1). Throughput: one beat per cycle;
when ``o`` stalls, one more beat is taken into the skid register, then ``i.ready`` drops.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamSlice"]


class StreamSlice(wiring.Component):
    def __init__(self, shape):
        self.shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        skid_v = Signal()
        skid = Signal(self.shape)
        m.d.comb += self.i.ready.eq(~skid_v)
        take_in = self.i.valid & self.i.ready
        with m.If(~self.o.valid | self.o.ready):
            with m.If(skid_v):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_v.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(take_in)]
        with m.Elif(take_in):
            m.d.sync += [skid.eq(self.i.payload), skid_v.eq(1)]
        return m
