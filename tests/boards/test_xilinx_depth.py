"""boards/xilinx_depth.py: logic depth per register stage after Yosys synth_xilinx.

Independent facts checked:

- hand-written Yosys JSON netlists (no Yosys): the path found and its delay are the sums of the
  delay model's terms along the path worked out by hand, including a DSP48E2 split at its
  registers;
- a hand-built Amaranth chain of N dependent add-then-xor stages between two registers maps to at
  least N LUT levels with carry cells on the path, and the same chain with a register after every
  stage to at most 2 LUT levels; the path has as many cells as Yosys' own ``ltp`` finds;
- edge_moe/commands/report_timing.py: the report line names the slowest block of a result file.

The full M3ViT measurement (tens of minutes) is marked slow and compared with the committed
``boards/data/xilinx_depth_m3vit.json``.
"""
from __future__ import annotations

import json

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from boards.xilinx_depth import BLOCKS, DATA_FILE, DELAYS, analyze_netlist, depth_of, \
    measure_blocks
from edge_moe.commands.report_timing import depth_line
from sim.config import get_config

from tests.harness.yosys import needs_yosys


def _cell(ctype, ins, outs, **params):
    """A Yosys JSON cell: ``ins`` / ``outs`` map port -> list of bits."""
    return {"type": ctype, "parameters": {k: format(v, "b") if isinstance(v, int) else v
                                          for k, v in params.items()},
            "port_directions": {**{p: "input" for p in ins}, **{p: "output" for p in outs}},
            "connections": {**ins, **outs}}


def _netlist(cells, ports, names):
    return {"modules": {"t": {"ports": ports, "cells": cells,
                              "netnames": {n: {"hide_name": 0, "bits": b}
                                           for n, b in names.items()}}}}


def test_lut_carry_path_by_hand():
    # clk=1, in=10; FDRE start -> LUT6 -> LUT6 -> CARRY4 -> CARRY4 (via CI) -> LUT2 -> FDRE end
    cells = {
        "start": _cell("FDRE", {"C": [1], "D": [10], "CE": ["1"], "R": ["0"]}, {"Q": [2]}),
        "l1": _cell("LUT6", {"I0": [2], "I1": [10]}, {"O": [3]}),
        "l2": _cell("LUT6", {"I0": [3]}, {"O": [4]}),
        "c1": _cell("CARRY4", {"S": [4, "0", "0", "0"], "CI": ["0"]}, {"CO": ["x", "x", "x", 5]}),
        "c2": _cell("CARRY4", {"S": ["0"] * 4, "CI": [5]}, {"CO": ["x", "x", "x", 6]}),
        "l3": _cell("LUT2", {"I0": [6], "I1": [2]}, {"O": [7]}),
        "end": _cell("FDRE", {"C": [1], "D": [7], "CE": ["1"], "R": ["0"]}, {"Q": [8]}),
    }
    ports = {"clk": {"direction": "input", "bits": [1]},
             "i": {"direction": "input", "bits": [10]},
             "o": {"direction": "output", "bits": [8]}}
    r = analyze_netlist(_netlist(cells, ports, {"first": [2], "last": [8]}), "t")
    d = DELAYS
    expect = (d["ff_clk_to_q"] + 2 * (d["net"] + d["lut"]) + d["net"] + d["carry_in"]
              + d["carry_through"] / 2 + d["net"] + d["lut"] + d["net"] + d["ff_setup"])
    p = r["internal"]
    assert p["delay_ns"] == pytest.approx(expect, abs=1e-3)
    assert (p["lut_levels"], p["carry"], p["dsp48e2"]) == (3, 2, 0)
    assert (p["start"], p["end"]) == ("first", "last")
    assert p["est_mhz"] == pytest.approx(1e3 / expect, abs=0.1)
    # input port -> LUT6 -> LUT6 -> ... is the same depth but starts at a port: boundary
    assert r["boundary"]["start_kind"] == "port"


@pytest.mark.parametrize("mreg,preg", [(0, 0), (1, 0), (1, 1)])
def test_dsp_split_at_its_registers(mreg, preg):
    # FDRE -> DSP48E2 A (no AREG) -> P -> LUT1 -> FDRE
    cells = {
        "a": _cell("FDRE", {"C": [1], "D": [10]}, {"Q": [2]}),
        "dsp": _cell("DSP48E2", {"CLK": [1], "A": [2], "B": [2]}, {"P": [3]},
                     AREG=0, BREG=0, CREG=0, DREG=0, ADREG=0, MREG=mreg, PREG=preg,
                     OPMODEREG=0, ALUMODEREG=0, INMODEREG=0, CARRYINREG=0, USE_MULT="MULTIPLY",
                     AMULTSEL="A"),
        "l": _cell("LUT1", {"I0": [3]}, {"O": [4]}),
        "q": _cell("FDRE", {"C": [1], "D": [4]}, {"Q": [5]}),
    }
    ports = {"clk": {"direction": "input", "bits": [1]}, "i": {"direction": "input", "bits": [10]}}
    r = analyze_netlist(_netlist(cells, ports, {}), "t")
    d = DELAYS
    lut_end = d["net"] + d["lut"] + d["net"] + d["ff_setup"]
    into_dsp = d["ff_clk_to_q"] + d["net"]
    stages = {   # every register-to-register stage of this netlist, by hand
        (0, 0): [into_dsp + d["dsp_mult"] + d["dsp_alu"] + d["dsp_out"] + lut_end],
        (1, 0): [into_dsp + d["dsp_mult"] + d["dsp_setup"],
                 d["dsp_reg_to_out"] + d["dsp_alu"] + d["dsp_out"] + lut_end],
        (1, 1): [into_dsp + d["dsp_mult"] + d["dsp_setup"],
                 d["dsp_reg_to_out"] + d["dsp_alu"] + d["dsp_setup"],
                 d["dsp_clk_to_p"] + lut_end],
    }[(mreg, preg)]
    assert r["internal"]["delay_ns"] == pytest.approx(max(stages), abs=1e-3)
    assert r["internal"]["dsp48e2"] == 1
    # DS925 -2: all registers 775 MHz, two-register multiply without MREG 544 MHz
    reg_to_reg = d["dsp_reg_to_out"] + d["dsp_setup"]
    assert 1e3 / (reg_to_reg + d["dsp_mult"]) >= 775 and 1e3 / (reg_to_reg + d["dsp_alu"]) >= 775
    assert 1e3 / (reg_to_reg + d["dsp_mult"] + d["dsp_alu"]) == pytest.approx(544, abs=5)
    assert r["dsp48e2_registers"] == {"dsp48e2": 1, "AREG": 0, "BREG": 0, "CREG": 0,
                                      "MREG": mreg, "PREG": preg}


class Chain(wiring.Component):
    """``stages`` dependent steps v = (v + b_i) ^ (v >> 1) between input and output registers;
    ``registered``: a register after every step instead."""

    def __init__(self, stages: int, width: int = 16, registered: bool = False):
        self.stages, self.width, self.registered = stages, width, registered
        super().__init__({"a": In(width), "b": In(width * stages), "o": Out(width)})

    def elaborate(self, platform):
        m = Module()
        w = self.width
        v = Signal(w, name="first")
        m.d.sync += v.eq(self.a)
        for i in range(self.stages):
            b = Signal(w, name=f"b{i}")
            m.d.sync += b.eq(self.b[i * w:(i + 1) * w])
            nxt = Signal(w, name=f"s{i}")
            step = (v + b)[:w] ^ (v >> 1)   # the xor keeps the adders from merging
            if self.registered:
                m.d.sync += nxt.eq(step)
            else:
                m.d.comb += nxt.eq(step)
            v = nxt
        last = Signal(w, name="last")
        m.d.sync += last.eq(v)
        m.d.comb += self.o.eq(last)
        return m


@needs_yosys
def test_chain_of_adders_depth(tmp_path):
    n = 5
    comb = depth_of(Chain(n), "chain", keep_dir=tmp_path / "comb")
    p = comb["internal"]
    assert p["lut_levels"] >= n and p["carry"] >= n
    # the end register's output is both ``last`` and the port ``o``
    assert p["start"].startswith("first[") and p["end"].startswith(("last[", "o["))
    assert p["cells"] - 1 == comb["ltp_cells"]        # Yosys' ltp: the same cells, minus the FF
    piped = depth_of(Chain(n, registered=True), "chain", keep_dir=tmp_path / "piped")
    q = piped["internal"]
    assert 1 <= q["lut_levels"] <= 2
    assert q["delay_ns"] < p["delay_ns"] / 2
    assert piped["summary"]["ffs"] >= comb["summary"]["ffs"] + (n - 1) * 16


def test_report_line_names_the_slowest_block(tmp_path):
    path = tmp_path / "d.json"
    blocks = {"fast": {"internal": {"lut_levels": 3, "carry": 0, "dsp48e2": 0, "bram": 0,
                                    "delay_ns": 2.0, "est_mhz": 500.0}},
              "slow": {"internal": {"lut_levels": 9, "carry": 4, "dsp48e2": 1, "bram": 0,
                                    "delay_ns": 8.0, "est_mhz": 125.0}},
              "big": {"error": "yosys timed out"}}
    path.write_text(json.dumps({"config": "m3vit-tiny-cityscapes", "blocks": blocks}))
    line = depth_line("m3vit-tiny-cityscapes", path)
    assert "deepest stage 9 LUT levels + 4 carry cells + 1 DSP48E2 in slow -> est. 125 MHz" in line
    assert "not measured: big" in line
    assert depth_line("tiny", path) is None


def test_committed_result_is_for_the_m3vit_preset():
    data = json.loads(DATA_FILE.read_text())
    cfg = get_config("m3vit-tiny-cityscapes")
    assert data["config"] == cfg.name and data["target_mhz"] == cfg.hw.clock_mhz
    assert {"gemm_engine", "attention", "layernorm", "router"} <= set(data["blocks"])
    assert depth_line(cfg.name) is not None


@pytest.mark.slow
@needs_yosys
def test_m3vit_blocks_match_the_committed_result():
    """Re-measures every block that the committed file has a result for (the synthesis is
    deterministic) and compares cell counts and the deepest internal path."""
    committed = json.loads(DATA_FILE.read_text())
    names = [b for b, r in committed["blocks"].items() if "error" not in r and b in BLOCKS]
    fresh = measure_blocks(get_config(committed["config"]), names, log=lambda s: None)
    for b in names:
        got, want = fresh["blocks"][b], committed["blocks"][b]
        assert got["summary"] == want["summary"], b
        for k in ("lut_levels", "carry", "dsp48e2", "delay_ns"):
            assert got["internal"][k] == want["internal"][k], (b, k)
