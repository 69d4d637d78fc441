"""What nextpnr-ecp5 says about a build: utilization and Fmax from its ``--report`` JSON, and
the critical path from its log (``.tim``), traced back to the Python source lines.

nextpnr's log names every cell of the worst path and, under "Defined in:", the source locations
Yosys kept for it; Amaranth's RTLIL carries the Python file and line of each statement, so the
repository's lines on that path say which piece of the design limits the clock.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["parse_nextpnr_report", "critical_path"]


def parse_nextpnr_report(report: dict) -> dict:
    """{utilization: {LUT4, FF, MULT18X18D, DP16KD: {used, available}}, fmax_mhz, constraint_mhz}
    from nextpnr's ``--report`` JSON."""
    util = report.get("utilization", {})
    names = {"LUT4": "TRELLIS_COMB", "FF": "TRELLIS_FF", "MULT18X18D": "MULT18X18D",
             "DP16KD": "DP16KD", "IO": "TRELLIS_IO"}
    out = {k: {"used": util.get(v, {}).get("used", 0),
               "available": util.get(v, {}).get("available", 0)} for k, v in names.items()}
    fmax = report.get("fmax", {})
    clocks = {name: {"achieved_mhz": round(v.get("achieved", 0.0), 2),
                     "constraint_mhz": round(v.get("constraint", 0.0), 2)}
              for name, v in fmax.items()}
    worst = min(clocks.values(), key=lambda c: c["achieved_mhz"]) if clocks else {}
    return {"utilization": out, "clocks": clocks,
            "fmax_mhz": worst.get("achieved_mhz"), "constraint_mhz": worst.get("constraint_mhz")}


_HEADER = re.compile(r"Critical path report for clock '([^']*)'")
_FMAX = re.compile(r"Max frequency for clock\s+'([^']*)': ([\d.]+) MHz")
_SOURCE = re.compile(r"^Info:\s+(?:clk-to-q|logic|setup|source)\s+[\d.]+\s+[\d.]+\s+Source (\S+)")
_TOTAL = re.compile(r"^Info: ([\d.]+) ns logic, ([\d.]+) ns routing")
_DEFINED = re.compile(r"^Info:\s+(/\S+?):(\d+)(?:[.:]\S*)?$")


def critical_path(log_text: str, repo_root) -> dict | None:
    """The critical path of the slowest clock of a nextpnr log (the lowest last "Max frequency",
    as ``fmax_mhz`` of :func:`parse_nextpnr_report`; without those lines the last clock-domain
    path): ``{clock, from, to, logic_ns, routing_ns, source_lines}``, where ``source_lines`` are
    the ``path:line`` locations under ``repo_root`` (relative to it, in path order, each once).
    None when the log has no such report (e.g. nextpnr stopped before timing analysis)."""
    root = str(Path(repo_root).resolve()).rstrip("/") + "/"
    lines = log_text.splitlines()
    starts = [i for i, ln in enumerate(lines) if _HEADER.search(ln)]
    if not starts:
        return None
    fmax = {m.group(1): float(m.group(2)) for m in _FMAX.finditer(log_text)}
    slow = min(fmax, key=fmax.get) if fmax else None
    slowest = [i for i in starts if _HEADER.search(lines[i]).group(1) == slow]
    i = (slowest or starts)[-1]
    clock = _HEADER.search(lines[i]).group(1)
    cells, where, total = [], [], None
    for ln in lines[i + 1:]:
        if m := _TOTAL.match(ln):
            total = (float(m.group(1)), float(m.group(2)))
            break
        if m := _SOURCE.match(ln):
            cells.append(m.group(1))
        elif ((m := _DEFINED.match(ln)) and m.group(1).startswith(root)
              and "/site-packages/" not in m.group(1)):
            loc = f"{m.group(1)[len(root):]}:{m.group(2)}"
            if loc not in where:
                where.append(loc)
    if total is None or not cells:
        return None
    return {"clock": clock, "from": cells[0], "to": cells[-1], "logic_ns": total[0],
            "routing_ns": total[1], "source_lines": where}
