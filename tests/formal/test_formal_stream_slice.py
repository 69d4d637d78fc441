"""Formal check of StreamSlice (hw/mem/stream_slice.py) against a naive two-beat queue.

The harness keeps the beats the slice has taken and not yet given in a model queue (room for
three, so a slice that overfills is caught rather than modelled). It asserts, in every cycle:

- ``count <= 2`` (bounded occupancy: main + skid register);
- ``o.valid == (count != 0)`` and ``o.payload == queue[0]`` (every beat comes out once, in
  order, unchanged; a beat taken at edge t is offered from t + 1: latency 1);
- ``i.ready == (count < 2)`` (full rate while ``o`` takes beats; ``i.ready`` is a register, so
  no combinational path from ``o.ready``);
- the stream rules on ``o`` (assumed on ``i``), and, by self-composition, that ``o.valid`` does
  not wait on ``o.ready``.

For the induction proof two invariants tie the slice's hidden skid register to the model.
"""
from __future__ import annotations

import pytest
from amaranth.hdl import Fragment, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mem.stream_slice import StreamSlice
from tests.harness.formal import FormalFailure, Harness, check_valid_independent_of_ready, \
    find_signal

WIDTH = 4


def slice_harness(make_dut, *, whitebox: bool) -> Harness:
    h = Harness()
    m = h.m
    dut = make_dut()
    m.submodules.dut = frag = Fragment.get(dut, None)
    h.contract(dut)

    queue = [Signal(WIDTH, name=f"model_q{k}") for k in range(3)]
    count = Signal(range(4), name="model_count")
    push = dut.i.valid & dut.i.ready
    pop = dut.o.valid & dut.o.ready
    with m.If(pop):
        m.d.sync += [queue[k].eq(queue[k + 1]) for k in range(2)]
    with m.If(push & (count - pop < 3)):
        with m.Switch(count - pop):
            for k in range(3):
                with m.Case(k):
                    m.d.sync += queue[k].eq(dut.i.payload)
    m.d.sync += count.eq(count + push - pop)

    h.assert_(count <= 2, "at most two beats held")
    h.assert_(dut.o.valid == (count != 0), "every held beat is offered (latency 1)")
    with m.If(dut.o.valid):
        h.assert_(dut.o.payload == queue[0], "beats leave in order, once, unchanged")
    h.assert_(dut.i.ready == (count < 2), "i.ready is high exactly while fewer than two held")
    if whitebox:
        skid_v, skid = find_signal(frag, "skid_v"), find_signal(frag, "skid")
        h.assert_(skid_v == (count == 2), "invariant: skid register full iff two held")
        with m.If(count == 2):
            h.assert_(skid == queue[1], "invariant: skid register holds the second beat")

    h.cover((count == 2) & pop, "a beat leaves while the skid register is full")
    h.cover((count == 1) & push & pop, "full rate: a beat in and out in one cycle")
    h.cover(h.past((count == 2) & pop) & (count == 1) & pop, "the skid beat leaves after it")
    return h


def test_stream_slice_proof():
    slice_harness(lambda: StreamSlice(unsigned(WIDTH)), whitebox=True).run(
        mode="prove", depth=8, name="stream_slice")


def test_stream_slice_bmc_and_cover():
    slice_harness(lambda: StreamSlice(unsigned(WIDTH)), whitebox=False).run(
        mode="bmc", depth=20, name="stream_slice_bmc")
    slice_harness(lambda: StreamSlice(unsigned(WIDTH)), whitebox=False).run(
        mode="cover", depth=8, name="stream_slice_cover")


def test_stream_slice_induction_needs_the_skid_invariants(tmp_path):
    # without them, the skid register may hold a wrong beat for any number of stalled cycles
    with pytest.raises(FormalFailure, match=r"induction step(.|\n)*trace_induct\.vcd"):
        slice_harness(lambda: StreamSlice(unsigned(WIDTH)), whitebox=False).run(
            mode="prove", depth=8, name="stream_slice_no_invariants",
            workdir=tmp_path)


def test_stream_slice_valid_does_not_wait_on_ready():
    check_valid_independent_of_ready(lambda: StreamSlice(unsigned(WIDTH)), depth=8,
                                     name="stream_slice_comb")


# -- the checks catch broken slices ---------------------------------------------------------

class _Stage(wiring.Component):
    """Test-only stream stages with one planted bug each (``bug`` selects it)."""

    def __init__(self, bug: str):
        self.bug = bug
        super().__init__({"i": In(stream.Signature(WIDTH)), "o": Out(stream.Signature(WIDTH))})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        data = Signal(WIDTH)
        if self.bug == "overwrite":
            # one register, always ready: a stalled beat is overwritten by the next one
            m.d.comb += [self.i.ready.eq(1), self.o.valid.eq(full), self.o.payload.eq(data)]
            with m.If(self.i.valid):
                m.d.sync += [data.eq(self.i.payload), full.eq(1)]
            with m.Elif(self.o.ready):
                m.d.sync += full.eq(0)
        elif self.bug == "waits_on_ready":
            # offers its beat only when the sink is ready
            m.d.comb += [self.i.ready.eq(~full | self.o.ready),
                         self.o.valid.eq(full & self.o.ready), self.o.payload.eq(data)]
            with m.If(self.i.ready):
                m.d.sync += [data.eq(self.i.payload), full.eq(self.i.valid)]
        return m


def test_catches_overwritten_beat(tmp_path):
    with pytest.raises(FormalFailure, match=r"bounded check.*FAILED(.|\n)*trace\.vcd"):
        slice_harness(lambda: _Stage("overwrite"), whitebox=False).run(
            mode="bmc", depth=8, name="stream_slice_bug_overwrite", workdir=tmp_path)


def test_catches_valid_waiting_on_ready(tmp_path):
    with pytest.raises(FormalFailure, match="valid does not wait on ready"):
        check_valid_independent_of_ready(lambda: _Stage("waits_on_ready"), depth=6,
                                         name="stream_slice_bug_comb", workdir=tmp_path)
