"""boards/synth_report.py: Yosys cell counts for ECP5 and UltraScale+.

The Yosys runs take a few seconds each once YoWASP has compiled its WebAssembly (the very first
call on a machine takes ~1 min more); they are skipped when no Yosys is installed.
"""
from __future__ import annotations

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from boards.synth_report import SynthError, format_report, summarize, synth_stats
from sim.config import get_config

from tests.harness.yosys import needs_yosys


class RegisteredMul(wiring.Component):
    """p = a * b with registered operands and product (what a DSP slice absorbs or wraps)."""

    def __init__(self, a_bits: int, b_bits: int):
        self._a, self._b = a_bits, b_bits
        super().__init__({"a": In(signed(a_bits)), "b": In(signed(b_bits)),
                          "p": Out(signed(a_bits + b_bits))})

    def elaborate(self, platform):
        m = Module()
        ra, rb = Signal(signed(self._a)), Signal(signed(self._b))
        m.d.sync += [ra.eq(self.a), rb.eq(self.b), self.p.eq(ra * rb)]
        return m


def test_summary_rules_without_yosys():
    ecp5 = summarize("ecp5", {"LUT4": 10, "CCU2C": 3, "TRELLIS_DPR16X4": 2, "TRELLIS_FF": 7,
                              "MULT18X18D": 2, "DP16KD": 1, "PFUMX": 4})
    assert ecp5 == {"luts": 10 + 6 + 8, "ffs": 7, "dsps": 2, "brams": 1}
    xil = summarize("xilinx", {"LUT2": 3, "LUT6": 4, "RAM32M": 1, "FDRE": 5, "FDCE": 1,
                               "DSP48E2": 3, "RAMB36E2": 1, "RAMB18E2": 1, "CARRY8": 2})
    assert xil == {"luts": 3 + 4 + 4, "ffs": 6, "dsps": 3, "brams": 1.5}
    with pytest.raises(ValueError, match="unknown family"):
        summarize("ice40", {})


@needs_yosys
def test_requantize_on_ecp5():
    from hw.array.requantize import Requantize
    stats = synth_stats(Requantize(get_config("tiny")), "requantize", "ecp5")
    print("\n" + format_report(stats))
    assert set(stats["summary"]) == {"luts", "ffs", "dsps", "brams"}
    assert stats["summary"]["luts"] > 0 and stats["summary"]["ffs"] > 0
    assert stats["summary"]["dsps"] == 0          # requantize has no multiplier
    assert "LUT4" in stats["cells"] and "TRELLIS_FF" in stats["cells"]


@needs_yosys
def test_signed_16x16_multiplier_is_one_mult18x18d():
    stats = synth_stats(RegisteredMul(16, 16), "mul16", "ecp5")
    print("\n" + format_report(stats))
    assert stats["cells"].get("MULT18X18D") == 1
    assert stats["summary"]["dsps"] == 1
    assert stats["summary"]["luts"] < 20          # no soft multiplier around it


@needs_yosys
def test_signed_27x18_multiplier_is_one_dsp48e2():
    stats = synth_stats(RegisteredMul(27, 18), "mul27", "xilinx")
    print("\n" + format_report(stats))
    assert stats["cells"].get("DSP48E2") == 1 and stats["summary"]["dsps"] == 1
    assert stats["summary"]["luts"] < 20


@needs_yosys
@needs_yosys
def test_check_verilog(tmp_path):
    from boards.synth_report import check_verilog
    check_verilog("module ok(input a, output b); assign b = a; endmodule", "ok")
    with pytest.raises(SynthError, match="cannot read"):
        check_verilog("module top(input a); sub u(.x(a)); endmodule", "top")


def test_verilog_text_input_and_errors(tmp_path):
    src = """module adder(input clk, input [7:0] a, b, output reg [8:0] s);
               always @(posedge clk) s <= a + b;
             endmodule"""
    stats = synth_stats(src, "adder", "ecp5", keep_dir=tmp_path / "ok")
    assert stats["summary"]["ffs"] == 9
    assert (tmp_path / "ok" / "stat.json").is_file()     # keep_dir keeps the run
    with pytest.raises(SynthError, match="yosys failed"):
        synth_stats("module broken(input a; endmodule", "broken", "ecp5")
    with pytest.raises(ValueError, match="unknown family"):
        synth_stats(src, "adder", "gowin")


@needs_yosys
def test_component_with_constant_ports_and_rsqrt_multipliers():
    """Rsqrt has always-ready streams (ready is a constant, not a port); its two Newton-step
    multipliers (y0^2 comes from its ROM) must each fit one MULT18X18D (operands sized by
    hw.norm.rsqrt.rsqrt_bounds)."""
    from hw.norm.rsqrt import Rsqrt
    stats = synth_stats(Rsqrt(get_config("tiny"), 46, tag_shape=2), "rsqrt", "ecp5")
    print("\n" + format_report(stats))
    assert stats["summary"]["dsps"] == 2
    assert stats["summary"]["ffs"] > 100        # the pipeline survived (outputs are ports)


class TwoMulsAndAnAdder(wiring.Component):
    """Two registered multipliers as submodules (one nested one level deeper) and an adder in
    the top: the shape of a design that synth_stats_by_parts cuts at module boundaries."""

    def __init__(self):
        super().__init__({"a": In(signed(16)), "b": In(signed(16)), "s": Out(signed(33))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.m0 = m0 = RegisteredMul(16, 16)
        inner = Module()
        inner.submodules.m1 = m1 = RegisteredMul(16, 16)
        m.submodules.wrap = inner
        m.d.comb += [m0.a.eq(self.a), m0.b.eq(self.b), m1.a.eq(self.b), m1.b.eq(-self.a)]
        m.d.sync += self.s.eq(m0.p + m1.p)
        return m


@needs_yosys
def test_by_parts_adds_up_to_the_flat_run(tmp_path):
    """Each submodule in its own Yosys run + the top's own logic with boxes: the same
    multipliers as one flattened run, LUTs within a few percent, flip-flops exactly the
    design's (the flat run may merge equal registers of two modules)."""
    from boards.synth_report import synth_stats_by_parts
    flat = synth_stats(TwoMulsAndAnAdder(), "two", "ecp5")["summary"]
    logs = []
    parts = synth_stats_by_parts(TwoMulsAndAnAdder(), "two", "ecp5", keep_dir=tmp_path,
                                 log=logs.append)
    s = parts["summary"]
    assert flat["dsps"] == s["dsps"] == 2
    # by parts: every register of both multipliers (2 x (16 + 16 + 32)) + the sum's 33; the
    # flat run merges the two copies of the b register (same input) across the module cut
    assert s["ffs"] == 2 * (16 + 16 + 32) + 33
    assert flat["ffs"] == s["ffs"] - 16
    assert abs(s["luts"] - flat["luts"]) <= max(4, 0.05 * flat["luts"])
    assert len(parts["parts"]) == 3 and "two (own logic)" in parts["parts"], parts["parts"]
    assert [p["dsps"] for p in parts["parts"].values()] == [0, 1, 1]
    # the same from Amaranth's RTLIL (what `edge-moe elaborate` synthesizes)
    from amaranth.back import rtlil
    il = synth_stats_by_parts(rtlil.convert(TwoMulsAndAnAdder(), name="two"), "two", "ecp5",
                              rtlil=True)
    assert il["summary"] == s


@needs_yosys
@pytest.mark.parametrize("family", ["ecp5", "xilinx"])
def test_classic_abc_mapping_counts_the_same_hard_blocks(family, tmp_path):
    """The fallback script (synth_* up to map_luts, classic abc, the rest of synth_*) gives a
    complete netlist: the same DSPs and flip-flops as the abc9 flow, some LUTs."""
    from boards.synth_report import _run_part, summarize, _verilog_of
    (tmp_path / "top.v").write_text(_verilog_of(RegisteredMul(16, 16), "mul", family))
    a9 = summarize(family, _run_part(tmp_path, "top.v", "mul", family, (), "", 600, "a9."))
    ab = summarize(family, _run_part(tmp_path, "top.v", "mul", family, (), "", 600, "ab.",
                                     abc9=False))
    assert "abc -lut" in (tmp_path / "ab.synth.ys").read_text()
    assert ab["dsps"] == a9["dsps"] == 1 and ab["ffs"] == a9["ffs"]
