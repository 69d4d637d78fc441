"""CreditFIFO: a synchronous FIFO for a writer that reserves room before it writes (credits).

The ports of ``amaranth.lib.fifo.SyncFIFO`` without ``w_rdy``: the writer never writes into a
full queue (the :class:`~hw.top.chunk_reader.ChunkReader` requests a burst only when the queue
has room for it beside every beat in flight), so the write enable is ``w_en`` itself, and
``r_rdy`` is a register (``level != 0`` kept beside the level). In ``SyncFIFO`` both flags are
compares of the level count, which sat in front of the read pointer, the level's own update
and the LUT RAM's write enable: the LayerNorm parameter readers' level -> r_rdy -> pop paths
were routed at 12.2-13.2 ns on the ULX3S.

Storage: an Amaranth ``Memory`` with an asynchronous read port (LUT RAM on the ECP5), as in
``SyncFIFO``. Latency: a beat written at edge t is readable from t + 1. Throughput: one write
and one read per cycle. A write into a full queue is the writer's bug; simulations flag it
through ``overflow`` (sticky), which hardware may leave unconnected.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["CreditFIFO"]


class CreditFIFO(wiring.Component):
    """``depth`` entries of ``width`` bits; ``r_rdy`` registered, no ``w_rdy`` (see above)."""

    def __init__(self, width: int, depth: int):
        if width < 1 or depth < 2:
            self._MustUse__silence = True   # no "created but never used" warning as well
            raise ValueError(f"CreditFIFO: width must be >= 1 and depth >= 2, got {width}, "
                             f"{depth}")
        self.width, self.depth = int(width), int(depth)
        super().__init__({
            "w_en": In(1), "w_data": In(self.width),
            "r_en": In(1), "r_data": Out(self.width), "r_rdy": Out(1),
            "level": Out(range(self.depth + 1)),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        D = self.depth
        m.submodules.storage = storage = Memory(shape=self.width, depth=D, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce = Signal(range(D))
        consume = Signal(range(D))

        def incr(p):
            return p + 1 if D & (D - 1) == 0 else Mux(p == D - 1, 0, p + 1)

        do_read = self.r_en & self.r_rdy
        m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(self.w_data),
                     w_port.en.eq(self.w_en), r_port.addr.eq(consume),
                     self.r_data.eq(r_port.data)]
        with m.If(self.w_en):
            m.d.sync += produce.eq(incr(produce))
        with m.If(do_read):
            m.d.sync += consume.eq(incr(consume))
        with m.If(self.w_en & ~do_read):
            m.d.sync += self.level.eq(self.level + 1)
        with m.If(do_read & ~self.w_en):
            m.d.sync += self.level.eq(self.level - 1)
        # not empty after the edge: a write, or a read that does not take the last entry
        m.d.sync += self.r_rdy.eq(self.w_en | Mux(do_read, self.level != 1, self.r_rdy))
        with m.If(self.w_en & ~do_read & (self.level == D)):
            m.d.sync += self.overflow.eq(1)
        return m
