"""EdgeMoeAxiTop (hw/top/axi_top.py) on Icarus Verilog: the AXI frame testbench of
tests/system/test_axi_top.py (tests/cocotb/test_axi_top_tb.py: cocotbext-axi AxiRam as the DDR,
AxiLiteMaster as the host, the AXI protocol monitor on every transfer), run under ``iverilog
-g2012`` (cocotb's default language for Icarus) on the Verilog of boards/verilog_out.py.

A clean ``tiny`` frame, task 1, image at the same odd base as the Verilator test (bursts meet
4 KiB boundaries), output tokens bit-exact vs the golden model. Its own file, so pytest-xdist
runs it on another worker than the Verilator frames. Skipped when ``iverilog`` is not on ``PATH``.
"""
from __future__ import annotations

import pytest

from tests.harness.icarus import needs_iverilog
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.system.test_axi_top import _run

pytestmark = needs_iverilog


def test_axi_frame_icarus(seed, tmp_path):
    out = _run(tmp_path, seed, task=1, simulator="icarus")
    assert out["axi"]["on_boundary"] > 0, f"no burst met a 4 KiB boundary: {out['axi']}"
    print(f"tiny frame over AXI on Icarus: {out['regs']['CYCLES']} cycles, AXI {out['axi']}")
