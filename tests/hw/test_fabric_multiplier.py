"""hw/fabric/multiplier.py: every register combination is the plain product, shifted by the
documented latency, with the clock enable toggling at random.

- generic target in pysim, against numpy (int64 products of the operands);
- ECP5 target (a MULT18X18D ``Instance``) in Icarus Verilog on tests/hw/ecp5_models/MULT18X18D.v,
  against the same numpy reference, and the generic target's Verilog on the same testbench;
- construction errors.

Operands include the extremes (-2^17, 2^17 - 1 for signed 18 bits; 0 and 2^18 - 1 unsigned).
"""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Module, Shape, signed, unsigned

from hw.fabric.multiplier import Multiplier
from tests.harness.cycle_vectors import (extreme_operands, pipeline_reference, run_icarus,
                                         run_pysim)
from tests.harness.seeds import seed_msg, seed  # noqa: F401  (pytest fixture)

MODELS = Path(__file__).parent / "ecp5_models"
REGS = list(itertools.product([False, True], repeat=3))       # input, pipeline, output
SHAPES = [(signed(18), signed(18)), (unsigned(18), unsigned(18)), (signed(18), unsigned(18)),
          (signed(9), signed(16)), (unsigned(7), signed(18))]
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="Icarus Verilog (iverilog) is not on PATH: "
                                         "apt-get install iverilog")


def _stimulus(seed, a_shape, b_shape, n=160):
    rng = np.random.default_rng(seed)
    a = extreme_operands(rng, a_shape, n)
    b = extreme_operands(rng, b_shape, n)
    en = (rng.random(n) < 0.7).astype(np.int64)
    return a, b, en


def _check(got, a, b, en, latency, p_shape, where):
    products = [int(x) * int(y) for x, y in zip(a, b)]           # Python ints: exact
    expected, defined = pipeline_reference(products, en, latency)
    w = p_shape.width
    for t in np.flatnonzero(defined):
        v = got[t]
        assert v is not None, f"{where}: p undefined at cycle {t}"
        if p_shape.signed and v >= 1 << (w - 1):
            v -= 1 << w
        assert v == expected[t], f"{where}: cycle {t}: p = {v}, want {expected[t]}"
    assert defined.sum() > len(a) // 2


def _name(regs):
    return "".join(c if r else "-" for c, r in zip("ipo", regs))


@pytest.mark.parametrize("regs", REGS, ids=_name)
@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_generic_pysim(regs, shapes, seed):
    a, b, en = _stimulus(seed, *shapes)
    dut = Multiplier(*shapes, input_reg=regs[0], pipeline_reg=regs[1], output_reg=regs[2])
    assert dut.latency == sum(regs)
    got = run_pysim(dut, {"a": a, "b": b, "en": en}, ["p"])["p"]
    _check(got, a, b, en, dut.latency, Shape.cast(dut.p.shape()), seed_msg(seed))


@needs_icarus
@pytest.mark.parametrize("target", ["ecp5", "generic"])
@pytest.mark.parametrize("regs", REGS, ids=_name)
def test_icarus(target, regs, seed, tmp_path):
    shapes = SHAPES[regs.count(True) % len(SHAPES)] if target == "generic" else None
    for k, shapes in enumerate([shapes] if shapes else SHAPES):
        a, b, en = _stimulus(seed + k, *shapes)
        dut = Multiplier(*shapes, input_reg=regs[0], pipeline_reg=regs[1], output_reg=regs[2],
                         target=target)
        run_dir = tmp_path / f"s{k}"
        run_dir.mkdir()
        got = run_icarus(dut, {"a": a, "b": b, "en": en}, ["p"], run_dir,
                         sources=[MODELS / "MULT18X18D.v"] if target == "ecp5" else ())["p"]
        _check(got, a, b, en, dut.latency, Shape.cast(dut.p.shape()),
               f"{target} {shapes} {seed_msg(seed + k)}")


def test_errors():
    with pytest.raises(ValueError, match=r"Multiplier: target must be one of generic, ecp5, "
                                         r"got 'xilinx'"):
        Multiplier(signed(8), signed(8), target="xilinx")
    with pytest.raises(ValueError, match="Multiplier: a MULT18X18D takes operands up to 18 "
                                         "bits, got b of 19"):
        Multiplier(signed(8), signed(19), target="ecp5")
    wide = Multiplier(signed(8), signed(19))                               # generic: any width
    assert wide.p.shape() == signed(27)
    rtlil.convert(wide)


def test_ecp5_in_reset_less_domain():
    """A board's default clock domain can be reset-less: RST0 is then tied low (elaborating
    ``ResetSignal`` of such a domain would raise)."""
    m = Module()
    m.domains.sync = ClockDomain("sync", reset_less=True)
    m.submodules.mult = Multiplier(signed(16), signed(16), input_reg=True, output_reg=True,
                                   target="ecp5")
    text = rtlil.convert(m, ports=[m.submodules.mult.a, m.submodules.mult.b,
                                   m.submodules.mult.p])
    assert "connect \\RST0 1'0" in text
