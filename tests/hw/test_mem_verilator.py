"""Read DMA + DRAM model on their generated Verilog: cocotb + Verilator.

The cocotb side is tests/cocotb/test_prefetch_dram_tb.py (random commands with back-pressure,
byte counter, exact latency and full bandwidth).
"""
from __future__ import annotations

import random

import pytest

from hw.mem.onchip_memory import OnChipMemory
from sim.config import Config, with_changes
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator
from tests.hw.test_mem import DmaDram


@pytest.mark.parametrize("latency,beat", [(8, 8), (20, 4)], ids=["lat8-w8", "lat20-w4"])
def test_dma_dram_verilator(latency, beat, seed, tmp_path):
    cfg = with_changes(Config.tiny(), hw=dict(mem_latency=latency, mem_bytes_per_cycle=beat,
                                               mem_max_burst=4,
                                               mem_max_outstanding=latency // 4 + 2))
    nbytes, base = 1024, 0x800
    rng = random.Random(seed)
    image = bytes(rng.randrange(256) for _ in range(nbytes))
    run_block_verilator(DmaDram(cfg, image, base), "test_prefetch_dram_tb", tmp_path, seed, cfg,
                        name="dma_dram", base=base, image_bytes=nbytes,
                        latency=max(latency, OnChipMemory.MIN_LATENCY))
