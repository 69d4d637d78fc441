"""PairQueue: a two-entry stream queue whose storage is written only by the producer.

The same handshakes as :class:`~hw.mem.stream_slice.StreamSlice`, cycle for cycle: ``i.ready``
is "fewer than two entries" and ``o.valid`` "at least one", both registers; a beat taken at
edge t is offered from t + 1; one beat per cycle. The difference is where the consumer's
``o.ready`` goes. In the slice it is the clock enable of every payload register (the main
register reloads when it is taken); here the two entries are written only on an input
handshake, and ``o.ready`` moves a read pointer and the two flags. So a late ready, such as an
epilogue's pipeline enable, reaches three flip-flops instead of every payload bit: the GEMM
engine's bias queue (C x 25 payload bits) had that ready on its enables, 4 LUT levels and a
~400-load net (ULX3S routed 10.9-11.4 ns, 37 endpoints).

The cost is a 2:1 mux on ``o.payload`` (the read pointer selects an entry), so ``o.payload``
is one LUT after flip-flops rather than a flip-flop; the pointer is kept in ``select_copies``
copies (:mod:`hw.fabric.replica`), each steering a share of the payload bits.

Latency: 1 cycle. Throughput: one beat per cycle.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.fabric.replica import replicas

__all__ = ["PairQueue"]


class PairQueue(wiring.Component):
    def __init__(self, shape, *, select_copies: int = 1, fanout_target: str = "generic"):
        if select_copies < 1:
            self._MustUse__silence = True   # no "created but never used" warning as well
            raise ValueError(f"PairQueue: select_copies must be >= 1, got {select_copies}")
        self.shape = shape
        self.select_copies, self.fanout_target = int(select_copies), fanout_target
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        entries = [Signal(self.shape, name=f"entry{k}") for k in (0, 1)]
        wp = Signal()                       # the entry the next input beat goes to
        rp = Signal()                       # the entry offered on o
        full = Signal()                     # two entries held
        push = self.i.valid & self.i.ready
        pop = self.o.valid & self.o.ready
        m.d.comb += self.i.ready.eq(~full)
        for k, e in enumerate(entries):
            with m.If(push & (wp == k)):
                m.d.sync += e.eq(self.i.payload)
        m.d.sync += [wp.eq(wp ^ push), rp.eq(rp ^ pop)]
        # held after the edge: 0, 1 or 2 as (o.valid, full)
        with m.If(push & ~pop):
            m.d.sync += [self.o.valid.eq(1), full.eq(self.o.valid)]
        with m.Elif(pop & ~push):
            m.d.sync += [self.o.valid.eq(full), full.eq(0)]
        # the read pointer in copies, each selecting a share of the payload bits
        o_pay = Value.cast(self.o.payload)
        e0, e1 = (Value.cast(e) for e in entries)
        bits = len(o_pay)
        n = max(1, min(self.select_copies, bits))
        sels = [rp] if n == 1 else replicas(m, rp ^ pop, n, self.fanout_target, "rp")
        for k in range(n):
            lo, hi = k * bits // n, (k + 1) * bits // n
            m.d.comb += o_pay[lo:hi].eq(Mux(sels[k], e1[lo:hi], e0[lo:hi]))
        return m
