"""``edge-moe report``: the multiplier table, the clock's source, the published-budget variant,
the JSON fields and ``--plot``.
"""
from __future__ import annotations

import json

import pytest

import yaml

from boards.boards import default_build_dir
from boards.litedram_core import CONFIG_DIR
from edge_moe.cli import main
from edge_moe.commands.report import (PUBLISHED_MULTS, published_budget_variant, report,
                                      report_clock)
from edge_moe.commands.report_plot import plot_frame
from sim.config import Config, check_top_level, get_config, with_changes
from sim.cycles.frame import frame_cost
from sim.cycles.timeline import TIMELINE_UNITS, frame_timeline
from sim.multipliers import multiplier_inventory

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_published_budget_is_256_plus_two_32_wide_dots():
    assert PUBLISHED_MULTS == 16 * 16 + 2 * 32


def test_clock_source(tmp_path):
    # tiny-ecp5 is the default config of the ULX3S and the ECPIX-5, both at 50 MHz from their
    # PLLs: boards/boards.py. tmp_path: a build root without routed builds.
    mhz, src = report_clock(get_config("tiny-ecp5"), tmp_path)
    assert mhz == 50.0 and src.startswith("design clock of board ulx3s-85f")
    assert "ecpix5-85f runs it at 50 MHz" in src
    for name in ("tiny", "m3vit-tiny-cityscapes"):
        cfg = get_config(name)
        assert report_clock(cfg, tmp_path) == (cfg.hw.clock_mhz, "assumed (no routed build)")


def _yml_clock_mhz(board: str) -> float:
    """The LiteDRAM user clock straight from the board's LiteDRAM config file."""
    return yaml.safe_load((CONFIG_DIR / f"{board}.yml").read_text())["sys_clk_freq"] / 1e6


def test_dram_board_config_at_the_litedram_clock(tmp_path):
    """m3vit-ecp5-85f is the ECPIX-5 DRAM build's config: timed at the LiteDRAM user clock
    (50 MHz, not its hw.clock_mhz 100), memory at the 3.77 B/cycle measured for the 4-byte
    beat on the board's LiteDRAM core (docs/boards.md)."""
    cfg = get_config("m3vit-ecp5-85f")
    f = frame_cost(cfg)
    r = report(cfg, f, tmp_path)
    mhz = _yml_clock_mhz("ecpix5-85f")
    assert mhz == 50.0 != cfg.hw.clock_mhz
    assert r["clock_mhz"] == mhz
    assert r["clock_source"].startswith("LiteDRAM user clock of board ecpix5-85f's DRAM build")
    assert r["ms_per_frame"] == pytest.approx(f.cycles / (50e6 / 1e3))
    assert r["memory_bytes_per_cycle"] == 3.77 and "measured" in r["memory_source"]
    nbytes = f.bytes_read + f.bytes_written
    assert r["memory_cycles"] == -(-nbytes * 100 // 377)
    assert r["memory_extra_cycles_bound"] == r["memory_cycles"] - nbytes // 4
    assert r["ms_per_frame_memory_bound"] == pytest.approx(
        (f.cycles + r["memory_extra_cycles_bound"]) / 50e3)


def _routed(root, board, cfg_name, *, dram, clock_mhz, fmax_mhz):
    d = root / default_build_dir(board, cfg_name, "top", dram)
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps({
        "board": board, "config": cfg_name, "design": "top", "dram": {"phy": "x"} if dram
        else None, "clock_mhz": clock_mhz, "fmax_mhz": fmax_mhz}))
    return d


def test_routed_build_gives_the_clock(tmp_path, capsys):
    d = _routed(tmp_path, "ecpix5-85f", "m3vit-ecp5-85f", dram=True, clock_mhz=50.0,
                fmax_mhz=41.3)
    out = tmp_path / "r.json"
    assert main(["report", "--no-cpu-baseline", "--config", "m3vit-ecp5-85f", "--build-root",
                 str(tmp_path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["clock_mhz"] == 50.0
    assert r["clock_source"] == (f"LiteDRAM user clock of the routed build {d} (ecpix5-85f; "
                                 f"nextpnr Fmax 41.3 MHz, below the clock: the bitstream misses "
                                 f"timing, this time is optimistic)")
    cycles = frame_cost(get_config("m3vit-ecp5-85f")).cycles
    assert r["cycles_per_frame"] == cycles
    assert r["ms_per_frame"] == pytest.approx(cycles / 50e3)
    assert f"{cycles / 50e3:.3f} ms at 50 MHz" in text
    # an on-chip build of another config: its design clock, met timing
    _routed(tmp_path, "ulx3s-85f", "tiny", dram=False, clock_mhz=20.0, fmax_mhz=31.0)
    mhz, src = report_clock(get_config("tiny"), tmp_path)
    assert mhz == 20.0 and src.endswith("(ulx3s-85f; nextpnr Fmax 31.0 MHz)"), src


def test_report_json_has_the_new_fields(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["report", "--no-cpu-baseline", "--config", "tiny-ecp5", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "design clock of board ulx3s-85f" in text and "multipliers doing work" in text
    r = json.loads(out.read_text())
    cfg = get_config("tiny-ecp5")
    assert r["clock_mhz"] == 50.0 and r["clock_source"].startswith("design clock of board")
    assert r["ms_per_frame"] == pytest.approx(r["cycles_per_frame"] / 50e3)
    assert r["published_budget"] is None          # not the published workload
    units = r["units"]
    assert set(units) >= {"array", "attention", "layernorm", "router", "dma"}
    total = sum(g["count"] for g in r["multipliers"] if g["kind"] != "shift-add")
    assert r["multipliers_total"] == total == sum(u["multipliers"] for u in units.values())
    assert units["array"]["multipliers"] == cfg.hw.macs_per_cycle
    assert units["dma"]["multipliers"] == 0
    cyc = r["cycles_per_frame"]
    for u in units.values():
        assert 0 <= u["busy_cycles"] <= cyc
        assert u["busy_fraction"] == pytest.approx(u["busy_cycles"] / cyc)
    # the array's busy cycles are its useful MACs: its multiplier-cycles alone are a lower bound
    array_work = cfg.hw.macs_per_cycle * units["array"]["busy_cycles"]
    assert array_work / (total * cyc) <= r["multipliers_doing_work"] < 1
    assert r["macs_per_multiplier_cycle"] == pytest.approx(
        cfg.model.macs_per_frame / (cyc * total))
    assert set(r["timeline"]) == set(TIMELINE_UNITS)
    assert all("start" in x for x in r["layers"])


def test_published_budget_variant_fits_320():
    cfg = get_config("m3vit-tiny-cityscapes")
    v, cycles = published_budget_variant(cfg)
    h = v.hw
    assert (h.array_rows, h.array_cols) == (16, 16)
    dots = h.macs_per_cycle + 2 * h.attn_parallel * h.attn_dot_width
    assert dots <= PUBLISHED_MULTS and h.mult_budget == PUBLISHED_MULTS
    # the inventory's array + QK/AV multipliers are what the budget counts
    inv = multiplier_inventory(v)
    assert sum(g.count for g in inv if g.unit == "array") + sum(
        g.count for g in inv if g.what.startswith(("QK", "AV"))) == dots
    # a legal config (constructing it validated it) with the model untouched
    assert isinstance(check_top_level(v), Config) and v.model == cfg.model
    assert cycles == frame_cost(v).cycles > frame_cost(cfg).cycles
    # no other split of the 64 attention multipliers is faster
    for p, dw in ((2, 16), (4, 8)):
        other = with_changes(v, hw=dict(attn_parallel=p, attn_dot_width=dw))
        assert frame_cost(other).cycles >= cycles, (p, dw)


def test_published_budget_in_m3vit_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["report", "--no-cpu-baseline", "--config", "m3vit-tiny-cityscapes", "--json", str(out)]) == 0
    pb = json.loads(out.read_text())["published_budget"]
    assert pb["multipliers"] == 320 and pb["array_attention_multipliers"] <= 320
    assert f"{pb['cycles_per_frame']:,} cycles per frame" in capsys.readouterr().out


def test_plot_writes_a_png_with_one_bar_per_interval(tmp_path, capsys):
    path = tmp_path / "frame.png"
    assert main(["report", "--no-cpu-baseline", "--config", "tiny", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert f"wrote {path}" in capsys.readouterr().out
    cfg = get_config("tiny")
    f = frame_cost(cfg)
    path2 = tmp_path / "direct.png"
    fig = plot_frame(cfg, f, path2)
    assert path2.read_bytes()[:8] == PNG_SIGNATURE
    top, bottom = fig.axes[:2]
    intervals = sum(len(v) for v in frame_timeline(cfg, f).values())
    assert len(top.patches) == intervals
    bars = sorted((round(p.get_x()), round(p.get_width())) for p in top.patches)
    assert bars == sorted((s, e - s) for v in frame_timeline(cfg, f).values() for s, e in v)
    with_macs = [x for x in f.layers if x.macs]
    assert len(bottom.patches) == len(with_macs)
    heights = sorted(p.get_height() for p in bottom.patches)
    rc = cfg.hw.macs_per_cycle
    assert heights == pytest.approx(sorted(x.macs / (x.cycles * rc) for x in with_macs))


def test_report_function_tiny_has_no_published_budget():
    assert report(get_config("tiny"))["published_budget"] is None


def test_report_times_the_same_frame_in_pytorch(tmp_path, capsys):
    # the CPU baseline runs the whole float encoder of the config's model (output: tokens x dim)
    # and the printed ratio is its median over the accelerator's ms/frame at the report clock
    out = tmp_path / "r.json"
    assert main(["report", "--config", "tiny", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    c = r["cpu_baseline"]
    cfg = get_config("tiny")
    assert c["tokens"] == [cfg.model.tokens, cfg.model.dim]
    assert c["runs"] == 5 and 0 < c["ms_best"] <= c["ms_median"] and c["threads"] >= 1
    line = next(x for x in text.splitlines() if x.strip().startswith("PyTorch on this CPU"))
    ratio = float(line.rsplit("MHz: ", 1)[1].split("x")[0])
    assert ratio == pytest.approx(c["ms_median"] / r["ms_per_frame"], rel=0.01, abs=0.01)
