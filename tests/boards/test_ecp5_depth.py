"""boards/ecp5_depth.py: endpoint delays of hand-built ECP5 netlists, summed by hand."""
from __future__ import annotations

import math

import pytest

from boards.ecp5_depth import DELAYS, analyze_netlist, analyze_routed, format_report

# the structural tests price every net the same; the fanout term has its own test
NOFAN = {"fanout": 0.0}
D = {**DELAYS, **NOFAN}


def _cell(ctype, conns, dirs, src="", params=None):
    return {"type": ctype, "parameters": params or {}, "attributes": {"src": src},
            "port_directions": dirs, "connections": conns}


def _ff(di, q, src, ce=None):
    conns = {"CLK": [2], "DI": [di], "Q": [q]}
    dirs = {"CLK": "input", "DI": "input", "Q": "output"}
    if ce is not None:
        conns["CE"], dirs["CE"] = [ce], "input"
    return _cell("TRELLIS_FF", conns, dirs, src)


def _lut(a, z, b=None):
    conns = {"A": [a], "Z": [z]}
    dirs = {"A": "input", "Z": "output"}
    if b is not None:
        conns["B"], dirs["B"] = [b], "input"
    return _cell("LUT4", conns, dirs)


def _netlist(cells):
    return {"modules": {"top": {
        "attributes": {"top": "00000000000000000000000000000001"},
        "ports": {"clk": {"direction": "input", "bits": [2]},
                  "din": {"direction": "input", "bits": [10]}},
        "cells": cells, "netnames": {"q0": {"bits": [3], "hide_name": 0}}}}}


def _mult(a, p, params=None):
    return _cell("MULT18X18D", {"A0": [a], "B0": [a], "P0": [p]},
                 {"A0": "input", "B0": "input", "P0": "output"}, "/x/hw/m.py:7", params)


def test_lut_chain_multiplier_and_carry_priced_per_cell():
    cells = {
        "ff0": _ff(10, 3, "/x/hw/a.py:1"),
        "l1": _lut(3, 4), "l2": _lut(4, 5),
        "ff1": _ff(5, 6, "/x/hw/a.py:2"),
        "m": _mult(6, 7),
        "ff2": _ff(7, 8, "/x/hw/b.py:3"),
        # a 2-cell carry chain: the CIN link is a dedicated wire (no net delay)
        "c0": _cell("CCU2C", {"A0": [8], "COUT": [21]}, {"A0": "input", "COUT": "output"}),
        "c1": _cell("CCU2C", {"CIN": [21], "S0": [22]}, {"CIN": "input", "S0": "output"}),
        "ff3": _ff(22, 23, "/x/hw/c.py:4"),
        # PFUMX fed by two LUTs: in-slice, no net; its select input is routed
        "l3": _lut(8, 30), "l4": _lut(8, 31),
        "mx": _cell("PFUMX", {"ALUT": [30], "BLUT": [31], "C0": [8], "Z": [32]},
                    {"ALUT": "input", "BLUT": "input", "C0": "input", "Z": "output"}),
        "ff4": _ff(32, 33, "/x/hw/d.py:5", ce=33),
    }
    r = analyze_netlist(_netlist(cells), budget_ns=5.0, repo_root="/x", delays=NOFAN)
    ff1 = D["ff_clk_to_q"] + 2 * (D["net"] + D["lut"]) + D["net"] + D["ff_setup"]
    ff2 = D["ff_clk_to_q"] + D["net"] + D["mult_comb"] + D["net"] + D["ff_setup"]
    ff3 = D["ff_clk_to_q"] + D["net"] + D["carry_in"] + D["carry_through"] + D["net"] + \
        D["ff_setup"]
    ff4 = D["ff_clk_to_q"] + max(D["net"] + D["lut"] + D["wide_mux"],
                                 D["net"] + D["mux_select"]) + D["net"] + D["ff_setup"]
    ff4_ce = D["ff_clk_to_q"] + D["net"] + D["ce_setup"]
    assert r["worst_ns"] == pytest.approx(max(ff1, ff2, ff3, ff4), abs=0.01)
    # ff0's DI comes from a port: an endpoint too (a port-to-register stage)
    assert r["endpoints"] == 6
    over = {g["source"]: g for g in r["groups"]}
    assert set(over) == {s for s, t in [("hw/a.py:2", ff1), ("hw/b.py:3", ff2),
                                         ("hw/c.py:4", ff3), ("hw/d.py:5", max(ff4, ff4_ce))]
                         if t > 5.0}
    assert over["hw/b.py:3"]["worst_ns"] == pytest.approx(ff2, abs=0.01)
    assert over["hw/b.py:3"]["levels"]["mult"] == 1
    assert over["hw/b.py:3"]["start"] == "hw/a.py:2"
    assert sum(r["histogram"].values()) == r["endpoints"]
    assert "hw/b.py:3" in format_report(r)


def test_registered_multiplier_and_block_ram_output_register_cut_the_path():
    comb = {"ff0": _ff(10, 3, "/x/hw/a.py:1"), "m": _mult(3, 4),
            "ff1": _ff(4, 5, "/x/hw/a.py:2")}
    reg = dict(comb, m=_mult(3, 4, {"REG_OUTPUT_CLK": "CLK0", "REG_INPUTA_CLK": "CLK0",
                                     "REG_INPUTB_CLK": "CLK0"}))
    r_comb = analyze_netlist(_netlist(comb), delays=NOFAN)
    r_reg = analyze_netlist(_netlist(reg), delays=NOFAN)
    assert r_comb["worst_ns"] == pytest.approx(
        D["ff_clk_to_q"] + 2 * D["net"] + D["mult_comb"] + D["ff_setup"], abs=0.01)
    # registered in and out: the worst stage is the multiplier's internal one
    assert r_reg["worst_ns"] == pytest.approx(
        max(D["mult_clk_to_out"] + D["mult_comb"] + D["mult_setup"],
            D["mult_clk_to_out"] + D["net"] + D["ff_setup"]), abs=0.01)

    def bram(regmode):
        return {"ff0": _ff(10, 3, "/x/hw/a.py:1"),
                "ram": _cell("DP16KD", {"ADA0": [3], "DOA0": [4]},
                             {"ADA0": "input", "DOA0": "output"}, "/x/hw/r.py:1",
                             {"REGMODE_A": regmode}),
                "ff1": _ff(4, 5, "/x/hw/a.py:2")}
    no_reg = analyze_netlist(_netlist(bram("NOREG")), delays=NOFAN)["worst_ns"]
    out_reg = analyze_netlist(_netlist(bram("OUTREG")), delays=NOFAN)["worst_ns"]
    assert no_reg == pytest.approx(D["bram_clk_to_out"] + D["net"] + D["ff_setup"], abs=0.01)
    assert out_reg == pytest.approx(max(D["ff_clk_to_q"] + D["net"] + D["bram_setup"],
                                        D["bram_clk_to_out_reg"] + D["net"] + D["ff_setup"]),
                                    abs=0.01)


def test_high_fanout_net_costs_more_and_a_global_buffer_does_not():
    n = 37                      # one register drives n LUTs, each into its own register
    cells = {"ff0": _ff(10, 3, "/x/hw/a.py:1")}
    for k in range(n):
        cells[f"l{k}"] = _lut(3, 100 + k)
        cells[f"f{k}"] = _ff(100 + k, 200 + k, "/x/hw/b.py:2")
    r = analyze_netlist(_netlist(cells))
    E = DELAYS
    assert r["worst_ns"] == pytest.approx(
        E["ff_clk_to_q"] + E["net"] + E["fanout"] * math.sqrt(n - 1) + E["lut"] + E["net"]
        + E["ff_setup"], abs=0.01)
    # the same fan-out behind a DCCA: the global's delay instead of the fanout term
    cells["dcca"] = _cell("DCCA", {"CLKI": [3], "CLKO": [4]}, {"CLKI": "input", "CLKO": "output"})
    for k in range(n):
        cells[f"l{k}"] = _lut(4, 100 + k)
    r = analyze_netlist(_netlist(cells))
    assert r["worst_ns"] == pytest.approx(
        E["ff_clk_to_q"] + E["net"] + E["global"] + E["lut"] + E["net"] + E["ff_setup"],
        abs=0.01)


def _pnr_report(arrivals):
    """A nextpnr ``--report`` JSON with ``--detailed-timing-report``: one net per endpoint,
    each endpoint pin with its (min, max) routed arrival time."""
    return {"detailed_net_timings": [
        {"net": f"n{i}", "driver": "x", "port": "Z", "sources": [], "event": "posedge clk",
         "endpoints": [{"cell": c, "port": p, "event": "posedge clk", "delay": [lo, hi]}]}
        for i, ((c, p), (lo, hi)) in enumerate(arrivals.items())]}


def test_routed_report_ranks_every_endpoint_by_its_routed_arrival():
    cells = {
        "ff0": _ff(10, 3, "/x/hw/a.py:1"),
        "l1": _lut(3, 4), "l2": _lut(4, 5),
        "ff1": _ff(5, 6, "/x/hw/a.py:2", ce=4),
        "ff2": _ff(6, 7, "/x/hw/b.py:3"),
        "ff3": _ff(6, 8, "/x/hw/b.py:3"),
        # a LUT RAM: nextpnr reports its write-address pins as <cell>$DPRAM_COMB<n>
        "ram": _cell("TRELLIS_DPR16X4", {"WAD0": [6], "DO0": [9]},
                     {"WAD0": "input", "DO0": "output"}, "/x/hw/c.py:4"),
    }
    # the modelled ranking puts ff1 (two LUTs) first; the routed arrivals put b.py:3 first:
    # a long net the model prices like any other
    pnr = _pnr_report({("ff1", "DI"): (2.0, 7.5), ("ff1", "CE"): (1.0, 6.0),
                       ("ff2", "DI"): (3.0, 11.25), ("ff3", "DI"): (3.0, 10.5),
                       ("ff0", "DI"): (0.5, 1.0), ("ram$DPRAM_COMB0", "WAD0"): (1.0, 8.5)})
    r = analyze_routed(_netlist(cells), pnr, budget_ns=7.0, repo_root="/x")
    assert r["routed"] and r["endpoints"] == 6
    assert r["worst_ns"] == 11.25 and r["est_mhz"] == pytest.approx(1e3 / 11.25, abs=0.1)
    assert r["over_budget"] == 4
    assert [(g["source"], g["endpoints"], g["worst_ns"]) for g in r["groups"]] == [
        ("hw/b.py:3", 2, 11.25), ("hw/c.py:4", 1, 8.5), ("hw/a.py:2", 1, 7.5)]
    b = r["groups"][0]
    assert b["end_kind"] == "TRELLIS_FF.DI" and b["start"] == "hw/a.py:2"
    assert r["histogram"] == {"1-2": 1, "6-7": 1, "7-8": 1, "8-9": 1, "10-11": 1, "11-12": 1}
    assert "hw/b.py:3" in format_report(r)
    modelled = analyze_netlist(_netlist(cells), budget_ns=0.0, repo_root="/x")
    assert modelled["groups"][0]["source"] == "hw/a.py:2"


def test_routed_report_without_detailed_timings_is_refused():
    with pytest.raises(ValueError, match="detailed-timing-report"):
        analyze_routed(_netlist({"ff0": _ff(10, 3, "/x/hw/a.py:1")}), {"fmax": {}})
