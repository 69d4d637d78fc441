"""The config `edge-moe dse` picks for the ECPIX-5 (tiny model) runs a bit-exact frame in
Verilator: written by the CLI as JSON, read back through ``--config``'s loader, run on the top
level's Verilog (host/run.py) and compared with the golden model (sim.golden, via
tests/system/frames.py). The frame's cycles are printed beside the dse estimate."""
from __future__ import annotations

import numpy as np
import pytest

from edge_moe.cli import main
from edge_moe.commands.config_arg import load_config
from host.run import run_frame
from tests.harness.seeds import seed  # noqa: F401
from tests.system.frames import frame_case


@pytest.mark.slow
def test_dse_ecpix5_tiny_frame_verilator(seed, tmp_path, capsys):
    path = tmp_path / "dse.json"
    assert main(["dse", "--board", "ecpix5-85f", "--model", "tiny", "--out", str(path)]) == 0
    chosen = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("chosen:")]
    cfg = load_config(str(path))
    case = frame_case(cfg, seed, 0)
    res = run_frame(cfg, case["qparams"], case["image_q"], 0, sim="verilator",
                    work_dir=tmp_path)
    bad = np.argwhere(res.tokens != case["want"])
    assert not len(bad), (f"{len(bad)} output values differ, first at token/col {bad[0]} "
                          f"(config {cfg.hw}, seed={seed})")
    with capsys.disabled():
        print(f"\ndse config {cfg.hw}: RTL {res.cycles:,} cycles; {chosen}")
