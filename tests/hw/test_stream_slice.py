"""StreamSlice (hw/mem/stream_slice.py): order, no loss, stream rules, latency 1, full rate, and
no combinational path through it (``i.ready`` / ``o.valid`` do not follow the other side within
a cycle). The order test runs the PairQueue (hw/mem/pair_queue.py) too."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import unsigned

from hw.mem.pair_queue import PairQueue
from hw.mem.stream_slice import StreamSlice
from host.pysim import run_pysim, stream_recv, stream_send
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


# copies: the payload in 1 or 3 slices with their own valid / skid copies (same behaviour);
# the PairQueue (hw/mem/pair_queue.py, the same handshakes) with its read pointer in 1 or 5
# copies goes through the same test
@pytest.mark.parametrize("make", [
    lambda: StreamSlice(unsigned(12)), lambda: StreamSlice(unsigned(12), copies=3),
    lambda: PairQueue(unsigned(12)), lambda: PairQueue(unsigned(12), select_copies=5)],
    ids=["slice", "slice-copies3", "pair", "pair-copies5"])
@pytest.mark.parametrize("valid_prob, ready_prob", [(1.0, 1.0), (0.5, 0.5), (1.0, 0.3),
                                                    (0.3, 1.0)])
def test_random_gaps_keep_order(valid_prob, ready_prob, make, seed):
    rng = random.Random(seed)
    dut = make()
    beats = [rng.getrandbits(12) for _ in range(200)]
    got = []

    async def send(ctx):
        await stream_send(ctx, dut.i, beats, rng=random.Random(seed + 1), valid_prob=valid_prob)

    async def recv(ctx):
        await stream_recv(ctx, dut.o, len(beats), rng=random.Random(seed + 2),
                          ready_prob=ready_prob, received=got)

    run_pysim(dut, [send, recv], deadline_cycles=20 * len(beats))
    assert got == beats, f"[seed={seed}]"


@pytest.mark.parametrize("copies", [1, 4])
def test_latency_one_and_full_rate(copies):
    dut = StreamSlice(unsigned(8), copies=copies)
    beats = list(range(50))
    acc, tr = [], []

    async def send(ctx):
        await stream_send(ctx, dut.i, beats, accepted_cycles=acc)

    async def recv(ctx):
        await stream_recv(ctx, dut.o, len(beats), transfer_cycles=tr)

    run_pysim(dut, [send, recv], deadline_cycles=500)
    assert [t - a for t, a in zip(tr, acc)] == [1] * len(beats)
    assert tr == list(range(tr[0], tr[0] + len(beats)))


def test_no_combinational_path():
    dut = StreamSlice(unsigned(8))

    async def bench(ctx):
        # fill: main and skid registers full while o is not ready
        ctx.set(dut.o.ready, 0)
        for v in (1, 2):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, v)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.i.ready) == 0
        # within one cycle, i.ready does not follow o.ready and o.valid does not follow i.valid
        for r in (0, 1, 0):
            ctx.set(dut.o.ready, r)
            assert ctx.get(dut.i.ready) == 0
        await ctx.tick()                      # o.ready was 0: nothing moved
        assert ctx.get(dut.o.payload) == 1
        ctx.set(dut.o.ready, 1)
        await ctx.tick()                      # beat 1 taken, skid (2) -> main, skid free
        assert ctx.get(dut.o.payload) == 2 and ctx.get(dut.i.ready) == 1
        await ctx.tick()                      # beat 2 taken, nothing offered
        for v in (0, 1, 0):
            ctx.set(dut.i.valid, v)
            assert ctx.get(dut.o.valid) == 0

    run_pysim(dut, [bench], deadline_cycles=50)
