"""CreditFIFO (hw/mem/credit_fifo.py) in pysim against a Python deque.

A writer that keeps within the depth (random writes whenever the model has room) and a reader
with random read enables: every cycle ``r_rdy`` is "the deque is not empty" and ``level`` its
length, the head is the deque's head, and the data comes out in order; power-of-two and other
depths. Then a write into a full queue sets the sticky ``overflow`` flag.
"""
from __future__ import annotations

import random
from collections import deque

import pytest
from amaranth.sim import Simulator

from hw.mem.credit_fifo import CreditFIFO
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


@pytest.mark.parametrize("depth", [2, 5, 8])
def test_credit_fifo_matches_a_queue(depth, seed):
    rng = random.Random(seed)
    dut = CreditFIFO(12, depth)
    model: deque[int] = deque()
    out: list[int] = []
    sent: list[int] = []

    async def bench(ctx):
        for cycle in range(600):
            # the reader's enable, then the writer's (room counted after this cycle's read)
            r_en = rng.random() < 0.5
            assert ctx.get(dut.r_rdy) == (len(model) > 0), f"cycle {cycle} (seed={seed})"
            assert ctx.get(dut.level) == len(model), f"cycle {cycle} (seed={seed})"
            pop = r_en and len(model) > 0
            if pop:
                assert ctx.get(dut.r_data) == model[0], f"cycle {cycle} (seed={seed})"
            room = depth - len(model) + (1 if pop else 0)
            w_en = room > 0 and rng.random() < 0.6
            word = rng.randrange(1 << 12)
            ctx.set(dut.r_en, r_en)
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_data, word)
            await ctx.tick()
            if pop:
                out.append(model.popleft())
            if w_en:
                model.append(word)
                sent.append(word)
        assert not ctx.get(dut.overflow)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert out == sent[:len(out)] and len(out) > 100, f"seed={seed}"


def test_credit_fifo_flags_overflow():
    dut = CreditFIFO(4, 3)

    async def bench(ctx):
        ctx.set(dut.w_en, 1)
        for k in range(3):
            ctx.set(dut.w_data, k)
            await ctx.tick()
        assert ctx.get(dut.level) == 3 and not ctx.get(dut.overflow)
        await ctx.tick()                      # a fourth write into the full queue
        assert ctx.get(dut.overflow)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_credit_fifo_rejects_bad_sizes():
    with pytest.raises(ValueError, match="depth"):
        CreditFIFO(8, 1)
