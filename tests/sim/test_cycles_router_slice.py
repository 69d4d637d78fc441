"""sliced_router_times (sim/cycles/moe.py), the top level's gate GEMM -> slice -> router timing,
against the RTL: a StreamSlice in front of the Router and one after it (as hw/top/top.py wires
them) in pysim, tokens offered back to back like the gate GEMM's epilogue does."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring

from hw.mem.stream_slice import StreamSlice
from hw.moe.router import Router
from sim.config import get_config
from sim.cycles.moe import sliced_router_times
from host.pysim import run_pysim, stream_recv, stream_send


class _SlicedRouter(wiring.Component):
    def __init__(self, cfg):
        self.router = Router(cfg)
        self.s_in = StreamSlice(self.router.in_layout)
        self.s_out = StreamSlice(self.router.out_layout)
        super().__init__({"i": wiring.In(stream.Signature(self.router.in_layout)),
                          "o": wiring.Out(stream.Signature(self.router.out_layout))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.s_in, m.submodules.router, m.submodules.s_out = (
            self.s_in, self.router, self.s_out)
        wiring.connect(m, wiring.flipped(self.i), self.s_in.i)
        wiring.connect(m, self.s_in.o, self.router.i)
        wiring.connect(m, self.router.o, self.s_out.i)
        wiring.connect(m, self.s_out.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("name", ["tiny", "m3vit-tiny-cityscapes"])
def test_sliced_router_timing_matches_rtl(name):
    cfg = get_config(name)
    T = 12
    rng = random.Random(1)
    a = cfg.num.act.bits
    toks = [{"logits": [rng.randrange(-(1 << (a - 1)), 1 << (a - 1))
                        for _ in range(cfg.model.experts)],
             "token": t, "last": int(t == T - 1)} for t in range(T)]
    dut = _SlicedRouter(cfg)
    s_acc, r_acc, outs = [], [], []

    async def send(ctx):
        await stream_send(ctx, dut.i, toks, accepted_cycles=s_acc)

    async def watch_router(ctx):
        edge = 0
        while len(r_acc) < T:
            if ctx.get(dut.router.i.valid) and ctx.get(dut.router.i.ready):
                r_acc.append(edge + 1)         # the harness numbers edges from 1
            await ctx.tick()
            edge += 1

    async def recv(ctx):
        await stream_recv(ctx, dut.o, T, transfer_cycles=outs)

    run_pysim(dut, [send, watch_router, recv], deadline_cycles=200 * T)
    # every token is offered from the first edge on (edge 1, the harness' numbering)
    m_s, m_r, m_o = sliced_router_times(cfg, [1] * T)
    assert s_acc == m_s
    assert r_acc == m_r
    # the model's outputs are the router's; the output slice adds its one cycle
    assert [o - 1 for o in outs] == m_o
