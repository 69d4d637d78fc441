"""Read DMA: splits a transfer command into bursts on the memory bus's request channel.

``ReadDma(cfg)`` takes commands ``{addr, beats}`` (a byte address, beat-aligned, and a length in
beats of ``cfg.hw.mem_bytes_per_cycle`` bytes, any size up to ``2^len_bits - 1``) and issues
them as consecutive read requests of at most ``cfg.hw.mem_max_burst`` beats on ``rd_req``
(:mod:`hw.mem.bus`). The read data does not pass through the DMA: the memory returns bursts
complete and in request order, so the consumer simply counts beats on ``rd_data`` (it knows
what it asked for). The DMA keeps no limit of its own on outstanding bursts; the memory's
``rd_req.ready`` does (see :class:`hw.mem.onchip_memory.OnChipMemory`).

Ports: ``cmd`` In stream :func:`dma_cmd_layout`; ``rd_req`` Out stream
(:func:`hw.mem.bus.req_layout`); ``busy`` Out(1) (a command is being split).

Timing: a command is accepted when the DMA is idle; its first burst request is valid the cycle
after, then one request per cycle while ``rd_req.ready`` is high, and the next command is accepted
on the edge of the current command's last request (no idle cycle between commands). So with a
memory that accepts one request per cycle, a command of B beats occupies the request channel for
ceil(B / mem_max_burst) cycles, far less than the B cycles its data takes.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.mem.bus import beat_bytes, check_bus_config, req_layout

__all__ = ["ReadDma", "dma_cmd_layout"]


def dma_cmd_layout(cfg: Config, len_bits: int | None = None) -> data.StructLayout:
    len_bits = cfg.hw.mem_addr_bits if len_bits is None else len_bits
    return data.StructLayout({"addr": unsigned(cfg.hw.mem_addr_bits), "beats": unsigned(len_bits)})


class ReadDma(wiring.Component):
    """Command -> burst request splitter (see the module docstring)."""

    def __init__(self, cfg: Config, len_bits: int | None = None):
        check_bus_config(cfg)
        self.cfg = cfg
        self.cmd_layout = dma_cmd_layout(cfg, len_bits)
        super().__init__({
            "cmd": In(stream.Signature(self.cmd_layout)),
            "rd_req": Out(stream.Signature(req_layout(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        B = cfg.hw.mem_max_burst
        W = beat_bytes(cfg)
        addr = Signal(unsigned(cfg.hw.mem_addr_bits))
        left = Signal.like(self.cmd.payload.beats)
        act = Signal()
        # The request's length and "last request" are registers, kept with ``left``: computed
        # from it, the wide compare ``left <= B`` ran into the command handshake and every
        # register's enable (ULX3S estimate 11.8 ns). After a full burst, left - B <= B is
        # left <= 2B, a compare on the register alone.
        burst = Signal(range(B + 1))                # min(left, B)
        last_burst = Signal()                       # left <= B
        req = self.rd_req
        m.d.comb += [req.valid.eq(act), req.payload.addr.eq(addr), req.payload.beats.eq(burst),
                     self.busy.eq(act),
                     self.cmd.ready.eq(~act | (req.ready & last_burst))]
        with m.If(req.valid & req.ready):
            next_last = left <= 2 * B               # left - B <= B, for a full burst now
            m.d.sync += [addr.eq(addr + burst * W), left.eq(left - burst),
                         last_burst.eq(next_last), burst.eq(Mux(next_last, left - B, B))]
            with m.If(last_burst):
                m.d.sync += act.eq(0)
        with m.If(self.cmd.valid & self.cmd.ready):
            beats = self.cmd.payload.beats
            one_burst = beats <= B
            m.d.sync += [addr.eq(self.cmd.payload.addr), left.eq(beats), act.eq(beats != 0),
                         last_burst.eq(one_burst), burst.eq(Mux(one_burst, beats, B))]
        return m
