"""Per-cycle stimulus for small components, on Amaranth's simulator and on Icarus Verilog.

A run drives the component's input ports from arrays (one value per cycle) and samples every
output port each cycle after the inputs settle, just before the clock edge; both runners take
and return the same ``{port: array}`` form, so a test can check the RTL, an ``Instance``-based
variant in Icarus and an independent numpy reference against one another.

:func:`pipeline_reference` is the reference for any pipeline with one clock enable: the output
during cycle t is the function of the inputs of the ``latency``-th most recent enabled cycle
before t (for latency 0, of cycle t itself).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from amaranth.hdl import Module, Shape, Signal
from amaranth.sim import Simulator

from boards.verilog_out import convert

__all__ = ["pipeline_reference", "run_pysim", "run_icarus", "extreme_operands"]


def extreme_operands(rng, shape: Shape, n: int) -> np.ndarray:
    """``n`` random values of ``shape`` with its extremes (min, max, 0, +-1) mixed in."""
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    hi = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
    vals = rng.integers(lo, hi + 1, size=n, dtype=np.int64)
    special = np.array([v for v in (lo, hi, 0, 1, -1, lo + 1, hi - 1) if lo <= v <= hi])
    pick = rng.random(n) < 0.3
    vals[pick] = rng.choice(special, size=int(pick.sum()))
    return vals


def pipeline_reference(values: np.ndarray, en: np.ndarray, latency: int):
    """(expected, defined): ``expected[t] = values[s]`` where ``s`` is the ``latency``-th most
    recent cycle before ``t`` with ``en`` set (``s = t`` for latency 0); ``defined[t]`` is False
    where fewer than ``latency`` enabled cycles precede ``t``."""
    n = len(values)
    expected = np.zeros(n, dtype=object)
    defined = np.zeros(n, dtype=bool)
    enabled = []
    for t in range(n):
        if latency == 0:
            expected[t], defined[t] = values[t], True
        elif len(enabled) >= latency:
            expected[t], defined[t] = values[enabled[-latency]], True
        if en[t]:
            enabled.append(t)
    return expected, defined


def run_pysim(dut, inputs: dict, outputs, domain_reset_cycles: int = 2) -> dict:
    """Run ``dut`` (a ``wiring.Component`` in the ``sync`` domain) in pysim on ``inputs``."""
    n = len(next(iter(inputs.values())))
    got = {name: np.zeros(n, dtype=object) for name in outputs}

    async def bench(ctx):
        for _ in range(domain_reset_cycles):
            await ctx.tick()
        for t in range(n):
            for name, vals in inputs.items():
                ctx.set(getattr(dut, name), int(vals[t]))
            for name in outputs:
                got[name][t] = ctx.get(getattr(dut, name))
            await ctx.tick()

    top = Module()              # a sync domain even for a dut without registers
    top.submodules.dut = dut
    toggle = Signal()
    top.d.sync += toggle.eq(~toggle)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


_PORT = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s*)?\\?(\w+)\s*;",
                   re.M)


def run_icarus(dut, inputs: dict, outputs, tmp_path: Path, sources=(),
               reset_cycles: int = 2) -> dict:
    """Convert ``dut`` to Verilog (``boards.verilog_out.convert``), compile it with ``sources``
    (e.g. models of the vendor cells it instantiates) and a generated testbench with Icarus
    (``-g2005``), run it on ``inputs`` and return the sampled ``outputs``."""
    verilog = convert(dut, "dut")
    header = verilog[verilog.index("module dut"):verilog.index("endmodule")]
    # the module's own ports only (a function inside it, e.g. an Array's mux, has inputs too)
    ports = set(re.findall(r"[\w$]+", header[header.index("("):header.index(")")]))
    found = [(d, msb, name) for d, msb, name in _PORT.findall(header) if name in ports]
    widths = {name: int(msb) + 1 if msb else 1 for _, msb, name in found}
    dirs = {name: d for d, _, name in found}
    for name in [*inputs, *outputs]:
        if name not in dirs:
            raise ValueError(f"run_icarus: port {name!r} not in the module ({sorted(dirs)})")
    n = len(next(iter(inputs.values())))
    in_names = list(inputs)
    total = sum(widths[k] for k in in_names)
    with open(tmp_path / "vectors.hex", "w") as f:
        for t in range(n):
            word = 0
            for k in in_names:
                word = (word << widths[k]) | (int(inputs[k][t]) & ((1 << widths[k]) - 1))
            f.write(f"{word:x}\n")
    decl = "\n".join(f"  {'reg' if dirs[k] == 'input' else 'wire'} [{widths[k] - 1}:0] {k};"
                     for k in dirs if k not in ("clk", "rst"))
    conns = ", ".join(f".{k}({k})" for k in dirs)
    tb = f"""`timescale 1ns / 1ps
module tb;
  reg clk = 0, rst = 1;
{decl}
  dut u ({conns});
  reg [{total - 1}:0] vec [0:{n - 1}];
  integer t, f;
  initial begin
    $readmemh("vectors.hex", vec);
    f = $fopen("outputs.txt", "w");
    {{{", ".join(in_names)}}} = 0;
    repeat ({reset_cycles}) begin #1 clk = 1; #1 clk = 0; end
    rst = 0;
    for (t = 0; t < {n}; t = t + 1) begin
      {{{", ".join(in_names)}}} = vec[t];
      #1 $fdisplay(f, "{" ".join(["%h"] * len(outputs))}", {", ".join(outputs)});
      clk = 1; #1 clk = 0;
    end
    $fclose(f);
    $finish;
  end
endmodule
"""
    (tmp_path / "dut.v").write_text(verilog)
    (tmp_path / "tb.v").write_text(tb)
    exe = tmp_path / "sim.vvp"
    cmd = [shutil.which("iverilog"), "-g2005", "-o", str(exe), "-s", "tb",
           str(tmp_path / "tb.v"), str(tmp_path / "dut.v"), *map(str, sources)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    run = subprocess.run([shutil.which("vvp"), "-n", str(exe)], cwd=tmp_path,
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise AssertionError(f"vvp failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    rows = (tmp_path / "outputs.txt").read_text().split("\n")[:n]
    got = {name: np.zeros(n, dtype=object) for name in outputs}
    for t, row in enumerate(rows):
        for name, word in zip(outputs, row.split()):
            got[name][t] = None if "x" in word.lower() else int(word, 16)
    return got
