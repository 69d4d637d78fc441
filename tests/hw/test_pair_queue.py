"""PairQueue (hw/mem/pair_queue.py): the same handshakes and data as a StreamSlice, cycle for
cycle (the two side by side under one random producer and consumer), with the read pointer in
one or several copies. Order and no loss under random gaps: tests/hw/test_stream_slice.py."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.mem.pair_queue import PairQueue
from hw.mem.stream_slice import StreamSlice
from host.pysim import run_pysim
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)

WIDTH = 12


class _SideBySide(wiring.Component):
    """One input stream into a PairQueue and a StreamSlice (the slice's i.ready is an output,
    compared, not used); one o.ready for both."""

    def __init__(self, copies):
        self.copies = copies
        super().__init__({
            "valid": In(1), "payload": In(WIDTH), "o_ready": In(1),
            "q_i_ready": Out(1), "s_i_ready": Out(1),
            "q_o_valid": Out(1), "q_o_payload": Out(WIDTH),
            "s_o_valid": Out(1), "s_o_payload": Out(WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.q = q = PairQueue(unsigned(WIDTH), select_copies=self.copies)
        m.submodules.s = s = StreamSlice(unsigned(WIDTH))
        m.d.comb += [q.i.valid.eq(self.valid), q.i.payload.eq(self.payload),
                     s.i.valid.eq(self.valid), s.i.payload.eq(self.payload),
                     self.q_i_ready.eq(q.i.ready), self.s_i_ready.eq(s.i.ready),
                     q.o.ready.eq(self.o_ready), s.o.ready.eq(self.o_ready),
                     self.q_o_valid.eq(q.o.valid), self.q_o_payload.eq(q.o.payload),
                     self.s_o_valid.eq(s.o.valid), self.s_o_payload.eq(s.o.payload)]
        return m


@pytest.mark.parametrize("copies", [1, 3])
def test_same_handshakes_as_stream_slice(copies, seed):
    rng = random.Random(seed)
    dut = _SideBySide(copies)
    checked = []

    async def bench(ctx):
        valid, payload = 0, 0
        for cycle in range(2000):
            # a stream-legal producer: a beat stays offered, unchanged, until it is taken
            if not valid and rng.random() < 0.6:
                valid, payload = 1, rng.getrandbits(WIDTH)
            ctx.set(dut.valid, valid)
            ctx.set(dut.payload, payload if valid else rng.getrandbits(WIDTH))
            ctx.set(dut.o_ready, rng.random() < 0.55)
            q_ready, s_ready = ctx.get(dut.q_i_ready), ctx.get(dut.s_i_ready)
            q_valid, s_valid = ctx.get(dut.q_o_valid), ctx.get(dut.s_o_valid)
            assert (q_ready, q_valid) == (s_ready, s_valid), f"cycle {cycle} [seed={seed}]"
            if q_valid:
                assert ctx.get(dut.q_o_payload) == ctx.get(dut.s_o_payload), \
                    f"cycle {cycle} [seed={seed}]"
                checked.append(cycle)
            if valid and q_ready:
                valid = 0
            await ctx.tick()

    run_pysim(dut, [bench], deadline_cycles=3000)
    assert len(checked) > 500          # the queue held data most of the time


def test_bad_copies():
    with pytest.raises(ValueError, match="select_copies"):
        PairQueue(unsigned(8), select_copies=0)
