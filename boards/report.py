"""Plain-text tables for the ``elaborate`` / ``build`` commands (no dependencies)."""
from __future__ import annotations

from boards.build_progress import format_seconds

__all__ = ["table", "build_table", "elaborate_table", "estimate_table"]


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)    # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(cells[0]), "  ".join("-" * w for w in widths)]
                     + [fmt(r) for r in cells[1:]])


def _pct(used, avail) -> str:
    return f"{100 * used / avail:.1f} %" if avail else "-"


def build_table(rep: dict) -> str:
    rows = [[k, v["used"], v["available"], _pct(v["used"], v["available"])]
            for k, v in rep.get("utilization", {}).items() if k != "IO"]
    head = (f"{rep['board']} ({rep['device']}), config {rep['config']}, design {rep['design']}: "
            f"{rep['clock_mhz']:g} MHz design clock"
            + (f" (PLL from the {rep['oscillator_mhz']:g} MHz oscillator)"
               if rep.get("oscillator_mhz", rep["clock_mhz"]) != rep["clock_mhz"] else ""))
    fmax = rep.get("fmax_mhz")
    tail = (f"Fmax (nextpnr): {fmax:.1f} MHz (constraint {rep.get('constraint_mhz'):g} MHz; "
            f"config target {rep['fmax_target_mhz']:g} MHz)" if fmax else "Fmax: not reported")
    sweep = rep.get("seed_sweep")
    if sweep and len(sweep["runs"]) > 1:
        tail += ("\nseeds: " + ", ".join(
            f"{r['seed']} ({r['fmax_mhz']:.1f} MHz)" if r["fmax_mhz"] else f"{r['seed']} (failed)"
            for r in sweep["runs"]) + f"; kept {sweep['kept']}")
    crit = rep.get("critical_path")
    if crit:
        tail += (f"\ncritical path: {crit['logic_ns'] + crit['routing_ns']:.1f} ns "
                 f"({crit['logic_ns']:.1f} logic, {crit['routing_ns']:.1f} routing) through "
                 + (", ".join(crit["source_lines"]) or "no repository source line"))
    lines = [head, table(["resource", "used", "available", "use"], rows) if rows
             else "resources: not placed (--synth-only)", tail]
    depth = rep.get("logic_depth")
    if depth:
        lines.append(depth_lines(depth))
    routed = rep.get("routed_paths")
    if routed:
        lines.append(depth_lines(routed, routed=True))
    secs = rep.get("seconds") or {}
    if "total" in secs:
        parts = [f"elaborate {format_seconds(secs['elaborate'])}"] + [
            f"{stage} {format_seconds(t)}" for stage, t in (secs.get("stages") or {}).items()]
        lines.append(f"time: {format_seconds(secs['total'])} ({', '.join(parts)})")
    return "\n".join(lines + [f"bitstream: {rep['bitstream'] or 'none (--synth-only)'}"])


def depth_lines(depth: dict, routed: bool = False) -> str:
    """The logic-depth estimate of a build (boards/ecp5_depth.py): totals, the worst lines;
    ``routed``: the same walk with the routed net delays (``routed_paths.json``)."""
    what = ("routed arrival times (nextpnr, every endpoint; boards/ecp5_depth.py)" if routed
            else "logic depth (estimate, not routed; boards/ecp5_depth.py)")
    if "error" in depth:
        return f"{what}: not measured ({depth['error']})"
    lines = [f"{what}: worst stage "
             f"{depth['worst_ns']} ns ({depth['est_mhz']} MHz); {depth['over_budget']:,} of "
             f"{depth['endpoints']:,} endpoints over {depth['budget_ns']:g} ns in "
             f"{depth['groups_total']} source lines; worst:"]
    for g in depth["groups"]:
        lines.append(f"  {g['worst_ns']:6.2f} ns {g['endpoints']:5d} x {g['source']} <- "
                     f"{g.get('start')}")
    return "\n".join(lines)



def estimate_table(est: dict, device) -> str:
    rows = [[m["name"], m["width"], m["depth"], m["blocks"]] for m in est["memories"]]
    rows.append(["total DP16KD (estimate)", "", "", f"{est['bram_blocks']} / {device.brams}"])
    return "\n".join([
        f"fit estimate for {device.name}: config {est['config']}, design {est['design']}, "
        f"~{est['dsps']} multipliers / {device.dsps}"
        + (f", ~{est['luts']:,} LUT4 / {device.luts:,}" if est.get("luts") else ""),
        table(["on-chip memory", "width", "depth", "DP16KD"], rows)])


def elaborate_table(summary: dict) -> str:
    lines = [f"config {summary['config']}: {summary['verilog']} ({summary['lines']:,} lines, "
             f"{summary['ports']} ports)"]
    x = summary.get("xilinx")
    if x:
        s, ref, pct = x["summary"], x["reference_device"], x["utilization_percent"]
        names = {"luts": "LUT", "ffs": "FF", "dsps": "DSP48E2", "brams": "BRAM (RAMB36)"}
        rows = [[name, s[k], ref[k], f"{pct[k]} %"] for k, name in names.items()]
        lines += [f"yosys synth_xilinx -family xcup ({x['seconds']:.0f} s), vs {ref['device']}:",
                  table(["resource", "used", "available", "use"], rows)]
    return "\n".join(lines)
