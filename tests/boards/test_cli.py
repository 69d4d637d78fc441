"""``edge-moe elaborate`` / ``edge-moe build`` through the real CLI entry point (no FPGA tools).

- ``build --list`` names both boards; ``build --check-only`` passes for ``tiny`` and fails for
  the full ECP5 config with exit code 2 and one clear line (nothing is built); an unknown board
  is the same kind of error;
- ``elaborate --config tiny --interface native --no-synth`` writes the Verilog (module
  ``edge_moe_top`` with the ports the README lists) and a README with the register map and the
  memory interface; without ``--interface`` it writes the AXI top (``edge_moe_axi_top``) and a
  README with the register byte offsets and the reset.
  The synth_xilinx run is tests/boards/test_board_build.py's.
"""
from __future__ import annotations

import re

from edge_moe.cli import main


def test_build_list(capsys):
    assert main(["build", "--list"]) == 0
    out = capsys.readouterr().out
    assert "ulx3s-85f" in out and "ecpix5-85f" in out


def test_build_check_only(capsys, tmp_path):
    assert main(["build", "--board", "ulx3s-85f", "--check-only"]) == 0
    assert "fits the LFE5U-85F" in capsys.readouterr().out
    rc = main(["build", "--board", "ulx3s-85f", "--config", "m3vit-ecp5-85f", "-o",
               str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "does not fit the LFE5U-85F" in err and "DP16KD" in err
    assert not (tmp_path / "b").exists(), "nothing may be built when the design does not fit"
    assert main(["build", "--board", "nope"]) == 2
    assert "unknown board" in capsys.readouterr().err


def test_elaborate_tiny_no_synth(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["elaborate", "--config", "tiny", "--interface", "native", "-o", str(out),
                 "--no-synth"]) == 0
    v = (out / "edge_moe_top.v").read_text()
    readme = (out / "README.md").read_text()
    assert re.search(r"^module edge_moe_top\(", v, re.M)
    for port in ("csr__addr", "csr__rdata", "mem_rd__rd_req__valid", "mem_wr__wr_data__payload",
                 "done"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", v), port
        assert f"`{port}`" in readme, port
    for reg in ("CTRL", "STATUS", "TASK", "CYCLES", "BYTES_READ", "OUT_BASE"):
        assert f"`{reg}`" in readme
    assert "mem_rd__rd_req" in readme and "burst" in readme
    assert (out / "config.json").is_file()
    assert "#define EDGE_MOE_STATUS_OFFSET 0x00Cu" in (out / "edge_moe_regs.h").read_text()
    assert "edge_moe_top.v" in capsys.readouterr().out


def test_elaborate_tiny_axi_no_synth(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["elaborate", "--config", "tiny", "-o", str(out), "--no-synth"]) == 0
    v = (out / "edge_moe_axi_top.v").read_text()
    readme = (out / "README.md").read_text()
    assert re.search(r"^module edge_moe_axi_top\(", v, re.M)
    for port in ("m_axi_araddr", "m_axi_rlast", "m_axi_wstrb", "s_axil_awaddr", "s_axil_rresp",
                 "irq", "rst"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", v), port
        assert f"`{port}`" in readme, port
    for reg, offset in (("CTRL", "0x004"), ("STATUS", "0x00c"), ("OUT_BASE", "0x020"),
                        ("CYCLES", "0x040"), ("BUS_ERROR", "0x03c")):
        assert f"| {offset} | `{reg}` |" in readme, reg
    assert "active high" in readme and "4096-byte boundary" in readme
    assert "#define EDGE_MOE_BUS_ERROR_OFFSET 0x03Cu" in (out / "edge_moe_regs.h").read_text()
    assert "edge_moe_axi_top.v" in capsys.readouterr().out
