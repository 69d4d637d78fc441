"""Epilogue in pysim: every mode / GELU / mask combination per beat, bit-exact vs sim/golden;
and without GELU lanes (``hw.gelu_site = "act"``: the gelu bit is ignored, 5 stages).

Expected rows are built from the golden building blocks (``sim.fixed.requantize``,
``gelu_pwl``, ``residual_add``, ``scaled_accumulate``). Accumulators, biases, residual rows and
scores mix every magnitude with the extremes, so requantize saturates at both ends and the final
add saturates too. Both score-multiplier implementations (DSP and shift-add) are tested.
The Verilator coverage of the epilogue is through the GEMM engine (tests/hw/test_gemm_verilator.py).
"""
from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from hw.array.epilogue import Epilogue, EpilogueMode, score_on_dsp
from sim.config import Config, get_config, with_changes
from sim.cycles.gemm import epilogue_latency
from sim.fixed import requantize
from sim.golden.gelu import gelu_pwl
from sim.golden.linear import residual_add, scaled_accumulate
from tests.harness import StreamDriver, StreamMonitor, assert_beats_equal, run_pysim
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.hw.test_gemm_cases import _mixed


def make_beats(cfg: Config, count: int, nrng: np.random.Generator):
    """Random epilogue input beats, their res beats and the golden output rows."""
    n, C = cfg.num, cfg.hw.array_cols
    acc = _mixed(nrng, (count, C), n.acc_bits - 1)        # acc + bias stays inside acc_bits
    bias = _mixed(nrng, (count, C), n.bias.bits)
    # acc values that land exactly on requantize's rounding / saturation edges
    sh = n.acc_frac - n.act.frac_bits
    half = 1 << (sh - 1)
    hi, lo = n.act.max_int << sh, n.act.min_int << sh
    edges = np.array([hi + half - 1, hi + half, lo - half, lo - half - 1, half, -half, half - 1])
    pick = nrng.random((count, C)) < 0.1
    acc = np.where(pick, nrng.choice(edges, size=(count, C)), acc)
    bias = np.where(pick, 0, bias)
    mask = nrng.integers(0, 1 << C, size=count)
    mask[: count // 2] = (1 << C) - 1
    gelu = nrng.integers(0, 2, size=count)
    modes = nrng.integers(0, 3, size=count)
    x = _mixed(nrng, (count, C), n.act.bits)
    score = _mixed(nrng, (count,), n.exp.bits, signed=False)

    y = requantize(acc + bias, n.acc_frac, n.act)
    if not cfg.hw.gelu_on_reads:            # else GELU is the activation reader's; bit ignored
        y = np.where(gelu[:, None] == 1, gelu_pwl(cfg, y), y)
    out = np.where(modes[:, None] == 1, residual_add(cfg, x, y), y)
    out = np.where(modes[:, None] == 2, scaled_accumulate(cfg, x, y, score), out)
    lane_on = (mask[:, None] >> np.arange(C)) & 1
    out = np.where(lane_on == 1, out, 0)

    beats = [{"acc": acc[i], "bias": bias[i], "mask": int(mask[i]), "gelu": int(gelu[i]),
              "mode": EpilogueMode(int(modes[i]))} for i in range(count)]
    res = [{"x": x[i], "score": int(score[i])} for i in range(count) if modes[i] != 0]
    return beats, res, out


def _configs():
    tiny = Config.tiny()
    lut = with_changes(tiny, name="tiny-lut-score", hw=dict(epilogue_score_dsp=False))
    act = with_changes(tiny, name="tiny-gelu-act", hw=dict(gelu_site="act"))
    return [pytest.param(tiny, id="dsp"), pytest.param(lut, id="lut"),
            pytest.param(act, id="no-gelu-lanes")]


@pytest.mark.parametrize("bias_rounded", [False, True], ids=["bias", "bias+half"])
@pytest.mark.parametrize("cfg", _configs())
def test_epilogue_pysim(cfg, bias_rounded, seed):
    """With ``bias_rounded`` the beats carry bias + half an activation LSB (as the GEMM engine
    feeds them) and the same golden rows come out."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    beats, res, want = make_beats(cfg, 300, nrng)
    if bias_rounded:
        half = 1 << (cfg.num.acc_frac - cfg.num.act.frac_bits - 1)
        beats = [{**b, "bias": b["bias"] + half} for b in beats]
    dut = Epilogue(cfg, bias_rounded=bias_rounded)
    drv = StreamDriver(dut.i, beats, rng=rng, valid_prob=0.7)
    rdrv = StreamDriver(dut.res, res, rng=rng, valid_prob=0.6)
    mon = StreamMonitor(dut.o, len(beats), rng=rng, ready_prob=0.6)
    run_pysim(dut, [drv, rdrv, mon], deadline_cycles=20 * len(beats) + 100)
    assert_beats_equal(mon.received, want, inputs=beats, seed=seed, what="epilogue")


@pytest.mark.parametrize("site, latency", [("epilogue", 10), ("act", 5)])
def test_epilogue_full_rate_latency(site, latency, seed):
    cfg = with_changes(Config.tiny(), hw=dict(gelu_site=site))
    beats, res, want = make_beats(cfg, 50, np.random.default_rng(seed))
    dut = Epilogue(cfg)
    assert dut.latency == latency == epilogue_latency(cfg)
    drv = StreamDriver(dut.i, beats)
    rdrv = StreamDriver(dut.res, res)
    mon = StreamMonitor(dut.o, len(beats))
    run_pysim(dut, [drv, rdrv, mon], deadline_cycles=500)
    assert_beats_equal(mon.received, want, inputs=beats, seed=seed)
    assert drv.accepted_cycles == list(range(1, len(beats) + 1))
    assert {t - a for a, t in zip(drv.accepted_cycles, mon.transfer_cycles)} == {latency}


def test_score_multiplier_placement():
    assert score_on_dsp(get_config("m3vit-tiny-cityscapes"))
    assert score_on_dsp(get_config("m3vit-ecp5-85f"))   # set: DSPs, for the LUT headroom
    ecp5 = get_config("m3vit-ecp5-85f")
    auto = replace(ecp5, hw=replace(ecp5.hw, epilogue_score_dsp=None))
    assert score_on_dsp(auto)                                # 32 + 16 + 8 <= 156 MULT18X18D
    wide = replace(auto, hw=replace(auto.hw, array_rows=16))
    assert score_on_dsp(wide)                                # 128 + 16 + 8 <= 156
    wider = replace(auto, hw=replace(auto.hw, array_rows=8, array_cols=16))
    assert not score_on_dsp(wider)                           # 128 + 16 + 16 > 156
    assert score_on_dsp(get_config("tiny"))
