"""sim/multipliers.py against the ``$mul`` cells of the elaborated top level.

``EdgeMoeTop(cfg)`` goes to RTLIL (``amaranth.back.rtlil.convert``); Yosys runs ``proc; opt``
(``opt_merge`` joins the copies the RTLIL backend makes of an expression used several times,
e.g. a product inside ``hw_saturate``) and writes JSON. Each ``$mul`` cell is assigned to a unit
by its module path (Amaranth keeps one RTLIL module per instance) and classed by its operands:

- both operands signals: a multiplier (inventory kind ``mul``); so is a ``MULT18X18D``
  instance (the PE array's multipliers on a config with ``hw.dsp_target="ecp5"``);
- one operand a constant and the multiply signed, inside a compute unit (array, epilogue, GELU,
  attention, LayerNorm, router): a constant multiply of a data value (kind ``const``);
- any other multiply by a constant: index / address arithmetic on unsigned values (row x stride,
  a variable ``word_select`` offset = index x width), outside the inventory; the test checks
  that no multiply of two signals hides in the modules that only move data.

Shift-add products (GELU, a LUT epilogue score) have no ``$mul`` cell, so they must count 0.
Configs: tiny, tiny-ecp5 (p = 1, dw = 4: a different attention size), and tiny with the
epilogue's score multiply in LUTs (marked slow). ~12 s each (elaboration ~8 s, Yosys ~3 s).
"""
from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from amaranth.back import rtlil

from hw.array.epilogue import score_on_dsp
from hw.top.top import EdgeMoeTop
from sim.config import get_config, with_changes
from sim.multipliers import epilogue_score_on_dsps, multiplier_inventory
from tests.harness.yosys import YOSYS, needs_yosys



# module path (after "top.") -> unit; first match wins, so sub-units come first. Amaranth keeps
# one RTLIL module per instance, named by its hierarchy (``top.gemm.engine.epi.gelu1$65``).
UNIT_OF_MODULE = [
    (r"gemm\.engine\.array(\..*)?", "array"),
    (r"gemm\.engine\.epi\.gelu.*", "gelu"),
    (r"gemm\.engine\.epi(\..*)?", "epilogue"),
    (r"attn\.unit(\..*)?", "attention"),
    (r"ln\.unit(\..*)?", "layernorm"),
    (r"router(\..*)?", "router"),
    (r"(load|store|seq)(\..*)?", "control"),
]
COMPUTE = {"array", "epilogue", "gelu", "attention", "layernorm", "router"}


def _unit(module: str) -> str:
    path = module.lstrip("\\").removeprefix("top.")
    for pattern, unit in UNIT_OF_MODULE:
        if re.fullmatch(pattern, path):
            return unit
    return "address"


def rtl_mul_cells(cfg, work: Path) -> tuple[Counter, Counter, list]:
    """(signal x signal $mul per unit, signed constant $mul per compute unit, index $mul)."""
    (work / "top.il").write_text(rtlil.convert(EdgeMoeTop(cfg), name="top"))
    # the ECP5 primitives as blackboxes, so an ``Instance`` of one is a known cell
    script = ("read_verilog -lib +/ecp5/cells_bb.v; read_rtlil top.il; hierarchy -top top; "
              "proc; opt; write_json top.json")
    r = subprocess.run(YOSYS + ["-q", "-p", script], cwd=work, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    modules = json.loads((work / "top.json").read_text())["modules"]
    var, const, other = Counter(), Counter(), []
    for mname, mod in modules.items():
        unit = _unit(mname)
        for cell in mod["cells"].values():
            if cell["type"] == "MULT18X18D":
                var[unit] += 1
                continue
            if cell["type"] != "$mul":
                continue
            conn = cell["connections"]
            # Yosys JSON: a net is an int, a constant bit a string "0" / "1" / "x"
            is_const = any(all(isinstance(b, str) for b in conn[p]) for p in ("A", "B"))
            if not is_const:
                var[unit] += 1
            elif unit in COMPUTE and int(cell["parameters"]["A_SIGNED"], 2):
                const[unit] += 1
            else:
                other.append((mname, cell["attributes"].get("src", "")))
    return var, const, other


def _configs():
    tiny = get_config("tiny")
    lut_score = with_changes(tiny, name="tiny-lut-score", hw=dict(epilogue_score_dsp=False))
    return [tiny, get_config("tiny-ecp5"), pytest.param(lut_score, marks=pytest.mark.slow)]


@needs_yosys
@pytest.mark.parametrize("cfg", _configs(), ids=lambda c: getattr(c, "name", None))
def test_inventory_matches_rtl_mul_cells(cfg, tmp_path):
    var, const, other = rtl_mul_cells(cfg, tmp_path)
    inv = multiplier_inventory(cfg)
    want_var, want_const = Counter(), Counter()
    for g in inv:
        if g.kind == "mul":
            want_var[g.unit] += g.count
        elif g.kind == "const":
            want_const[g.unit] += g.count
    units = set(var) | set(want_var) | {g.unit for g in inv}
    assert {u: var[u] for u in units} == {u: want_var[u] for u in units}, cfg.name
    assert {u: const[u] for u in COMPUTE} == {u: want_const[u] for u in COMPUTE}, cfg.name
    assert var["address"] == 0
    # the RTL's array really is R x C and the attention lanes 2 x p x dw (+ extras), so the
    # config's own budget formula is a lower bound of the inventory
    h = cfg.hw
    assert var["array"] == h.macs_per_cycle
    assert var["attention"] >= 2 * h.attn_parallel * h.attn_dot_width
    # address arithmetic exists (one constant multiply per row-base computation at least)
    assert other, "expected the address arithmetic's constant multiplies"


@pytest.mark.parametrize("name", ["tiny", "tiny-ecp5", "m3vit-tiny-cityscapes", "m3vit-ecp5-85f"])
@pytest.mark.parametrize("dsp", [None, True, False])
def test_epilogue_rule_matches_rtl(name, dsp):
    cfg = with_changes(get_config(name), hw=dict(epilogue_score_dsp=dsp))
    assert epilogue_score_on_dsps(cfg) == score_on_dsp(cfg)
