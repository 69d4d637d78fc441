"""Exp2 on its generated Verilog: cocotb + Verilator, bit-exact vs sim.golden.softmax.exp2_fixed.

The cocotb side is tests/cocotb/test_exp2_tb.py (every useful input, random pipeline enable).
"""
from __future__ import annotations

from hw.attention.exp2 import Exp2
from sim.config import get_config
from host.cocotb_run import run_cocotb
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


def test_exp2_verilator(seed, tmp_path):
    cfg = get_config("tiny")
    run_cocotb(Exp2(cfg), "tests.cocotb.test_exp2_tb", name="exp2", test_dir=tmp_path, seed=seed,
               params=dict(config=cfg.to_dict(), en_prob=0.7, n_random=300))
