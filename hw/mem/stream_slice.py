"""StreamSlice: a register slice (two-entry skid buffer) for an ``amaranth.lib.stream``.

Both directions are registered: ``o.valid`` / ``o.payload`` come from the main register and
``i.ready`` is "the skid register is empty", so no combinational path crosses the slice. That is
what it is for: cutting a long handshake chain between units that sit far apart on the FPGA (the
top level puts one on every memory read master's request, between the master's credit logic and
the read arbiter's round-robin pick).

Latency: 1 cycle (a beat taken at edge t is offered from t + 1). Throughput: one beat per cycle;
when ``o`` stalls, one more beat is taken into the skid register, then ``i.ready`` drops.

``copies`` > 1 (wide payloads: the sequencer's 512-bit descriptor): the payload is cut into that
many slices, each with its own copy of the valid and skid bits (:mod:`hw.fabric.replica`), so
no single net enables and selects every payload bit (1,101 loads in the ULX3S build). Same
behaviour, cycle for cycle. ``ready_copies`` = n adds ``i_ready_copies``: n bits, each equal
to ``i.ready`` in every cycle, from kept copies of the skid bit (a producer that spreads its
use of ready over the die, such as the DRAM model's block RAM enables).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.fabric.replica import replicas

__all__ = ["StreamSlice"]


class StreamSlice(wiring.Component):
    def __init__(self, shape, *, copies: int = 1, fanout_target: str = "generic",
                 ready_copies: int = 0):
        self.shape = shape
        self.copies, self.fanout_target = int(copies), fanout_target
        self.ready_copies = int(ready_copies)
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            **({"i_ready_copies": Out(self.ready_copies)} if self.ready_copies else {}),
        })

    def elaborate(self, platform):
        m = Module()
        skid_v = Signal()
        skid = Signal(self.shape)
        m.d.comb += self.i.ready.eq(~skid_v)
        take_in = self.i.valid & self.i.ready
        adv = ~self.o.valid | self.o.ready
        with m.If(adv):
            with m.If(skid_v):
                m.d.sync += [self.o.valid.eq(1), skid_v.eq(0)]
            with m.Else():
                m.d.sync += self.o.valid.eq(take_in)
        with m.Elif(take_in):
            m.d.sync += skid_v.eq(1)
        skid_next = Mux(adv, 0, skid_v | take_in)
        if self.ready_copies:
            # i.ready again, from kept copies of the skid bit (hw/fabric/replica)
            skid_c = replicas(m, skid_next, self.ready_copies, self.fanout_target, "ready_skid")
            m.d.comb += self.i_ready_copies.eq(~Cat(*skid_c))
        # the payload registers, in ``copies`` slices with their own valid / skid copies
        o_pay, i_pay, sk = (Value.cast(self.o.payload), Value.cast(self.i.payload),
                            Value.cast(skid))
        bits = len(o_pay)
        n = max(1, min(self.copies, bits))
        if n == 1:
            o_valid, skid_full = [self.o.valid], [skid_v]
        else:
            o_next = Mux(adv, skid_v | take_in, self.o.valid)
            o_valid = replicas(m, o_next, n, self.fanout_target, "o_valid")
            skid_full = replicas(m, skid_next, n, self.fanout_target, "skid_v")
        for k in range(n):
            lo, hi = k * bits // n, (k + 1) * bits // n
            with m.If(~o_valid[k] | self.o.ready):
                m.d.sync += o_pay[lo:hi].eq(Mux(skid_full[k], sk[lo:hi], i_pay[lo:hi]))
            # The skid register follows the input while it is empty: it is read only once
            # skid_v is set, which happens on an edge where it was empty and took this very
            # beat. Its enable is then one register bit, not "taken while o stalls" (that
            # enable, through the router's ready logic, was a 14 ns ULX3S estimate path).
            with m.If(~skid_full[k]):
                m.d.sync += sk[lo:hi].eq(i_pay[lo:hi])
        return m
