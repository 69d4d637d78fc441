"""GeluUnit on its generated Verilog: cocotb + Verilator, bit-exact vs sim.golden.gelu.gelu_pwl.

Every activation code goes through the unit (full rate), plus a random stream with valid gaps and
back-pressure. Prints the unit's max / mean abs error vs exact (erf) GELU over the whole
activation range and over |x| <= gelu_range.
"""
from __future__ import annotations

import json

import pytest

from hw.array.gelu import GeluUnit
from sim.config import Config
from tests.harness.configs import gelu_q810
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


@pytest.mark.parametrize("cfg,lanes", [pytest.param(Config.tiny(), None, id="q8.8"),
                                       pytest.param(gelu_q810(), 8, id="q8.10")])
def test_gelu_verilator(cfg, lanes, seed, tmp_path):
    dut = GeluUnit(cfg, lanes)
    run_block_verilator(dut, "test_gelu_tb", tmp_path, seed, cfg, name="gelu_unit",
                        lanes=dut.lanes, valid_prob=0.7, ready_prob=0.6, random_beats=3000)
    r = json.loads((tmp_path / "gelu_error.json").read_text())
    print(f"\nGELU unit [{r['config']}, {cfg.num.gelu_segments} segments on "
          f"[0, {cfg.num.gelu_range:g})], all {r['values']} inputs vs exact GELU: max abs "
          f"{r['max_abs']:.5f} (at x = {r['max_abs_at']:g}), mean abs {r['mean_abs']:.2e}; "
          f"|x| <= {cfg.num.gelu_range:g}: max {r['max_abs_inner']:.5f}, mean "
          f"{r['mean_abs_inner']:.2e} (1 LSB = {r['lsb']:g})")
    # PWL interpolation error <= h^2/8 max|d''| (h: grid step, |d''| <= 2 phi(0) < 0.8), plus half
    # an output LSB of rounding and the table's own rounding.
    h = cfg.num.gelu_range / cfg.num.gelu_segments
    bound = h * h / 8 * 0.8 + 0.5 * r["lsb"] + 2.0 ** -cfg.num.gelu_table_frac
    assert r["max_abs"] <= bound, f"max abs error {r['max_abs']} > bound {bound}"
