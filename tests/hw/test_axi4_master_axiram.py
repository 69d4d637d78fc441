# amaranth: UnusedElaboratable=no
"""Axi4Master's wide AXI (up-sizer) on Verilator against cocotbext-axi's AxiRam.

``Axi4Master(cfg, axi_data_width=128)`` for a 4-byte and an 8-byte memory beat (ratio 4 and 2:
``m3vit-ecp5-85f``'s and ``tiny-ecp5``'s beats on the ECPIX-5's 128-bit LiteDRAM port), random
bursts both ways with random gaps, back-pressure and RAM pauses on every AXI channel, every read
beat and finally every RAM byte compared with a Python byte model
(tests/cocotb/test_axi4_master_axiram_tb.py). An AXI slave written by someone else checks our
reading of AxSIZE / AxLEN / WSTRB, next to the hand slave model of tests/hw/test_axi4_master.py.
"""
from __future__ import annotations

import json

import pytest

from host.cocotb_run import run_cocotb
from hw.link.axi4_master import Axi4Master
from sim.config import get_config, with_changes
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)

AXI_BYTES = 16


@pytest.mark.parametrize("beat", [4, 8])
def test_axi4_master_wide_on_axiram(beat, tmp_path, seed):
    cfg = with_changes(get_config("tiny"), name=f"tiny-beat{beat}",
                       hw={"mem_bytes_per_cycle": beat})
    result = tmp_path / "result.json"
    run_cocotb(Axi4Master(cfg, axi_data_width=8 * AXI_BYTES),
               "tests.cocotb.test_axi4_master_axiram_tb", name=f"axi4_master_w{beat}_{AXI_BYTES}",
               test_dir=tmp_path, seed=seed,
               params=dict(config=cfg.to_dict(), axi_bytes=AXI_BYTES, size=32 * 1024,
                           bursts=48, pause=0.3, result=str(result)))
    res = json.loads(result.read_text())
    print(f"Axi4Master {beat} -> {AXI_BYTES} bytes on AxiRam: {json.dumps(res)}")
    assert res["read_beats"] > 0 and res["write_beats"] > 0
