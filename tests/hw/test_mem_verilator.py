"""Read DMA + DRAM model on their generated Verilog: cocotb + Verilator.

The cocotb side is tests/cocotb/test_prefetch_dram_tb.py (random commands with back-pressure,
byte counter, exact latency and full bandwidth). ``test_dma_dram_ecp5_banks`` runs it on Icarus
with the DRAM model's banks as DP16KD blocks (``hw.bram_target`` "ecp5": the image in their
INITVAL parameters, the bank register their output register) on tests/hw/ecp5_models/DP16KD.v,
in 512 x 36 and 1024 x 18 blocks; ``test_dram_ecp5_banks_write_read`` writes through them
(tests/cocotb/test_dram_write_tb.py) and reads everything back.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from hw.mem.onchip_memory import OnChipMemory
from sim.config import Config, with_changes
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from host.cocotb_run import run_cocotb
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


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not on "
                    "PATH: apt-get install iverilog")
@pytest.mark.parametrize("beat,bank_words,nbytes", [(8, 32, 1024), (4, 1024, 12000)],
                         ids=["x36-banks32", "x18-banks1024"])
def test_dma_dram_ecp5_banks(beat, bank_words, nbytes, seed, tmp_path):
    cfg = with_changes(Config.tiny(), hw=dict(mem_latency=8, mem_bytes_per_cycle=beat,
                                               mem_max_burst=4, mem_max_outstanding=4,
                                               bram_target="ecp5"))
    rng = random.Random(seed)
    image = bytes(rng.randrange(256) for _ in range(nbytes))
    dut = DmaDram(cfg, image, 0, bank_words=bank_words)
    assert dut.dram.hard_banks and dut.dram.banks >= 3
    run_cocotb(dut, "tests.cocotb.test_prefetch_dram_tb", name="dma_dram_ecp5", test_dir=tmp_path,
               seed=seed, simulator="icarus",
               extra_sources=[Path(__file__).parent / "ecp5_models" / "DP16KD.v"],
               params=dict(config=cfg.to_dict(), base=0, image_bytes=nbytes, latency=8))


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not on "
                    "PATH: apt-get install iverilog")
def test_dram_ecp5_banks_write_read(seed, tmp_path):
    """Writes through the hard banks' two write register stages (a copy per bank), the error
    response of a burst past the end, and the whole memory read back."""
    cfg = with_changes(Config.tiny(), hw=dict(mem_latency=8, mem_bytes_per_cycle=8,
                                               mem_max_burst=4, mem_max_outstanding=4,
                                               bram_target="ecp5"))
    nbytes = 1024
    rng = random.Random(seed)
    image = bytes(rng.randrange(256) for _ in range(nbytes))
    dut = OnChipMemory(cfg, image, bank_words=32)
    assert dut.hard_banks and dut.banks == 4
    run_cocotb(dut, "tests.cocotb.test_dram_write_tb", name="dram_ecp5", test_dir=tmp_path,
               seed=seed, simulator="icarus",
               extra_sources=[Path(__file__).parent / "ecp5_models" / "DP16KD.v"],
               params=dict(config=cfg.to_dict(), image_bytes=nbytes))
