"""boards/verilog_out.py: Verilog with no ``always @*`` process, the same in Icarus -g2005 / -g2012.

A tiny component has both idioms of Amaranth's stock Verilog that Icarus does not run at time 0
in SystemVerilog mode: a case statement behind the dummy time-0 trigger, and a constant slice
assignment ``always @* z[3:0] = 4'h0;`` (which Icarus never runs in -g2005 either). The Icarus
checks run a plain Verilog testbench (no cocotb, about a second) and are skipped without
``iverilog``.
"""
import subprocess

import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from boards import verilog_out
from tests.harness.icarus import needs_iverilog


class _Tiny(wiring.Component):
    """``y``: a case on register ``r`` (init 1) with constant arms; ``z``: a constant low half
    and an ``If`` on ``r[1]`` for the high half. ``inc`` advances ``r``."""
    inc: In(1)
    y: Out(4)
    z: Out(8)

    def elaborate(self, platform):
        m = Module()
        r = Signal(2, init=1)
        m.d.sync += r.eq(r + self.inc)
        with m.Switch(r):
            with m.Case(0):
                m.d.comb += self.y.eq(3)
            with m.Case(1):
                m.d.comb += self.y.eq(5)
            with m.Case(2):
                m.d.comb += self.y.eq(9)
        m.d.comb += self.z[0:4].eq(0)
        with m.If(r[1]):
            m.d.comb += self.z[4:8].eq(7)
        return m


_TB = """
module tb;
  reg clk = 0, rst = 0, inc = 1;
  wire [3:0] y;
  wire [7:0] z;
  tiny dut(.clk(clk), .rst(rst), .inc(inc), .y(y), .z(z));
  initial begin
    #1 $display("y=%b z=%b", y, z);
    clk = 1;
    #1 $display("y=%b z=%b", y, z);
    $finish;
  end
endmodule
"""
# r = 1 at time 0 (y = 5, z = 0), r = 2 after one edge (y = 9, z = 0x70)
_EXPECTED = ["y=0101 z=00000000", "y=1001 z=01110000"]

_DUMMY = "verilog_backend.cc"


def _icarus(verilog_text: str, generation: str, tmp_path) -> list[str]:
    (tmp_path / "tiny.v").write_text(verilog_text)
    (tmp_path / "tb.v").write_text(_TB)
    subprocess.run(["iverilog", f"-g{generation}", "-s", "tb", "-o", str(tmp_path / "sim"),
                    str(tmp_path / "tiny.v"), str(tmp_path / "tb.v")], check=True)
    out = subprocess.run(["vvp", "-n", str(tmp_path / "sim")], check=True, capture_output=True,
                         text=True).stdout
    return [line for line in out.splitlines() if line.startswith("y=")]


def test_stock_verilog_has_both_idioms():
    """The premise: Amaranth's own output has the dummy trigger and a constant ``always @*``."""
    text = verilog.convert(_Tiny(), name="tiny")
    assert f"reg \\$auto${_DUMMY}" in text
    assert "always @*\n    z[3:0] = 4'h0;" in text


def test_convert_has_no_comb_process():
    text = verilog_out.convert(_Tiny(), name="tiny")
    assert "always @*" not in text
    assert _DUMMY not in text
    assert "assign z[3:0] = 4'h0;" in text
    assert "function [3:0] \\fn$procmux$" in text and "function [3:0] \\$" not in text


def test_same_script_as_amaranth_but_proc():
    """Our Yosys script with Amaranth's ``proc -nomux -norom`` gives Amaranth's text exactly."""
    il = rtlil.convert(_Tiny(), name="tiny")
    amaranth_script = ["proc -nomux -norom", *verilog_out.YOSYS_SCRIPT[1:]]
    assert verilog_out.YOSYS_SCRIPT[0] == "proc -norom"
    assert verilog_out._run_yosys(il, amaranth_script) == verilog.convert(_Tiny(), name="tiny")


@needs_iverilog
@pytest.mark.parametrize("generation", ["2005", "2012"])
def test_icarus_runs_converted(generation, tmp_path):
    assert _icarus(verilog_out.convert(_Tiny(), name="tiny"), generation, tmp_path) == _EXPECTED


@needs_iverilog
def test_icarus_misses_stock_idioms(tmp_path):
    """The bug this module avoids (and proof the check above can fail): Icarus never runs the
    constant ``always @* z[3:0] = 4'h0;`` ("@* found no sensitivities"), in either mode, and
    under -g2012 the dummy trigger makes no event, so y stays X until r changes."""
    text = verilog.convert(_Tiny(), name="tiny")
    assert _icarus(text, "2005", tmp_path) == ["y=0101 z=0000xxxx", "y=1001 z=0111xxxx"]
    assert _icarus(text, "2012", tmp_path) == ["y=xxxx z=xxxxxxxx", "y=1001 z=0111xxxx"]


SNIPPET = """\
  function [3:0] \\$procmux$3 ;
    input [3:0] a;
    casez (s)
      3'b??1:
        \\$procmux$3  = b[3:0];
      default:
        \\$procmux$3  = a;
    endcase
  endfunction
  assign \\$procmux$3_Y  = \\$procmux$3 (4'h0, 12'h359, { \\$procmux$6_CMP , \\$procmux$30 });
  assign \\$procmux$30  = \\$3 ;
"""


def test_rename_functions_snippet():
    out = verilog_out.rename_functions(SNIPPET)
    assert out == SNIPPET.replace("\\$procmux$3 ", "\\fn$procmux$3 ")
    assert out.count("\\fn$procmux$3 ") == 4                      # declaration, 2 returns, call
    assert "\\$procmux$3_Y " in out and "\\$procmux$30 " in out and "\\$3 ;" in out


def test_rename_functions_without_functions_is_identity():
    text = "  assign \\$procmux$3_Y  = \\$3 ;\n"
    assert verilog_out.rename_functions(text) == text


def test_rename_functions_clash():
    with pytest.raises(ValueError, match=r"identifier \\fn\$procmux\$3 already exists"):
        verilog_out.rename_functions(SNIPPET + "  wire \\fn$procmux$3 ;\n")
