"""LayerNorm on its generated Verilog: cocotb + Verilator, bit-exact vs sim.golden.layernorm.

The cocotb side is tests/cocotb/test_layernorm_tb.py (random parameter sets and rows with random
valid gaps / back-pressure, constant and extreme rows, full-rate timing vs the cycle model, busy).
Verilator builds are cached under build/cocotb/ (the first build of each config takes ~20-60 s).
"""
from __future__ import annotations

import pytest

from hw.norm.layernorm import LayerNorm
from sim.config import get_config
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


@pytest.mark.parametrize("name,lanes,banks,rows", [
    ("tiny", None, 3, 24),                      # dim 32, 4 lanes: 8 beats per row
    ("m3vit-tiny-cityscapes", None, 2, 10),     # dim 192, 16 lanes, plain double buffer
])
def test_layernorm_verilator(name, lanes, banks, rows, seed, tmp_path):
    cfg = get_config(name)
    dut = LayerNorm(cfg, lanes=lanes, banks=banks)
    run_block_verilator(dut, "test_layernorm_tb", tmp_path, seed, cfg, lanes=dut.lanes,
                        banks=banks, rows=rows, valid_prob=0.7, ready_prob=0.6)
