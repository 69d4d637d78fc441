"""boards/dse.py and `edge-moe dse`: the Pareto set against a brute force, the chosen board
configs against check_fit, the M3ViT-on-ECP5 refusal, --budget parsing.

The brute force builds every combination of a small knob space as a full Config, keeps the
legal ones (Config validation, check_top_level, TopGeometry, the prefetcher's geometry), costs
each with frame_cost on its own program (no split into attention / rest, no pruning) and the
fit model, and filters dominated points with a naive all-pairs comparison."""
from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from boards.boards import get_board
from boards.dse import (DseError, board_target, budget_target, parse_budget, point_config,
                        search)
from boards.fit import (check_fit, dp16kd_blocks, estimate, lane_multipliers, lut_estimate,
                        other_multipliers)
from edge_moe.cli import main
from edge_moe.commands.config_arg import load_config
from hw.moe.prefetcher import prefetch_geometry
from hw.top.geometry import TopGeometry
from sim.config import Config, ConfigError, check_top_level, get_config
from sim.cycles.frame import frame_cost

SPACE = {"R": [2, 4, 8], "C": [4, 8, 16], "W": [4, 8, 16], "p": [1, 2, 3, 5],
         "dw": [1, 4, 16], "overlap": [True, False]}


def _brute(target, space):
    """{knobs: objectives} of the fitting Pareto points, by building and costing everything."""
    base = get_config("tiny")
    pts = {}
    for R, C, W, p, dw, o in itertools.product(*(space[k] for k in ("R", "C", "W", "p", "dw",
                                                                    "overlap"))):
        hw = replace(base.hw, array_rows=R, array_cols=C, mem_bytes_per_cycle=W,
                     attn_parallel=p, attn_dot_width=dw, attn_overlap=o, mult_budget=None,
                     bram_target=get_config(target.hw_preset).hw.bram_target,
                     buffer_wiring=get_config(target.hw_preset).hw.buffer_wiring,
                     **({} if target.hw_preset == "tiny" else
                        {"mem_latency": get_config(target.hw_preset).hw.mem_latency}))
        try:
            cfg = check_top_level(Config("x", base.model, base.num, hw))
            TopGeometry.of(cfg)
            prefetch_geometry(cfg)
        except (ConfigError, ValueError):
            continue
        f = frame_cost(cfg)
        est = estimate(cfg)
        blocks = sum(target.memory_blocks(m) for m in est.memories
                     if target.frame_memory_on_chip or not m.name.startswith("frame memory"))
        mults = lane_multipliers(cfg) + other_multipliers(cfg)
        luts = lut_estimate(cfg, target.lut_kind)
        if mults > target.dsps or blocks > target.brams or luts > target.luts:
            continue
        obj = (f.cycles, mults, blocks, luts) + (() if target.frame_memory_on_chip else (W,))
        pts[(R, C, W, p, dw, o)] = obj

    def dominated(a):
        return any(all(x <= y for x, y in zip(b, a)) and b != a for b in pts.values())
    return {k: v for k, v in pts.items() if not dominated(v)}, len(pts)


@pytest.mark.parametrize("which", ["ecpix5", "budget"])
def test_pareto_matches_brute_force(which):
    target = (board_target(get_board("ecpix5-85f")) if which == "ecpix5" else
              budget_target("dsp=120,bram_kib=400,lut=40000", "tiny"))
    res = search("tiny", target, values=SPACE)
    got = {(x.R, x.C, x.W, x.p, x.dw, x.overlap): x.objectives(res.with_w) for x in res.pareto}
    want, n_fit = _brute(target, SPACE)
    assert len(want) >= 5, "the space should give a non-trivial Pareto set"
    assert got == want
    assert res.chosen is not None and res.chosen in res.pareto
    # the chosen point: the first, in (cycles, ...) order, of those within 85 % of everything
    ok = sorted(v for v in want.values() if v[1] <= 0.85 * target.dsps
                and v[2] <= 0.85 * target.brams and v[3] <= 0.85 * target.luts)
    assert res.chosen.objectives(res.with_w) == ok[0]


@pytest.mark.parametrize("board", ["ecpix5-85f", "ulx3s-85f"])
def test_tiny_pick_fits_board(board, tmp_path, capsys):
    out = tmp_path / "pick.json"
    assert main(["dse", "--board", board, "--model", "tiny", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "chosen:" in text and "*" in text
    cfg = load_config(str(out))
    b = get_board(board)
    check_fit(b.dev, estimate(cfg))                     # raises FitError if not
    est = estimate(cfg)
    assert est.dsps == lane_multipliers(cfg) + other_multipliers(cfg) <= 0.85 * b.dev.dsps
    assert est.bram_blocks <= 0.85 * b.dev.brams
    assert sum(m.blocks for m in est.memories) == est.bram_blocks
    # the file is the chosen point for this board, and the base model
    assert cfg.model == get_config("tiny").model and cfg.hw.mult_budget == b.dev.dsps
    res = search("tiny", board_target(b))
    assert point_config(res.base, res.chosen, res.target, cfg.name) == cfg


@pytest.mark.parametrize("external", [False, True], ids=["on-chip", "external-memory"])
def test_m3vit_on_ecp5_refused(external, tmp_path, capsys):
    out = tmp_path / "none.json"
    assert main(["dse", "--board", "ecpix5-85f", "--model", "m3vit", "--out", str(out)]
                + (["--external-memory"] if external else [])) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    last = err[-1]
    assert all(ln.startswith("[") for ln in err[:-1])          # the rest: progress lines
    assert last.startswith("edge-moe: error: no legal m3vit config fits on the ecpix5-85f")
    assert "multipliers (the part has 156)" in last and "DP16KD (has 208)" in last
    # the least block RAM of any legal point: the frame memory (weights ...) alone is more
    # than the device; without it, the accelerator's own buffers still are
    need = int(last.split(" DP16KD (has 208)")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert need > 208
    if external:
        assert "frame memory alone" not in last and "accelerator's own memories" in last
    else:
        assert "frame memory alone" in last and "--external-memory" in last


@pytest.mark.parametrize("text, msg", [
    ("dsp=100,lut=5", "missing bram_kib"),
    ("dsp=100,bram_kib=10,lut=5,foo=1", "unknown key 'foo'"),
    ("dsp=1x,bram_kib=10,lut=5", "dsp='1x' is not an integer"),
    ("dsp=100,bram_kib=10,lut=5,dsp=3", "dsp given twice"),
    ("dsp=100,bram_kib=0,lut=5", "bram_kib must be > 0"),
    ("dsp100,bram_kib=10,lut=5", "is not KEY=VALUE"),
    ("dsp=100,bram_kib=10,lut=5,mhz=fast", "mhz='fast' is not a number"),
])
def test_budget_errors(text, msg, capsys):
    with pytest.raises(DseError, match=msg):
        parse_budget(text)
    assert main(["dse", "--budget", text, "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edge-moe: error: --budget:") and msg in err[0]


def test_help_runs(capsys):
    with pytest.raises(SystemExit) as e:
        main(["dse", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "bram_kib=N: block RAM in KiB" in out and "85 % of every" in out


def test_external_memory_bounded_by_board_dram(capsys):
    # ECPIX-5: 400 MB/s of DDR3 at the 50 MHz design clock = 8 bytes per cycle at most
    t = board_target(get_board("ecpix5-85f"), external_memory=True)
    assert not t.frame_memory_on_chip and t.dram_bytes_per_s == 400e6 and t.clock_mhz == 50
    space = {"p": [1, 2], "dw": [1, 4], "W": [4, 8, 16, 32, 64]}
    res = search("tiny", t, values=space)
    assert res.pareto and max(x.W for x in res.pareto) == 8
    # ULX3S: 50 MB/s at 25 MHz = 2 bytes per cycle, less than one 4-byte activation
    assert main(["dse", "--board", "ulx3s-85f", "--model", "tiny", "--external-memory"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "at most 2 bytes per cycle" in err[0], err


def test_budget_units():
    b = parse_budget("dsp=2520, bram_kib=4050, lut=274080, mhz=250, dram_gbs=21.3")
    assert b == {"dsp": 2520, "bram_kib": 4050, "lut": 274080, "mhz": 250.0, "dram_gbs": 21.3}
    t = budget_target("dsp=2520,bram_kib=4050,lut=274080,dram_gbs=4", "tiny")
    assert t.brams == 4050 * 1024 * 8 // (36 * 1024) == 900 and t.bram_kind == "RAMB36"
    assert not t.frame_memory_on_chip and t.clock_mhz == 300.0
    res = search("tiny", t, values={"p": [1, 2]})
    # 4 GB/s at 300 MHz: at most 13 bytes per cycle -> W <= 8
    assert res.pareto and max(x.W for x in res.pareto) <= 8
