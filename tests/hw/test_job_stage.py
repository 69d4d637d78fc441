"""JobStage (hw/top/job_stage.py): jobs pass in order and unchanged with random gaps on both
sides, each one cycle later than it was taken, and ``i.ready`` never follows ``o.ready`` within
a cycle (it is a register)."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import unsigned

from hw.top.job_stage import JobStage
from host.pysim import run_pysim, stream_recv, stream_send
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


@pytest.mark.parametrize("valid_prob, ready_prob", [(1.0, 1.0), (0.5, 0.5), (1.0, 0.3)])
def test_jobs_in_order_one_cycle_later(valid_prob, ready_prob, seed):
    rng = random.Random(seed)
    dut = JobStage(unsigned(20))
    jobs = [rng.getrandbits(20) for _ in range(100)]
    got, acc, tr = [], [], []

    async def send(ctx):
        await stream_send(ctx, dut.i, jobs, rng=random.Random(seed + 1), valid_prob=valid_prob,
                          accepted_cycles=acc)

    async def recv(ctx):
        await stream_recv(ctx, dut.o, len(jobs), rng=random.Random(seed + 2),
                          ready_prob=ready_prob, received=got, transfer_cycles=tr)

    run_pysim(dut, [send, recv], deadline_cycles=50 * len(jobs))
    assert got == jobs, f"[seed={seed}]"
    assert all(t - a >= 1 for t, a in zip(tr, acc))
    if ready_prob == 1.0:
        assert [t - a for t, a in zip(tr, acc)] == [1] * len(jobs)


def test_ready_is_registered():
    dut = JobStage(unsigned(8))

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 5)
        assert ctx.get(dut.i.ready) == 1           # empty
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.o.payload) == 5
        assert ctx.get(dut.i.ready) == 0           # held
        ctx.set(dut.o.ready, 1)                    # taken this cycle: ready stays low
        assert ctx.get(dut.i.ready) == 0
        await ctx.tick()
        assert ctx.get(dut.o.valid) == 0 and ctx.get(dut.i.ready) == 1

    run_pysim(dut, [bench], deadline_cycles=20)
