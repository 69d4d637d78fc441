"""Beat unpacker: memory read beats (W bytes) -> rows of fixed-point values in their storage format.

``BeatUnpacker(cfg, values, fmt, lanes=None, rows=1)`` turns a stream of read-data beats
(:func:`hw.mem.bus.rdata_layout`) holding consecutive rows of ``values`` numbers, each stored
little-endian in ``fmt.storage_bytes`` bytes (the weight image's format), into a stream of rows:
``ArrayLayout(signed(fmt.bits), lanes)`` with the ``values`` numbers in lanes ``0 .. values-1``
and zeros above. A row is ``U = values * storage_bytes`` bytes; ``U`` and the beat size ``W`` must
divide each other:

- ``U >= W``: ``U / W`` beats are gathered into one row;
- ``U < W``: each beat yields ``W / U`` rows, one per cycle.

A transfer is ``rows`` rows long; bytes of its last beat beyond the last row (possible when
``W`` does not divide the transfer) are dropped, so the next transfer starts on a clean beat.

Timing: one output row per cycle at best (``U >= W``: one row per ``U / W`` input beats); the row
register is loaded on the edge that completes it and held under back-pressure. Latency 1 cycle
from the completing beat's accept edge to ``o.valid``.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.fixed import QFormat

from hw.mem.bus import beat_bytes, rdata_layout

__all__ = ["BeatUnpacker"]


class BeatUnpacker(wiring.Component):
    """Read beats -> value rows (see the module docstring)."""

    def __init__(self, cfg: Config, values: int, fmt: QFormat, lanes: int | None = None,
                 rows: int = 1):
        self.cfg = cfg
        self.values = values
        self.fmt = fmt
        self.lanes = values if lanes is None else lanes
        self.rows = rows
        self.W = beat_bytes(cfg)
        self.U = values * fmt.storage_bytes
        if max(self.U, self.W) % min(self.U, self.W):
            raise ValueError(f"BeatUnpacker: row of {self.U} bytes and {self.W}-byte beats do "
                             f"not divide each other")
        if self.lanes < values:
            raise ValueError("BeatUnpacker: fewer lanes than values")
        super().__init__({
            "i": In(stream.Signature(rdata_layout(cfg))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(fmt.bits), self.lanes))),
        })

    def _unpack(self, m, raw, out_row):
        sb, bits = self.fmt.storage_bytes, self.fmt.bits
        for v in range(self.values):
            m.d.sync += out_row[v].eq(raw[8 * sb * v: 8 * sb * v + bits].as_signed())
        for v in range(self.values, self.lanes):
            m.d.sync += out_row[v].eq(0)

    def elaborate(self, platform):
        m = Module()
        W, U = self.W, self.U
        o, i = self.o, self.i
        row = Signal(range(self.rows + 1))            # rows emitted in this transfer
        last_row = row == self.rows - 1
        with m.If(o.valid & o.ready):
            m.d.sync += o.valid.eq(0)
        free = ~o.valid | o.ready
        if U >= W:
            n = U // W
            gather = Signal(8 * U)
            part = Signal(range(n))
            m.d.comb += i.ready.eq(free)
            with m.If(i.valid & i.ready):
                # Place the beat at its lane of the row (part 0 lowest bytes).
                m.d.sync += part.eq(part + 1)
                for p in range(n):
                    with m.If(part == p):
                        m.d.sync += gather[8 * W * p: 8 * W * (p + 1)].eq(i.payload.data)
                with m.If(part == n - 1):
                    m.d.sync += [part.eq(0), o.valid.eq(1), row.eq(row + 1)]
                    whole = Signal(8 * U)
                    m.d.comb += whole.eq(gather)
                    m.d.comb += whole[8 * W * (n - 1):].eq(i.payload.data)
                    self._unpack(m, whole, o.payload)
                    with m.If(last_row):
                        m.d.sync += row.eq(0)
        else:
            n = W // U
            held = Signal(8 * W)
            have = Signal()
            sub = Signal(range(n))
            m.d.comb += i.ready.eq(~have)
            with m.If(i.valid & i.ready):
                m.d.sync += [held.eq(i.payload.data), have.eq(1), sub.eq(0)]
            with m.If(have & free):
                chunk = held.word_select(sub, 8 * U)
                self._unpack(m, chunk, o.payload)
                m.d.sync += [o.valid.eq(1), sub.eq(sub + 1), row.eq(row + 1)]
                with m.If((sub == n - 1) | last_row):
                    m.d.sync += [have.eq(0)]
                with m.If(last_row):
                    m.d.sync += row.eq(0)
        return m
