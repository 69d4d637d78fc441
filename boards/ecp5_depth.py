"""Every register stage of a synthesized ECP5 netlist priced by logic depth: where 100 MHz breaks.

nextpnr names one critical path per clock, so closing timing one routed build at a time (~10 min
each) moves the worst path to the next unit and says nothing about the hundreds of endpoints
just behind it. This module walks the netlist nextpnr reads (the Yosys JSON after
``synth_ecp5``: ``<build dir>/edge_moe.json``) and prices *every* endpoint's deepest path with a
per-cell delay model for the ECP5 speed grade 6 plus a fixed delay per routed net
(:data:`DELAYS`), then groups the endpoints over a budget by the Python source line of their
register (the ``src`` attribute Amaranth writes on every cell). The result is a list of the
register stages to cut, ranked, for the whole design at once.

A net costs ``net + fanout * sqrt(sinks - 1)`` (the sinks spread over an area, the route grows
with its side). Its two constants were chosen on the session-12 ULX3S build (routed worst path
18.2 ns; its nets: one to four sinks 0.1-1.4 ns, 18 sinks 2.5 ns, LayerNorm's shift amount with
446 sinks 6.6 ns) so that the estimated worst stage is the routed one (19.0 ns) with per-net
delays in that range; a net behind a ``DCCA`` (an enable put on a global network by
``hw.fanout_target``) costs ``global`` whatever its fanout.

It is an **estimate from logic depth**, not a timing result: the fixed net delay stands for the
average routed net of our ULX3S builds (calibrated on them, see :data:`DELAYS`); long or
congested nets, global-clock-enable insertion and placement are not modelled. Stages the model
puts well over the budget are the ones no placement will rescue.

Cell models (prjtrellis' ECP5 cells as ``synth_ecp5`` leaves them):

- ``TRELLIS_FF``: start at Q; ends at DI, M, CE and LSR (clock enable and set/reset are
  synchronous inputs that must settle like data).
- ``LUT4``, ``PFUMX`` / ``L6MUX21`` (the slice's wide-function muxes: their LUT inputs come
  through dedicated wires, no route), ``CCU2C`` (2-bit carry cell: A/B/C/D -> S/COUT, and CIN ->
  COUT through the dedicated chain, no route).
- ``MULT18X18D``: combinational A/B -> P unless ``REG_OUTPUT_CLK`` or ``REG_PIPELINE_CLK`` is
  set; a set ``REG_INPUTA_CLK`` / ``REG_INPUTB_CLK`` ends the path at A/B.
- ``DP16KD``: its outputs start a path (clock-to-out with or without ``REGMODE`` OUTREG); its
  address / data / enable inputs end one.
- ``TRELLIS_DPR16X4`` (LUT RAM): RAD -> DO is combinational; DO also starts a path (write clock
  to out); WAD / DI / WRE end one.
- ``ALU54B``: treated as combinational from its inputs unless its output register is used.
- I/O buffers, clock cells and PLLs: a path starts or ends there (a port).
"""
from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path

from boards.xilinx_depth import _Graph, _str_param

__all__ = ["DELAYS", "analyze_netlist", "analyze_file", "analyze_routed", "format_report"]

# ns, ECP5 speed grade 6 (LFE5U-85F-6 on the ULX3S). Cell delays from the prjtrellis timing
# database nextpnr-ecp5 uses (rounded); the MULT18X18D and DP16KD figures are the ones quoted in
# issue 17 (combinational multiply ~3.9 ns, block RAM clock-to-data ~5.8 ns without the output
# register, ~1 ns with it). ``net`` / ``fanout``: see the module docstring.
DELAYS = {
    "ff_clk_to_q": 0.50,
    "ff_setup": 0.15,       # DI / M
    "ce_setup": 0.25,       # CE and LSR
    "net": 0.60,
    "fanout": 0.20,         # x sqrt(sinks - 1)
    "global": 1.50,         # DCCA (an enable on a global network): buffer + spine, any fanout
    "lut": 0.40,            # LUT4 any input -> Z
    "wide_mux": 0.25,       # PFUMX / L6MUX21 (from its in-slice LUTs)
    "mux_select": 0.45,     # PFUMX C0 / L6MUX21 SD select input -> Z
    "carry_in": 0.45,       # CCU2C A/B/C/D -> S or COUT
    "carry_through": 0.10,  # CCU2C CIN -> COUT / S (2 bits, dedicated chain)
    "mult_comb": 3.90,      # MULT18X18D A/B -> P, no pipeline / output register
    "mult_clk_to_out": 1.00,
    "mult_setup": 0.20,
    "bram_clk_to_out": 5.80,
    "bram_clk_to_out_reg": 1.00,
    "bram_setup": 0.20,
    "lutram_read": 0.45,    # TRELLIS_DPR16X4 RAD -> DO
    "lutram_clk_to_out": 1.20,
}

FF = {"TRELLIS_FF"}
LUTS = {"LUT4"}
WIDE_MUX = {"PFUMX", "L6MUX21"}
CARRIES = {"CCU2C"}
MULTS = {"MULT18X18D"}
BRAMS = {"DP16KD"}
LUTRAMS = {"TRELLIS_DPR16X4"}
# cells at the chip's edge or on clock nets: a path starts / ends there like at a port
BOUNDARY = re.compile(r"^(TRELLIS_IO|TRELLIS_COMB_?IO|IB|OB|BB|DCSC|EHXPLLL|CLKDIVF|"
                      r"ECLKSYNCB|ECLKBRIDGECS|DDRDLLA|DLLDELD|DQSBUFM|IOLOGIC|SIOLOGIC|"
                      r"ODDRX\w*|IDDRX\w*|OSHX2A|TSHX2DQ\w*|DELAYF|DELAYG|USRMCLK|GSR|SGSR|"
                      r"JTAGG|OSCG|DTR|VHI|VLO|\$scopeinfo)$")


def _is_reg(cell: dict, name: str) -> bool:
    v = _str_param(cell, name, "NONE").strip('"')
    return v not in ("", "NONE")


class _Ecp5Graph(_Graph):
    """:class:`boards.xilinx_depth._Graph` with the ECP5 cell models and each net's fanout
    (the number of cell input pins it drives, for the net delay)."""

    def __init__(self, mod: dict, d: dict):
        super().__init__(mod, d)
        self.fanout: dict[int, int] = defaultdict(int)
        for cell in mod.get("cells", {}).values():
            for port, dirn in cell.get("port_directions", {}).items():
                if dirn == "input":
                    for b in cell["connections"].get(port, []):
                        if isinstance(b, int):
                            self.fanout[b] += 1

    def _edge(self, b, sink_type: str, sink_port: str) -> float:
        drv = self.driver.get(b)
        if drv is None:
            return self.d["net"]
        _, dtype, dport = drv
        if dtype == "DCCA":
            return 0.0
        if sink_type in WIDE_MUX and sink_port != "C0" and sink_port != "SD" and \
                dtype in LUTS | WIDE_MUX:
            return 0.0
        if sink_type in CARRIES and sink_port == "CIN" and dtype in CARRIES:
            return 0.0
        return self.d["net"] + self.d["fanout"] * math.sqrt(max(0, self.fanout.get(b, 1) - 1))

    def add_cell(self, cname: str, cell: dict) -> None:
        t, d = cell["type"], self.d
        ins, outs = self._inputs(cell), self._outputs(cell)
        if t in FF:
            self._source(cell, cname, outs, d["ff_clk_to_q"], "ff")
            self._end(cname, cell, [p for p in ins if p in ("DI", "M")], d["ff_setup"], "ff")
            self._end(cname, cell, [p for p in ins if p in ("CE", "LSR")], d["ce_setup"], "ff_ce")
        elif t in LUTS:
            self._comb(cname, cell, ins, outs, d["lut"], "lut")
        elif t in WIDE_MUX:
            sel = [p for p in ins if p in ("C0", "SD")]
            self._comb(cname, cell, [p for p in ins if p not in sel], outs, d["wide_mux"], "mux")
            self._comb(cname, cell, sel, outs, d["mux_select"], "mux")
        elif t in CARRIES:
            self._comb(cname, cell, [p for p in ins if p != "CIN"], outs, d["carry_in"], "carry")
            self._comb(cname, cell, [p for p in ins if p == "CIN"], outs, d["carry_through"],
                       "carry")
        elif t in MULTS:
            self._mult(cname, cell, ins, outs)
        elif t in BRAMS:
            for side in "AB":
                reg = _str_param(cell, f"REGMODE_{side}", "NOREG").strip('"') == "OUTREG"
                self._source(cell, cname, [p for p in outs if p.startswith(f"DO{side}")],
                             d["bram_clk_to_out_reg" if reg else "bram_clk_to_out"],
                             "bram_reg" if reg else "bram")
            self._end(cname, cell, [p for p in ins if not p.startswith("CLK")], d["bram_setup"],
                      "bram")
        elif t in LUTRAMS:
            rad = [p for p in ins if p.startswith("RAD")]
            self._comb(cname, cell, rad, outs, d["lutram_read"], "lutram")
            self._source(cell, cname, outs, d["lutram_clk_to_out"], "lutram")
            self._end(cname, cell, [p for p in ins if p not in rad and p != "WCK"],
                      d["ff_setup"], "lutram")
        elif t == "DCCA":
            self._comb(cname, cell, [p for p in ins if p == "CLKI"], outs, d["global"], "global")
        elif BOUNDARY.match(t) or not ins:
            self._source(cell, cname, outs, 0.0, "port")
        else:   # ALU54B and anything unknown: combinational, conservatively one LUT level
            self._comb(cname, cell, ins, outs, d["lut"], "other")

    def _mult(self, cname, cell, ins, outs):
        d = self.d
        data_in = [p for p in ins if re.match(r"^[AB]\d+$", p)]
        in_reg = _is_reg(cell, "REG_INPUTA_CLK") and _is_reg(cell, "REG_INPUTB_CLK")
        out_reg = _is_reg(cell, "REG_PIPELINE_CLK") or _is_reg(cell, "REG_OUTPUT_CLK")
        node = f"{cname}#m"
        if in_reg:
            self._end(cname, cell, data_in, d["mult_setup"], "mult_in_reg")
            self.deps.setdefault(node, []).append((None, d["mult_clk_to_out"], "mult_reg", cname))
        else:
            for p, ib in self._bits(cell, data_in):
                self.deps.setdefault(node, []).append((ib, self._edge(ib, cell["type"], p),
                                                       "mult", cname))
        if out_reg:
            self.ends.append((node, d["mult_comb"] + d["mult_setup"], "mult_out_reg", cname))
            self._source(cell, cname, outs, d["mult_clk_to_out"], "mult_reg")
        else:
            for _, ob in self._bits(cell, outs):
                self.deps.setdefault(ob, []).append((node, d["mult_comb"], "mult", cname))


def _src(cell: dict, repo_root: str | None) -> str:
    """The first Python source location of a cell, relative to the repository."""
    src = str(cell.get("attributes", {}).get("src", "")).split("|")[0]
    m = re.match(r"^(.*?):(\d+)", src)
    if not m:
        return src or "?"
    path = m.group(1)
    if repo_root and path.startswith(repo_root):
        path = path[len(repo_root):].lstrip("/")
    else:
        parts = Path(path).parts
        for anchor in ("hw", "sim", "boards", "host"):
            if anchor in parts:
                path = "/".join(parts[parts.index(anchor):])
                break
    return f"{path}:{m.group(2)}"


def _path_counts(g: _Ecp5Graph, b, cells: dict) -> dict:
    """Cell levels along the path that ends at bit b, and its start."""
    counts = defaultdict(int)
    seen = None
    x = b
    start = None
    while x is not None:
        _, prev, kind, cname = g.memo[x]
        if cname is not None and cname != seen:
            seen = cname
            counts[kind] += 1
        if prev is None:
            start = (x, cname)
        x = prev
    return dict(counts), start


def _graph(netlist: dict, top: str | None, d: dict):
    """The module ``top`` (default: the one marked ``top``, else the largest) and its
    arrival-time graph."""
    mods = netlist["modules"]
    if top is None:
        tops = [n for n, mod in mods.items()
                if str(mod.get("attributes", {}).get("top", "0")).strip("0") != ""]
        top = tops[0] if tops else max(mods, key=lambda n: len(mods[n].get("cells", {})))
    mod = mods[top]
    cells = mod.get("cells", {})
    g = _Ecp5Graph(mod, d)
    for cname, cell in cells.items():
        g.add_cell(cname, cell)
    g.inputs = {b for port in mod.get("ports", {}).values() if port["direction"] == "input"
                for b in port["bits"] if isinstance(b, int)}
    g.memo = {}
    return top, cells, g


def _start_of(g: _Ecp5Graph, b, cells: dict, repo_root: str | None) -> dict:
    g.arrival(b)
    levels, (sbit, scell) = _path_counts(g, b, cells)
    return {"levels": levels,
            "start": _src(cells[scell], repo_root) if scell in cells else "port",
            "start_net": g.names.get(sbit, str(sbit)) if isinstance(sbit, int) else sbit}


def analyze_netlist(netlist: dict, top: str | None = None, *, delays: dict | None = None,
                    budget_ns: float = 10.0, groups: int = 25, repo_root: str | None = None
                    ) -> dict:
    """Price every endpoint of the synthesized ECP5 module ``top`` (default: the module marked
    ``top``, else the largest). Returns ``endpoints``, ``histogram`` (endpoints per 1-ns bin of
    estimated delay), ``over_budget`` (endpoints above ``budget_ns``), the worst estimate, and
    ``groups``: the endpoints over budget grouped by their register's source line, worst
    first, each with its count, worst delay, the worst path's cell levels and its start."""
    d = {**DELAYS, **(delays or {})}
    top, cells, g = _graph(netlist, top, d)
    hist: dict[int, int] = defaultdict(int)
    by_src: dict[str, dict] = {}
    n_end = 0
    worst = 0.0
    for b, extra, what, cname in g.ends:
        t, _, kind, _ = g.arrival(b)
        if kind == "const":
            continue
        total = t + extra
        n_end += 1
        hist[int(total)] += 1
        worst = max(worst, total)
        if total <= budget_ns:
            continue
        key = _src(cells[cname], repo_root) if cname in cells else str(cname)
        grp = by_src.setdefault(key, {"source": key, "endpoints": 0, "worst_ns": 0.0,
                                      "end_kind": what})
        grp["endpoints"] += 1
        if total > grp["worst_ns"]:
            grp.update(worst_ns=round(total, 2), end_kind=what,
                       **_start_of(g, b, cells, repo_root))
    return _result(top, d, budget_ns, n_end, worst, hist, by_src, groups)


def _result(top, d, budget_ns, n_end, worst, hist, by_src, groups) -> dict:
    ranked = sorted(by_src.values(), key=lambda r: (-r["worst_ns"], -r["endpoints"]))
    return {
        "top": top.lstrip("\\"), "delay_model_ns": d, "budget_ns": budget_ns,
        "endpoints": n_end, "worst_ns": round(worst, 2),
        "est_mhz": round(1e3 / worst, 1) if worst else None,
        "over_budget": sum(r["endpoints"] for r in by_src.values()),
        "histogram": {f"{k}-{k + 1}": v for k, v in sorted(hist.items())},
        "groups": ranked[:groups], "groups_total": len(ranked),
    }


def analyze_routed(netlist: dict, report: dict, top: str | None = None, *,
                   delays: dict | None = None, budget_ns: float = 10.0, groups: int = 25,
                   repo_root: str | None = None) -> dict:
    """Every endpoint of a *routed* build ranked by its routed arrival time, grouped by source
    line like :func:`analyze_netlist`, from nextpnr's ``--report`` JSON written with
    ``--detailed-timing-report``. That report gives, for every timing endpoint pin (register
    D / CE / LSR, block RAM and multiplier inputs), nextpnr's own post-route arrival time
    (min, max; the max is used): the routed counterpart of the estimate, where nextpnr's log
    names only the one critical path. Endpoint cells keep their Yosys names in nextpnr, so
    ``netlist`` (the synthesized Yosys JSON) gives each one's source line; each group's
    ``start`` / ``levels`` are those of the *modelled* worst path into its worst endpoint (the
    routed report has arrival times, not paths)."""
    d = {**DELAYS, **(delays or {})}
    top, cells, g = _graph(netlist, top, d)
    arrival: dict[tuple[str, str], float] = {}
    for net in report.get("detailed_net_timings", []):
        for e in net.get("endpoints", []):
            t = e["delay"]
            t = max(t) if isinstance(t, (list, tuple)) else float(t)
            key = (e["cell"], e["port"])
            arrival[key] = max(t, arrival.get(key, t))
    if not arrival:
        raise ValueError("the nextpnr report has no detailed_net_timings (run nextpnr with "
                         "--detailed-timing-report)")
    hist: dict[int, int] = defaultdict(int)
    by_src: dict[str, dict] = {}
    worst = 0.0
    for (cname, port), t in arrival.items():
        hist[int(t)] += 1
        worst = max(worst, t)
        if t <= budget_ns:
            continue
        # nextpnr splits some cells into parts named <Yosys cell>$<part>: LUT RAM into
        # $DPRAM_COMB<n> / $DPRAM_RAMW, carries into $CCU2_COMB<n>
        base = cname.split("$", 1)[0] if "$" in cname[1:] else cname
        cell = cells.get(cname) or cells.get(base)
        key = _src(cell, repo_root) if cell else cname
        if cell and key.startswith("/"):
            # a Yosys techmap cell (LUT RAM: lutrams_map_trellis.v): the memory it builds
            memory = re.sub(r"(_TRELLIS_FF_Q(_\d+)?|([.]\d+)+)$", "", base)
            key = f"{memory} ({Path(key.split(':')[0]).name})"
        grp = by_src.setdefault(key, {"source": key, "endpoints": 0, "worst_ns": 0.0,
                                      "end_kind": port})
        grp["endpoints"] += 1
        if t > grp["worst_ns"]:
            grp.update(worst_ns=round(t, 2), end_kind=f"{cell['type'] if cell else '?'}.{port}")
            bits = cell["connections"].get(port, []) if cell else []
            if bits and isinstance(bits[0], int):
                grp.update(**_start_of(g, bits[0], cells, repo_root))
    r = _result(top, d, budget_ns, len(arrival), worst, hist, by_src, groups)
    r["routed"] = True
    return r


def analyze_file(path, **kw) -> dict:
    """:func:`analyze_netlist` of a Yosys JSON file (e.g. ``<build dir>/edge_moe.json``)."""
    return analyze_netlist(json.loads(Path(path).read_text()), **kw)


def format_report(r: dict) -> str:
    """The result as text: histogram, then the groups over budget."""
    lines = [f"{r['endpoints']:,} endpoints in {r['top']}; estimated worst {r['worst_ns']} ns "
             f"({r['est_mhz']} MHz); {r['over_budget']:,} over {r['budget_ns']} ns in "
             f"{r['groups_total']} source lines",
             "estimated delay (ns) : endpoints"]
    lines += [f"  {k:>7} : {v:,}" for k, v in r["histogram"].items()]
    lines.append(f"worst source lines over {r['budget_ns']} ns (endpoint register <- path start):")
    for grp in r["groups"]:
        lv = ", ".join(f"{v} {k}" for k, v in sorted(grp.get("levels", {}).items()))
        lines.append(f"  {grp['worst_ns']:6.2f} ns {grp['endpoints']:5d} x {grp['source']} "
                     f"({grp['end_kind']}) <- {grp.get('start')} [{grp.get('start_net')}]; {lv}")
    return "\n".join(lines)
