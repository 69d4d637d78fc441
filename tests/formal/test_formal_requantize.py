"""Formal check of Requantize (hw/array/requantize.py) against a one-beat model and a relational
specification of the rounding.

The model holds the last accepted input beat (``model_valid``, ``model_acc``). The harness
asserts, in every cycle:

- ``o.valid == model_valid``: a beat accepted at an edge is offered right after it (latency 1),
  and nothing else is offered;
- ``i.ready == ~model_valid | o.ready``: the stage loads whenever it is empty or its beat
  leaves (one beat per cycle under full rate);
- each lane of ``o.payload`` is ``requantize(acc)``, stated as a relation rather than computed
  the way the block does (shift and clamp): with ``s = acc_frac - act.frac_bits`` and
  ``h = 2^(s-1)``, an output ``y`` strictly inside the activation range satisfies
  ``y * 2^s <= acc + h < (y + 1) * 2^s`` (round half up), ``y == max`` iff
  ``acc + h >= max * 2^s`` and ``y == min`` iff ``acc + h < (min + 1) * 2^s`` (saturation);
- the stream rules on ``o`` (assumed on ``i``) and that ``o.valid`` does not wait on ``o.ready``.

The full accumulator width of the ``tiny`` preset (48 bits, shift 14, Q8.8 out) is used; the
solver handles it directly. Two lanes show that lanes do not mix.
"""
from __future__ import annotations

import pytest
from amaranth.hdl import Const, Module, Signal

from hw.array.requantize import Requantize
from sim.config import Config
from sim.fixed import hw_saturate
from tests.harness.formal import FormalFailure, Harness, check_valid_independent_of_ready

CFG = Config.tiny()
LANES = 2


def requantize_harness(make_dut) -> Harness:
    h = Harness()
    m = h.m
    m.submodules.dut = dut = make_dut()
    h.contract(dut)
    num = CFG.num
    shift = num.acc_frac - num.act.frac_bits
    assert shift > 0, "the relational spec below is written for a right shift"
    lo, hi = num.act.min_int, num.act.max_int

    model_valid = Signal(name="model_valid")
    model_acc = Signal(dut.in_layout, name="model_acc")
    with m.If(dut.i.valid & dut.i.ready):
        m.d.sync += [model_valid.eq(1), model_acc.eq(dut.i.payload)]
    with m.Elif(dut.o.valid & dut.o.ready):
        m.d.sync += model_valid.eq(0)

    h.assert_(dut.o.valid == model_valid, "latency 1: exactly the accepted beat is offered")
    h.assert_(dut.i.ready == (~model_valid | dut.o.ready),
              "loads whenever empty or its beat leaves (full rate)")
    with m.If(dut.o.valid):
        for k in range(LANES):
            y = dut.o.payload[k].as_signed()
            biased = model_acc[k] + (1 << (shift - 1))   # acc + half an output LSB, no overflow
            in_range = (y > lo) & (y < hi)
            with m.If(in_range):
                h.assert_((y << shift <= biased) & (biased < (y + 1) << shift),
                          f"lane {k}: rounds half up")
            h.assert_((y == hi) == (biased >= Const(hi) << shift), f"lane {k}: saturates high")
            h.assert_((y == lo) == (biased < Const(lo + 1) << shift), f"lane {k}: saturates low")
            h.cover(y == hi, f"lane {k}: high saturation reached")
            h.cover(y == lo, f"lane {k}: low saturation reached")
            h.cover(in_range & (model_acc[k][:shift] == 1 << (shift - 1)) & (y < 0),
                    f"lane {k}: a negative exact tie reached")
    h.cover(h.past(dut.o.valid & dut.o.ready & dut.i.valid) & dut.o.valid & dut.o.ready,
            "two beats on consecutive cycles")
    return h


def make_requantize():
    return Requantize(CFG, lanes=LANES)


def test_requantize_proof():
    requantize_harness(make_requantize).run(mode="prove", depth=4, name="requantize")


def test_requantize_bmc_and_cover():
    requantize_harness(make_requantize).run(mode="bmc", depth=20, name="requantize_bmc")
    requantize_harness(make_requantize).run(mode="cover", depth=6, name="requantize_cover")


def test_requantize_valid_does_not_wait_on_ready():
    check_valid_independent_of_ready(make_requantize, depth=6, name="requantize_comb")


class _TruncatingRequantize(Requantize):
    """Test-only: floors instead of rounding half up (the shift without the +half)."""

    def elaborate(self, platform):
        m = Module()
        num = self.cfg.num
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        with m.If(self.i.ready):
            m.d.sync += self.o.valid.eq(self.i.valid)
            for k in range(self.lanes):
                m.d.sync += self.o.payload[k].eq(hw_saturate(
                    self.i.payload[k] >> (num.acc_frac - num.act.frac_bits), num.act))
        return m


def test_catches_truncation(tmp_path):
    with pytest.raises(FormalFailure, match="rounds half up|saturates"):
        requantize_harness(lambda: _TruncatingRequantize(CFG, lanes=LANES)).run(
            mode="bmc", depth=4, name="requantize_bug_truncate", workdir=tmp_path)
