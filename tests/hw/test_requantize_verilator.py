"""Requantize on its generated Verilog: cocotb + Verilator, bit-exact vs sim.fixed.requantize.

The cocotb side is tests/cocotb/test_requantize_tb.py; this test elaborates the component,
builds it (cached under build/cocotb/) and runs the cocotb module with the test's seed.
"""
from __future__ import annotations

import pytest

from hw.array.requantize import Requantize
from sim.config import Config, with_changes
from sim.fixed import QFormat
from host.cocotb_run import run_cocotb
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


def _configs():
    tiny = Config.tiny()
    # A second numeric variant: 18-bit Q8.10 activations, Q2.16 weights (shift 16), 5 lanes.
    q810 = with_changes(tiny, name="tiny-q8.10",
                        num=dict(act=QFormat(8, 10), weight=QFormat(2, 16), bias=QFormat(8, 26)))
    return [pytest.param(tiny, None, id="tiny"), pytest.param(q810, 5, id="q8.10-5lanes")]


@pytest.mark.parametrize("cfg,lanes", _configs())
def test_requantize_verilator(cfg, lanes, seed, tmp_path):
    dut = Requantize(cfg, lanes=lanes)
    run_cocotb(dut, "tests.cocotb.test_requantize_tb", name="requantize", test_dir=tmp_path,
               seed=seed, params=dict(config=cfg.to_dict(), lanes=dut.lanes, beats=400,
                                      valid_prob=0.7, ready_prob=0.6))
