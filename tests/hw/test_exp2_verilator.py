"""Exp2 on its generated Verilog: cocotb + Verilator, bit-exact vs sim.golden.softmax.exp2_fixed.

The cocotb side is tests/cocotb/test_exp2_tb.py (every useful input, random pipeline enable).
"""
from __future__ import annotations

from hw.attention.exp2 import Exp2
from sim.config import get_config
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


def test_exp2_verilator(seed, tmp_path):
    cfg = get_config("tiny")
    run_block_verilator(Exp2(cfg), "test_exp2_tb", tmp_path, seed, cfg, en_prob=0.7,
                        n_random=300)
