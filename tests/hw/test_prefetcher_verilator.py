"""Expert-weight prefetcher + DRAM model on their generated Verilog: cocotb + Verilator.

The cocotb side is tests/cocotb/test_prefetch_tb.py (grant order, buffer contents bit-exact,
stall and byte counters, no read of an unchosen expert).
"""
from __future__ import annotations

import pytest

from hw.moe.prefetcher import expert_address_table
from tests.harness.configs import prefetch_configs
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator
from tests.hw.test_prefetcher import PrefetchSystem, weight_image


@pytest.mark.parametrize("cfg", prefetch_configs(wide=False))
def test_prefetcher_verilator(cfg, seed, tmp_path):
    pseed = seed % 5
    _, image, base, entries = weight_image(cfg, pseed)
    dut = PrefetchSystem(cfg, image, base, expert_address_table(cfg, entries))
    run_block_verilator(dut, "test_prefetch_tb", tmp_path, seed, cfg, name="prefetch_system",
                        pseed=pseed)
