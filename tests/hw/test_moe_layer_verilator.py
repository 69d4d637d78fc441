"""MoE layer integration on its generated Verilog: cocotb + Verilator, bit-exact vs moe_block.

The cocotb side is tests/cocotb/test_moe_tb.py. The DUT is the MoE layer with the DRAM model
(latency cfg.hw.mem_latency) holding the exported weight image.
"""
from __future__ import annotations

import pytest

from sim.config import Config
from host.bench.moe_system import MoESystem, moe_case
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


@pytest.mark.parametrize("dead", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["tiny", "tiny-dead-expert"])
def test_moe_layer_verilator(dead, seed, tmp_path):
    cfg = Config.tiny()
    case = moe_case(cfg, seed, dead_expert=dead)
    run_block_verilator(MoESystem(cfg, case), "test_moe_tb", tmp_path, seed, cfg,
                        name="moe_system", dead=dead, task=case["task"])
