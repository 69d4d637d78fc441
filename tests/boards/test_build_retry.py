"""build_board's LUT-mapping fallback and nextpnr options, with the tool run replaced (no FPGA
tools run here).

The real Yosys dies in its abc9 flow on some of our designs (internal asserts); with
``lut_mapping="auto"`` the build must retry once with the classic ``abc -lut 4:7`` script and
say so in the report, and a failure that is not Yosys' (nextpnr) must not trigger a retry.
"""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from boards import build
from boards.boards import get_board, with_clock
from boards.report import build_table
from sim.config import get_config


def _fake_tools(fail_abc9: bool, fail_pnr: bool = False):
    calls = []

    def run(out, env, timeout, **progress):
        ys = (out / f"{build.TOP_NAME}.ys").read_text()
        classic = "abc -lut 4:7" in ys
        calls.append("abc" if classic else "abc9")
        if fail_abc9 and not classic:
            return subprocess.CompletedProcess([], 1, "ERROR: Assert `...' failed", "")
        (out / f"{build.TOP_NAME}.json").write_text("{}")
        if fail_pnr:
            return subprocess.CompletedProcess([], 1, "ERROR: nextpnr failed", "")
        (out / f"{build.TOP_NAME}.bit").write_bytes(b"\0" * 10)
        (out / f"{build.TOP_NAME}_report.json").write_text(json.dumps({
            "utilization": {"TRELLIS_COMB": {"used": 5, "available": 10}},
            "fmax": {"clk": {"achieved": 50.0, "constraint": 25.0}}}))
        return subprocess.CompletedProcess([], 0, "", "")
    return run, calls


@pytest.mark.parametrize("fail_abc9", [False, True])
def test_auto_falls_back_to_classic_abc(fail_abc9, tmp_path, monkeypatch):
    run, calls = _fake_tools(fail_abc9)
    monkeypatch.setattr(build, "_run_tools", run)
    logs = []
    rep = build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path,
                            design="demo", log=logs.append)
    assert calls == (["abc9", "abc"] if fail_abc9 else ["abc9"])
    assert rep["lut_mapping"] == calls[-1]
    assert rep["fmax_mhz"] == 50.0 and rep["utilization"]["LUT4"]["used"] == 5
    assert any("retrying" in x for x in logs) == fail_abc9


def test_place_and_route_failure_is_not_retried(tmp_path, monkeypatch):
    run, calls = _fake_tools(False, fail_pnr=True)
    monkeypatch.setattr(build, "_run_tools", run)
    with pytest.raises(build.BuildError, match="nextpnr failed"):
        build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path,
                          design="demo", log=lambda s: None)
    assert calls == ["abc9"]


def test_unknown_lut_mapping(tmp_path):
    with pytest.raises(ValueError, match="lut_mapping"):
        build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path,
                          design="demo", lut_mapping="abc10")


@pytest.mark.parametrize("placer", [None, "heap"])
def test_placer_reaches_nextpnr(placer, tmp_path, monkeypatch):
    """The static placer is the default (the accelerator does not route after heap)."""
    run, _ = _fake_tools(False)
    monkeypatch.setattr(build, "_run_tools", run)
    kw = {} if placer is None else {"placer": placer}
    rep = build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path,
                            design="demo", log=lambda s: None, **kw)
    script = (tmp_path / f"build_{build.TOP_NAME}.sh").read_text()
    want = placer or "static"
    assert f"--placer {want} " in script and "--router router2" in script
    assert rep["placer"] == want


@pytest.mark.parametrize("ripup", [False, True])
def test_tmg_ripup_reaches_nextpnr(ripup, tmp_path, monkeypatch):
    run, _ = _fake_tools(False)
    monkeypatch.setattr(build, "_run_tools", run)
    rep = build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path,
                            design="demo", log=lambda s: None, tmg_ripup=ripup)
    script = (tmp_path / f"build_{build.TOP_NAME}.sh").read_text()
    assert ("--tmg-ripup" in script) == ripup and rep["tmg_ripup"] == ripup


def test_unknown_placer(tmp_path):
    with pytest.raises(ValueError, match="placer"):
        build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path,
                          design="demo", placer="annealing")


@pytest.mark.parametrize("timing_driven", [None, False])
def test_placement_timing_reaches_nextpnr(timing_driven, tmp_path, monkeypatch):
    """Timing-driven placement by default; ``timing_driven=False`` passes ``--no-tmdriv`` (the
    default for the accelerator on DRAM only, whose M3ViT build routes only that way)."""
    run, _ = _fake_tools(False)
    monkeypatch.setattr(build, "_run_tools", run)
    rep = build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path,
                            design="demo", log=lambda s: None, timing_driven=timing_driven)
    script = (tmp_path / f"build_{build.TOP_NAME}.sh").read_text()
    assert ("--no-tmdriv" in script) == (timing_driven is False)
    assert rep["timing_driven_placement"] == (timing_driven is None)
    assert [build.default_timing_driven(d, m) for d, m in
            (("top", True), ("demo", True), ("top", False), ("demo", False))] == \
        [False, True, True, True]


DCC_ERROR = ("ERROR: Failed to route arc 0.0 of net 'system.device.top.gemm.engine.epi."
             "en_global.dcca_in', from X67/Y25/F3_SLICE to X0/Y0/G_CLKI_TDCC0.")


@pytest.mark.parametrize("failures", [1, build.DCC_RETRIES + 1])
def test_clock_buffer_route_failure_is_placed_and_routed_again(failures, tmp_path,
                                                               monkeypatch):
    """router2's "no route to a DCCA input" depends on where the placer put the driver: the
    build reruns nextpnr alone with the next seed, at most DCC_RETRIES times."""
    ok, _ = _fake_tools(False)
    scripts = []

    def run(out, env, timeout, script_name=None, **kw):
        name = script_name or f"build_{build.TOP_NAME}.sh"
        scripts.append((out / name).read_text())
        if len(scripts) <= failures:
            if script_name is None:
                (out / f"{build.TOP_NAME}.json").write_text("{}")   # Yosys ran
            (out / f"{build.TOP_NAME}.tim").write_text("Info: Running router2...\n" + DCC_ERROR)
            return subprocess.CompletedProcess([], 1, "", "")
        return ok(out, env, timeout)
    monkeypatch.setattr(build, "_run_tools", run)
    logs = []
    call = lambda: build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"),  # noqa
                                     tmp_path, design="demo", seed=7, log=logs.append)
    if failures > build.DCC_RETRIES:
        with pytest.raises(build.BuildError, match="G_CLKI_TDCC0"):
            call()
        assert len(scripts) == build.DCC_RETRIES + 1
        return
    rep = call()
    assert rep["seed"] == 8 and rep["seeds_tried"] == [7, 8]
    first, again = scripts
    assert '"$YOSYS"' in first and "--seed 7 " in first
    assert '"$YOSYS"' not in again and "--seed 8 " in again and '"$ECPPACK"' in again
    assert (tmp_path / f"{build.TOP_NAME}_seed7.tim").read_text().endswith(DCC_ERROR)
    assert any("seed 8" in x for x in logs)


def _seeded_tools(fmax_by_seed: dict[int, float | None]):
    """Fake tools whose routed Fmax depends on the script's ``--seed`` (None: the run fails)."""
    seeds = []

    def run(out, env, timeout, script_name=None, **kw):
        text = (out / (script_name or f"build_{build.TOP_NAME}.sh")).read_text()
        seed = int(re.search(r"--seed (\d+)", text).group(1))
        seeds.append(seed)
        (out / f"{build.TOP_NAME}.json").write_text("{}")
        if fmax_by_seed[seed] is None:
            return subprocess.CompletedProcess([], 1, "", "ERROR: router2 gave up")
        (out / f"{build.TOP_NAME}.bit").write_bytes(bytes([seed]))
        (out / f"{build.TOP_NAME}_report.json").write_text(json.dumps({
            "utilization": {"TRELLIS_COMB": {"used": 5, "available": 10}},
            "fmax": {"clk": {"achieved": fmax_by_seed[seed], "constraint": 100.0}}}))
        return subprocess.CompletedProcess([], 0, "", "")
    return run, seeds


@pytest.mark.parametrize("fmax, seeds, ran, kept", [
    ({3: 80.0, 4: 90.0, 5: 85.0, 6: 99.0}, 3, [3, 4, 5], 4),    # none meets 100: the fastest
    ({3: 80.0, 4: 101.0, 5: 120.0}, 3, [3, 4], 4),              # stops at the first that meets
    ({3: 80.0, 4: None, 5: 70.0}, 3, [3, 4, 5], 3),             # a failed run is skipped
    ({3: 80.0}, 1, [3], 3),                                      # no sweep by default
])
def test_seed_sweep_keeps_the_fastest(fmax, seeds, ran, kept, tmp_path, monkeypatch):
    run, called = _seeded_tools(fmax)
    monkeypatch.setattr(build, "_run_tools", run)
    logs = []
    board = with_clock(get_board("ulx3s-85f"), 100)
    rep = build.build_board(board, get_config("tiny-ecp5"), tmp_path, design="demo", seed=3,
                            seeds=seeds, log=logs.append)
    assert called == ran and rep["seeds_tried"] == ran
    assert rep["seed"] == kept and rep["fmax_mhz"] == fmax[kept]
    assert (tmp_path / f"{build.TOP_NAME}.bit").read_bytes() == bytes([kept])
    if seeds == 1:
        assert rep["seed_sweep"] is None
        return
    assert [r["seed"] for r in rep["seed_sweep"]["runs"]] == ran
    assert rep["seed_sweep"]["met_clock"] == (fmax[kept] >= 100)
    for s in ran:      # each run's outputs are kept under seed<N>/
        assert (tmp_path / f"seed{s}" / f"{build.TOP_NAME}.bit").is_file() == (fmax[s] is not None)
    assert any(f"kept seed {kept}" in x for x in logs)
    assert f"; kept {kept}" in build_table(rep)


def test_seeds_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="seeds"):
        build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path,
                          design="demo", seeds=0)


def test_other_route_failures_are_not_retried(tmp_path, monkeypatch):
    calls = []

    def run(out, env, timeout, script_name=None, **kw):
        calls.append(script_name)
        (out / f"{build.TOP_NAME}.json").write_text("{}")
        (out / f"{build.TOP_NAME}.tim").write_text(
            "ERROR: Failed to route arc 3.0 of net 'x', from X1/Y1/F0_SLICE to X2/Y2/A0_SLICE.")
        return subprocess.CompletedProcess([], 1, "", "")
    monkeypatch.setattr(build, "_run_tools", run)
    with pytest.raises(build.BuildError):
        build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path,
                          design="demo", log=lambda s: None)
    assert calls == [None]
