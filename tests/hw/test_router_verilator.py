"""Router on its generated Verilog: cocotb + Verilator, bit-exact vs the golden router.

The cocotb side is tests/cocotb/test_router_tb.py (random tied / extreme logits, random valid
gaps and back-pressure, plus a full-rate latency / throughput check).
"""
from __future__ import annotations

import pytest

from hw.moe.router import Router
from tests.harness.configs import router_configs
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


@pytest.mark.parametrize("cfg", router_configs())
def test_router_verilator(cfg, seed, tmp_path):
    run_block_verilator(Router(cfg), "test_router_tb", tmp_path, seed, cfg, tokens=300,
                        valid_prob=0.6, ready_prob=0.5)
