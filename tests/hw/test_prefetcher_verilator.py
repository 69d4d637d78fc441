"""Expert-weight prefetcher + DRAM model on their generated Verilog: cocotb + Verilator.

The cocotb side is tests/cocotb/test_prefetch_tb.py (grant order, buffer contents bit-exact,
stall and byte counters, no read of an unchosen expert).
"""
from __future__ import annotations

import pytest

from hw.moe.prefetcher import expert_address_table
from sim.config import Config, with_changes
from host.cocotb_run import run_cocotb
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.hw.test_prefetcher import PrefetchSystem, weight_image


def _configs():
    tiny = Config.tiny()
    narrow = with_changes(tiny, name="tiny-bus4", hw=dict(mem_bytes_per_cycle=4, mem_latency=20))
    return [pytest.param(tiny, id="tiny"), pytest.param(narrow, id="bus4")]


@pytest.mark.parametrize("cfg", _configs())
def test_prefetcher_verilator(cfg, seed, tmp_path):
    pseed = seed % 5
    _, image, base, entries = weight_image(cfg, pseed)
    dut = PrefetchSystem(cfg, image, base, expert_address_table(cfg, entries))
    run_cocotb(dut, "tests.cocotb.test_prefetch_tb", name="prefetch_system", test_dir=tmp_path,
               seed=seed, params=dict(config=cfg.to_dict(), pseed=pseed))
