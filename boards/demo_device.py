"""DemoDevice: one real accelerator block (Requantize) behind registers, plus a scratch memory.

The smallest design that exercises the whole board flow (host driver -> UART -> HostBridge ->
registers and memory -> a bit-exact block -> back), for the CI board build and for the driver
tests that must not wait for a whole frame. It has the same ports as
:class:`hw.top.top_with_memory.TopWithMemory`, so :class:`boards.system.BridgedSystem` and the host
driver treat both alike:

- ``csr``: In :func:`demo_csr_signature` (word-addressed, one cycle read latency, register
  width ``csr_bits(cfg)`` as the top level's);
- ``host_mode``: In 1 (stored, readable in STATUS bit 2; the scratch memory always belongs to
  the host here);
- ``host_rd`` / ``host_wr``: In ``MemReadSignature`` / ``MemWriteSignature``: a
  :class:`hw.mem.onchip_memory.OnChipMemory` of ``scratch_bytes`` bytes at address 0;
- ``busy`` / ``done`` / ``error``: Out 1 (``error`` = the scratch memory's sticky address error).

Register map (:data:`DEMO_REGISTERS`, word indices; ``A = ceil(acc_bits / csr_bits)`` words per
accumulator, least significant word first; ``L = lanes``):

- ``ID`` (0, read): :data:`DEMO_ID`; ``CTRL`` (1, write): bit 0 start, bit 1 clear done;
- ``STATUS`` (3, read): bit 0 busy, bit 1 done, bit 2 host_mode, bit 3 memory error;
- ``LANES`` (4, read): ``L``; ``CYCLES`` (5, read): cycles from the last start to its done;
- ``ACC`` (8 .. 8 + L*A - 1, read/write): lane ``l`` word ``w`` at ``8 + l*A + w``;
- ``OUT`` (8 + L*A .. 8 + L*A + L - 1, read): lane ``l``'s result, sign-extended.

CTRL.start sends the accumulators as one beat into ``Requantize(cfg, lanes)``; the result
(``sim.fixed.requantize(acc, acc_frac, act)`` per lane) lands in OUT and ``done`` rises
``Requantize.latency + 1`` cycles after the start write. Throughput: one beat per start.
"""
from __future__ import annotations

import math

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.mem.bus import MemReadSignature, MemWriteSignature
from hw.mem.onchip_memory import OnChipMemory
from hw.array.requantize import Requantize
from hw.top.csr import csr_bits
from sim.config import Config

__all__ = ["DemoDevice", "DEMO_ID", "demo_csr_signature", "demo_registers", "acc_words",
           "default_scratch_bytes"]

DEMO_ID = 0xED6E_DE01        # "edge-moe demo", register map version 1


def acc_words(cfg: Config) -> int:
    return math.ceil(cfg.num.acc_bits / csr_bits(cfg))


def demo_registers(cfg: Config, lanes: int) -> dict:
    """Register name -> word index (``ACC`` / ``OUT`` are the first word of their arrays)."""
    a = acc_words(cfg)
    return {"ID": 0, "CTRL": 1, "STATUS": 3, "LANES": 4, "CYCLES": 5, "ACC": 8,
            "OUT": 8 + lanes * a, "END": 8 + lanes * a + lanes}


def default_scratch_bytes(cfg: Config, lanes: int) -> int:
    """Four full bursts per lane: enough for the memory tests, a few block RAMs on a board."""
    return 4 * lanes * cfg.hw.mem_max_burst * cfg.hw.mem_bytes_per_cycle


def demo_csr_signature(cfg: Config, lanes: int) -> wiring.Signature:
    w = csr_bits(cfg)
    return wiring.Signature({"addr": Out(range(demo_registers(cfg, lanes)["END"])),
                             "wdata": Out(w), "we": Out(1), "rdata": In(w)})


class DemoDevice(wiring.Component):
    """Requantize on registers + scratch memory (see the module docstring)."""

    def __init__(self, cfg: Config, lanes: int | None = None, scratch_bytes: int | None = None):
        self.cfg = cfg
        self.lanes = cfg.hw.array_cols if lanes is None else lanes
        self.scratch_bytes = scratch_bytes or default_scratch_bytes(cfg, self.lanes)
        self.regs = demo_registers(cfg, self.lanes)
        super().__init__({
            "csr": In(demo_csr_signature(cfg, self.lanes)),
            "host_mode": In(1),
            "host_rd": In(MemReadSignature(cfg)),
            "host_wr": In(MemWriteSignature(cfg)),
            "busy": Out(1), "done": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, L, R = self.cfg, self.lanes, self.regs
        w = csr_bits(cfg)
        A = acc_words(cfg)
        m.submodules.rq = rq = Requantize(cfg, lanes=L)
        m.submodules.mem = mem = OnChipMemory(cfg, b"", size=self.scratch_bytes)
        wiring.connect(m, wiring.flipped(self.host_rd), mem.rd)
        wiring.connect(m, wiring.flipped(self.host_wr), mem.wr)

        acc = [Signal(w, name=f"acc{i}") for i in range(L * A)]
        out = [Signal(w, name=f"out{i}") for i in range(L)]
        busy, done, host = Signal(), Signal(), Signal()
        cycles = Signal(w)
        b = self.csr

        status = busy | (done << 1) | (host << 2) | (mem.error << 3)
        table = [0] * R["END"]
        table[R["ID"]], table[R["STATUS"]], table[R["LANES"]] = DEMO_ID, status, L
        table[R["CYCLES"]] = cycles
        for i, s in enumerate(acc):
            table[R["ACC"] + i] = s
        for i, s in enumerate(out):
            table[R["OUT"] + i] = s
        m.d.sync += b.rdata.eq(Array(table)[b.addr])
        m.d.sync += host.eq(self.host_mode)
        with m.If(b.we):
            for i, s in enumerate(acc):
                with m.If(b.addr == R["ACC"] + i):
                    m.d.sync += s.eq(b.wdata)
        ctrl = b.we & (b.addr == R["CTRL"])
        start = ctrl & b.wdata[0] & ~busy

        # accumulator words -> one Requantize beat (lane l = words l*A .. l*A + A - 1)
        for lane in range(L):
            words = acc[lane * A:(lane + 1) * A]
            whole = words[0]
            for k, word in enumerate(words[1:], 1):
                whole = whole | (word << (w * k))
            m.d.comb += rq.i.payload[lane].eq(whole[:cfg.num.acc_bits].as_signed())
        with m.If(start):
            m.d.sync += [busy.eq(1), done.eq(0), cycles.eq(0), rq.i.valid.eq(1)]
        with m.Elif(ctrl & b.wdata[1]):
            m.d.sync += done.eq(0)
        with m.If(rq.i.valid & rq.i.ready):
            m.d.sync += rq.i.valid.eq(0)
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += rq.o.ready.eq(1)
        with m.If(rq.o.valid):
            m.d.sync += [busy.eq(0), done.eq(1)]
            for lane in range(L):
                m.d.sync += out[lane].eq(rq.o.payload[lane].as_signed())
        m.d.comb += [self.busy.eq(busy), self.done.eq(done), self.error.eq(mem.error)]
        return m
