"""``edge-moe build --synth-only``: Yosys alone, then the logic-depth report (no FPGA tools run
here: the tool run is replaced and writes a small hand-built netlist)."""
from __future__ import annotations

import json
import subprocess

from boards import build
from boards.boards import get_board
from boards.report import build_table
from sim.config import get_config
from tests.boards.test_ecp5_depth import _ff, _lut, _netlist


def test_synth_only_runs_yosys_alone_and_reports_depth(tmp_path, monkeypatch):
    ran = []

    def run(out, env, timeout, script_name=None, **progress):
        ran.append((out / script_name).read_text())
        # FF -> 12 LUTs in a row -> FF: deeper than the 10 ns of the config's 100 MHz target
        cells = {"ff0": _ff(10, 3, "/x/hw/a.py:1")}
        for k in range(12):
            cells[f"l{k}"] = _lut(3 + k, 4 + k)
        cells["ff1"] = _ff(15, 16, f"{build.REPO_ROOT}/hw/deep.py:9")
        (out / f"{build.TOP_NAME}.json").write_text(json.dumps(_netlist(cells)))
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(build, "_run_tools", run)
    cfg = get_config("tiny-ecp5")
    rep = build.build_board(get_board("ulx3s-85f"), cfg, tmp_path, design="demo",
                            synth_only=True, log=lambda s: None)
    (script,) = ran
    tools = [ln for ln in script.splitlines() if ln.startswith('"$')]
    assert tools == [ln for ln in tools if ln.startswith('"$YOSYS"')] and len(tools) == 1
    assert rep["bitstream"] is None and "fmax_mhz" not in rep
    depth = rep["logic_depth"]
    assert depth["budget_ns"] == 1e3 / cfg.hw.clock_mhz
    assert depth["over_budget"] == 1 and depth["groups"][0]["source"] == "hw/deep.py:9"
    assert json.loads((tmp_path / "logic_depth.json").read_text())["endpoints"] == 2
    text = build_table(rep)
    assert "not placed (--synth-only)" in text and "hw/deep.py:9" in text


def test_depth_of_a_netlist_that_is_not_yosys_json_is_reported_not_raised(tmp_path):
    (tmp_path / f"{build.TOP_NAME}.json").write_text("{}")
    depth = build.logic_depth(tmp_path, get_config("tiny-ecp5"))
    assert "is not a Yosys JSON netlist" in depth["error"]
