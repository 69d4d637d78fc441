"""The ECP5 buffer bank (hw.bram_target "ecp5": DP16KD, no collision logic) returns undefined
data for a read of a word whose lanes are written as it is sampled (a read requested in the
cycle the write is requested: both pass one register first); the generic bank returns
the old data. A frame must not depend on either: here the tiny frame runs in pysim with a bank
that *poisons* every lane read during a same-address write (inverts it) and is still bit-exact
against the golden model, and the poisoning is shown to fire in a direct test.

The poisoned bank is the generic one plus a collision detector at the block RAM's sampling
cycle (registered read address == write address, per written lane) whose mask travels with the
read to the output register. Marked slow: one tiny pysim frame (~3 min).
"""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Cat, Mux, Signal
from amaranth.sim import Simulator

from hw.top.buffers import BufferBank
from hw.top.geometry import TopGeometry
from host.run import run_frame
from sim.config import get_config
from tests.harness.seeds import seed  # noqa: F401
from tests.system.frames import frame_case, tiny


_generic_memory = BufferBank._generic_memory


def _poisoned_memory(self, m, i, depth, raddr, waddr, wdata, wen):
    """``BufferBank._generic_memory`` with every lane read in a write collision inverted."""
    geo, a = self.geo, self.geo.cfg.num.act.bits
    data = _generic_memory(self, m, i, depth, raddr, waddr, wdata, wen)
    # the address register's content in the cycle the memory samples it, against the write
    # of that cycle; the mask then waits one cycle more, for the output register
    read_addr = Signal(range(depth), name=f"mem{i}_poison_addr")
    hit = Signal(geo.G, name=f"mem{i}_collision")
    hit_out = Signal(geo.G, name=f"mem{i}_collision_out")
    m.d.sync += [read_addr.eq(raddr), hit.eq(Mux(waddr == read_addr, wen, 0)), hit_out.eq(hit)]
    return data ^ Cat(hit_out[g].replicate(a) for g in range(geo.G))


def _install(monkeypatch):
    monkeypatch.setattr(BufferBank, "_generic_memory", _poisoned_memory)


def test_poison_fires_on_a_collision(monkeypatch):
    """The detector works: a read of the word written in the same cycle comes back inverted in
    the written lanes (else the frame test below could not fail)."""
    _install(monkeypatch)
    geo = TopGeometry.of(get_config("tiny"))
    a = geo.cfg.num.act.bits
    bank = BufferBank(geo, 1, 1)
    rd, wr = bank.rd[0], bank.wr[0]
    got = []

    async def bench(ctx):
        ctx.set(wr.en, 1), ctx.set(wr.mem, 0), ctx.set(wr.addr, 5), ctx.set(wr.mask, -1)
        ctx.set(wr.data, 0)
        await ctx.tick()                         # word 5 = 0
        ctx.set(wr.en, 0)
        await ctx.tick()                         # word 5 = 0 lands (the write register)
        ctx.set(rd.en, 1), ctx.set(rd.mem, 0), ctx.set(rd.addr, 5)
        ctx.set(wr.en, 1), ctx.set(wr.mask, 1), ctx.set(wr.data, 7)
        await ctx.tick()                         # read and write requested together: both
        ctx.set(rd.en, 0), ctx.set(wr.en, 0)     # registers sample
        # the block samples 5 while lane 0 is written; the data leaves latency cycles after
        # the request
        await ctx.tick().repeat(BufferBank.latency - 1)
        got.append(ctx.get(rd.data))

    sim = Simulator(bank)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == [(1 << a) - 1], got            # lane 0 inverted (old 0), the others 0


@pytest.mark.slow
def test_tiny_frame_does_not_read_colliding_words(monkeypatch, seed):
    _install(monkeypatch)
    case = frame_case(tiny(), seed, 0)
    res = run_frame(case["cfg"], case["qparams"], case["image_q"], 0, sim="pysim",
                    throttle_seed=seed)
    bad = np.argwhere(res.tokens != case["want"])
    assert not len(bad), f"{len(bad)} values differ, first at {bad[0]} (seed={seed})"
