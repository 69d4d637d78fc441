"""Softmax unit on its generated Verilog: cocotb + Verilator, bit-exact vs softmax_rows.

The cocotb side is tests/cocotb/test_softmax_tb.py (corner-case rows with random gaps and
back-pressure; full-rate throughput and row latency).
"""
from __future__ import annotations

import pytest

from hw.attention.softmax import Softmax
from sim.config import get_config
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


@pytest.mark.parametrize("lanes", [2])
def test_softmax_verilator(lanes, seed, tmp_path):
    cfg = get_config("tiny")
    dut = Softmax(cfg, lanes=lanes)
    run_block_verilator(dut, "test_softmax_tb", tmp_path, seed, cfg, lanes=lanes,
                        max_len=dut.max_len, valid_prob=0.7, ready_prob=0.6)
