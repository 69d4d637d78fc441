"""BusThrottle: seeded random valid gaps and back-pressure on every channel of the memory bus.

A simulation aid (hw/top/top_with_memory.py puts it between the accelerator and the DRAM model): the
system tests use it to exercise every stall path of the top level -- read requests, read data,
write requests, write data and write responses each pass only in cycles where a pseudo-random
``go`` bit of that channel is set (probability ``pass_sixteenths / 16``). The stream rules hold
on both sides: ``ready`` towards a producer may drop at random, but once a beat is offered to a
consumer it stays offered until taken.

The LFSR (32-bit Galois, taps 32, 22, 2, 1) loads ``seed | 1`` while ``load`` is high, so one
Verilog build serves every seed. ``enable`` low makes the throttle a wire. Latency 0 (every
path is combinational); throughput ``pass_sixteenths / 16`` beats per cycle per channel.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.mem.bus import MemReadSignature, MemWriteSignature

__all__ = ["BusThrottle"]

_TAPS = 0x8020_0003


class BusThrottle(wiring.Component):
    def __init__(self, cfg: Config, pass_sixteenths: int = 11):
        if not 1 <= pass_sixteenths <= 16:
            raise ValueError("pass_sixteenths must be in [1, 16]")
        self.cfg, self.pass16 = cfg, pass_sixteenths
        super().__init__({
            "up_rd": In(MemReadSignature(cfg)), "up_wr": In(MemWriteSignature(cfg)),
            "down_rd": Out(MemReadSignature(cfg)), "down_wr": Out(MemWriteSignature(cfg)),
            "enable": In(1), "load": In(1), "seed": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        lfsr = Signal(32, init=1)
        with m.If(self.load):
            m.d.sync += lfsr.eq(self.seed | 1)
        with m.Else():
            m.d.sync += lfsr.eq((lfsr >> 1) ^ Mux(lfsr[0], _TAPS, 0))

        chans = [(self.up_rd.rd_req, self.down_rd.rd_req),      # producer -> consumer
                 (self.down_rd.rd_data, self.up_rd.rd_data),
                 (self.up_wr.wr_req, self.down_wr.wr_req),
                 (self.up_wr.wr_data, self.down_wr.wr_data),
                 (self.down_wr.wr_resp, self.up_wr.wr_resp)]
        for i, (src, dst) in enumerate(chans):
            go = Signal(name=f"go{i}")
            offer = Signal(name=f"offer{i}")
            pass_now = 1 if self.pass16 == 16 else lfsr[4 * i:4 * i + 4] < self.pass16
            m.d.comb += go.eq(~self.enable | pass_now)
            pas = offer | go
            m.d.comb += [dst.valid.eq(src.valid & pas), dst.payload.eq(src.payload),
                         src.ready.eq(dst.ready & pas)]
            with m.If(dst.valid & ~dst.ready):
                m.d.sync += offer.eq(1)
            with m.Elif(dst.valid & dst.ready):
                m.d.sync += offer.eq(0)
        return m
