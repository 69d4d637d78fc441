"""nextpnr log parsing (boards/pnr_report.py): the critical path and its source lines.

The log excerpt is written here in nextpnr-ecp5 0.11's format (two paths, the first from an
earlier timing analysis; the parser must take the last clock report and stop at its total).
"""
from __future__ import annotations

from boards.pnr_report import critical_path

ROOT = "/repo/edge-moe"


def _path(clock, first, last, lines, logic, routing):
    out = [f"Info: Critical path report for clock '{clock}' (posedge -> posedge):",
           "Info:       type curr  total name",
           f"Info:   clk-to-q  0.52  0.52 Source {first}.Q",
           f"Info:    routing  1.20  1.73 Net n0 (79,24) -> (79,24)",
           "Info:                          Sink x.A",
           "Info:                          Defined in:"]
    for ln in lines:
        out.append(f"Info:                               {ln}")
    out += ["Info:      logic  0.45  2.18 Source mid.F",
            "Info:                          Defined in:",
            f"Info:                               {lines[0]}",
            f"Info:      setup  0.00  25.48 Source {last}.M",
            f"Info: {logic:.2f} ns logic, {routing:.2f} ns routing", ""]
    return out


def test_last_clock_report_with_repository_lines():
    log = "\n".join(
        ["Info: Max frequency for clock 'clk': 30.00 MHz"]
        + _path("old", "a.b", "c.d", [f"{ROOT}/hw/old.py:1"], 1.0, 2.0)
        + _path("$glbnet$cd_sync.clk", "top.router.b_m_FF", "top.router.o_w_FF",
                [f"{ROOT}/hw/moe/router.py:271", "/share/lattice/arith_map_ccu2c.v:74.7-80.4",
                 f"{ROOT}/.venv/lib/python3.11/site-packages/amaranth/hdl/_ast.py:2425",
                 f"{ROOT}/sim/fixed.py:196"], 11.07, 14.41)
        + ["Info: Critical path report for cross-domain path '<async>' -> '<async>':",
           "Info:     source  0.00  0.00 Source clkbuf.O",
           f"Info:                               {ROOT}/hw/uart.py:71",
           "Info: 0.00 ns logic, 0.25 ns routing"])
    cp = critical_path(log, ROOT)
    assert cp == {"clock": "$glbnet$cd_sync.clk", "from": "top.router.b_m_FF.Q",
                  "to": "top.router.o_w_FF.M", "logic_ns": 11.07, "routing_ns": 14.41,
                  "source_lines": ["hw/moe/router.py:271", "sim/fixed.py:196"]}


def test_the_slowest_clocks_path_not_the_last():
    """A DRAM build has several clocks; the path reported is the one of the lowest Fmax (the
    accelerator's user clock), not whichever clock nextpnr printed last."""
    log = "\n".join(
        _path("$glbnet$user_clk", "top.router.cur_index_FF", "top.router.s1_score_FF",
              [f"{ROOT}/hw/moe/router.py:189"], 1.5, 16.3)
        + _path("$glbnet$clk", "core.a", "core.b", [f"{ROOT}/boards/x.py:1"], 0.6, 2.2)
        + ["Info: Max frequency for clock    '$glbnet$user_clk': 56.15 MHz (PASS at 50.00 MHz)",
           "Info: Max frequency for clock         '$glbnet$clk': 351.74 MHz (PASS at 100.00 MHz)"])
    cp = critical_path(log, ROOT)
    assert cp["clock"] == "$glbnet$user_clk" and cp["source_lines"] == ["hw/moe/router.py:189"]
    assert (cp["logic_ns"], cp["routing_ns"]) == (1.5, 16.3)


def test_no_timing_report():
    assert critical_path("Info: Running router2...\nERROR: failed to route\n", ROOT) is None
