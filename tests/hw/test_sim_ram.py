# amaranth: UnusedElaboratable=no
"""OnChipMemory's ``array="verilog"`` (hw/mem/sim_ram.v) arguments and its hex file.

The array itself runs in every Verilator frame (host/run.py builds the DRAM model with it):
tests/system/test_top_frame_verilator.py loads it through the host port,
tests/system/test_m3vit_board_frame.py preloads it from the hex file, both bit-exact.
"""
from __future__ import annotations

import pytest

from hw.mem.onchip_memory import OnChipMemory, write_hex
from sim.config import Config


def test_verilog_array_arguments():
    """Sized from ``size`` with no image; an image or an unknown array is refused."""
    cfg = Config.tiny()
    W = cfg.hw.mem_bytes_per_cycle
    assert OnChipMemory(cfg, size=5 * W + 1, array="verilog").depth == 6
    with pytest.raises(ValueError, match="no initial image"):
        OnChipMemory(cfg, bytes(W), array="verilog")
    with pytest.raises(ValueError, match="array must be one of"):
        OnChipMemory(cfg, size=W, array="sram")


def test_write_hex(tmp_path):
    """One little-endian word per line, most significant digit first, the last word zero padded
    (against hand-written words)."""
    write_hex(tmp_path / "m.hex", bytes([0x01, 0x02, 0x03, 0x04, 0x05, 0x06]), 4)
    assert (tmp_path / "m.hex").read_text() == "04030201\n00000605\n"
    write_hex(tmp_path / "w.hex", bytes(range(1, 9)), 8)
    assert (tmp_path / "w.hex").read_text() == "0807060504030201\n"
