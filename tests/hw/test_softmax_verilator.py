"""Softmax unit on its generated Verilog: cocotb + Verilator, bit-exact vs softmax_rows.

The cocotb side is tests/cocotb/test_softmax_tb.py (corner-case rows with random gaps and
back-pressure; full-rate throughput and row latency).
"""
from __future__ import annotations

import pytest

from hw.attention.softmax import Softmax
from sim.config import get_config
from host.cocotb_run import run_cocotb
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


@pytest.mark.parametrize("lanes", [2])
def test_softmax_verilator(lanes, seed, tmp_path):
    cfg = get_config("tiny")
    dut = Softmax(cfg, lanes=lanes)
    run_cocotb(dut, "tests.cocotb.test_softmax_tb", name="softmax", test_dir=tmp_path, seed=seed,
               params=dict(config=cfg.to_dict(), lanes=lanes, max_len=dut.max_len,
                           valid_prob=0.7, ready_prob=0.6))
