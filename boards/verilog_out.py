r"""Verilog of an Amaranth design that simulates the same in Verilator and Icarus (-g2005, -g2012).

``convert(elaboratable, name=..., ports=...)`` is ``amaranth.back.verilog.convert`` with one pass
changed: Yosys lowers Amaranth's combinational processes to multiplexers (``proc -norom``)
instead of keeping them as processes (``proc -nomux -norom``, Amaranth's choice, which gives
case statements). Everything else (the RTLIL, ``memory_collect``, ``write_verilog -norename``)
is Amaranth 0.5's own script.

Why: ``write_verilog`` prints each remaining process as an ``always @*`` block, and two of its
idioms only work where a declaration initialiser makes a time-0 event (Verilog-2005):

- a dummy trigger ``reg \$auto$verilog_backend.cc:...$1 = 0;`` read by ``if (...) begin end`` at
  the top of every ``always @*``, so that each block runs once at time 0. In SystemVerilog
  (IEEE 1800 6.8, Icarus ``-g2012``, cocotb's default) a declaration initialiser is applied
  before any process starts and makes no event, so a block whose real inputs never change keeps
  its outputs at X (LayerNorm outputs went X and the frame never finished);
- constant or slice assignments such as ``always @* cmd__payload[79:48] = 32'd0;`` which have no
  trigger at all and so never run under Icarus ``-g2012``.

With the processes lowered to ``$mux`` / ``$pmux`` cells the netlist has no process left, so
``write_verilog`` prints only ``assign`` statements (``$pmux`` as a ``function`` called from an
``assign``), clocked ``always @(posedge ...)`` blocks and memory ``initial`` blocks: no dummy
trigger and no ``always @*``. The logic is the same (``proc_mux`` is the pass every synthesis
flow runs on these processes anyway); Verilator sees the same values cycle for cycle.

One text edit follows: a ``$pmux`` function keeps the cell's name, e.g. ``\$procmux$454``, and
Icarus (11) takes a call of an escaped name that starts with ``$`` for a system function call
("System function $procmux$454 not defined"). :func:`rename_functions` renames those functions
``\fn$procmux$454`` (declaration, return variable and calls). The Yosys that Amaranth ships has
no ``pmuxtree`` or ``rename`` pass that would avoid it.
"""
from __future__ import annotations

import re

from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil

__all__ = ["convert", "rename_functions", "YOSYS_SCRIPT"]

# amaranth/back/verilog.py (0.5) _convert_rtlil_text, with "proc -nomux -norom" -> "proc -norom"
YOSYS_SCRIPT = ("proc -norom", "memory_collect", "write_verilog -norename")


def _run_yosys(rtlil_text: str, passes) -> str:
    # The same Yosys and version requirement as amaranth.back.verilog.
    yosys = find_yosys(lambda ver: ver >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil", *passes]
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)


_FUNCTION = re.compile(r"^[ \t]*function (?:\[[^\]\n]*\] )?\\(\$\S+)[ \t]*;", re.M)
# An escaped identifier runs from the backslash to the next white space.
_ESCAPED = re.compile(r"\\(\$\S+)(?=\s)")
_ANY_ESCAPED = re.compile(r"\\(\S+)(?=\s)")


def rename_functions(verilog_text: str) -> str:
    """Rename each function whose escaped name starts with ``$`` (``\\$x`` -> ``\\fn$x``)
    everywhere in the text; other identifiers are untouched."""
    names = set(_FUNCTION.findall(verilog_text))
    if not names:
        return verilog_text
    existing = set(_ANY_ESCAPED.findall(verilog_text))
    clash = {n for n in names if "fn" + n in existing}
    if clash:
        raise ValueError(f"rename_functions: identifier \\fn{min(clash)} already exists")
    return _ESCAPED.sub(lambda m: "\\fn" + m[1] if m[1] in names else m[0], verilog_text)


def convert(elaboratable, name: str = "top", *, ports=None, **kwargs) -> str:
    """Verilog text of ``elaboratable`` as module ``name`` (``ports`` as for Amaranth's
    ``convert``; a ``wiring.Component``'s are inferred), with no ``always @*`` process."""
    rtlil_text = rtlil.convert(elaboratable, name=name, ports=ports, **kwargs)
    return rename_functions(_run_yosys(rtlil_text, YOSYS_SCRIPT))
