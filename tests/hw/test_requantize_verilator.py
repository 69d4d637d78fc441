"""Requantize on its generated Verilog: cocotb + Verilator, bit-exact vs sim.fixed.requantize.

The cocotb side is tests/cocotb/test_requantize_tb.py; this test elaborates the component,
builds it (cached under build/cocotb/) and runs the cocotb module with the test's seed.
"""
from __future__ import annotations

import pytest

from hw.array.requantize import Requantize
from sim.config import Config
from tests.harness.configs import q810
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


@pytest.mark.parametrize("cfg,lanes", [pytest.param(Config.tiny(), None, id="tiny"),
                                       pytest.param(q810(), 5, id="q8.10-5lanes")])
def test_requantize_verilator(cfg, lanes, seed, tmp_path):
    dut = Requantize(cfg, lanes=lanes)
    run_block_verilator(dut, "test_requantize_tb", tmp_path, seed, cfg, name="requantize",
                        lanes=dut.lanes, beats=400, valid_prob=0.7, ready_prob=0.6)
