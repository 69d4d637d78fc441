"""`edge-moe demo`, the README's main command: both tasks of tiny, bit-exact, JSON as documented."""
from __future__ import annotations

import json

from edge_moe.cli import main
from sim.config import get_config


def test_demo_tiny_both_tasks_bit_exact(tmp_path, capsys):
    out = tmp_path / "demo.json"
    assert main(["demo", "--sim", "verilator", "--json", str(out),
                 "--weights-dir", str(tmp_path / "w")]) == 0
    text = capsys.readouterr().out
    assert "bit-exact" in text and "cycles simulated" in text
    r = json.loads(out.read_text())
    cfg = get_config("tiny")
    assert r["config"] == "tiny" and r["sim"] == "verilator"
    assert [t["task"] for t in r["tasks"]] == list(range(cfg.model.tasks))
    for t in r["tasks"]:
        assert t["bit_exact"] is True
        assert t["cycles"] >= cfg.model.linear_macs / cfg.hw.macs_per_cycle
        assert 0 < t["mac_utilization"] <= 1
        assert t["bytes_read"] > (tmp_path / "w" / "weights.bin").stat().st_size // 2
        assert t["max_abs_error_vs_float"] < 0.1      # the golden model's bound (docs/numerics.md)
    assert (tmp_path / "w" / "manifest.json").exists()


def test_demo_rejects_a_bad_task(capsys):
    assert main(["demo", "--task", "7"]) == 2
    assert "task 7 out of range" in capsys.readouterr().err
