"""Exp2 (hw/attention/exp2.py) in pysim, bit-exact against sim.golden.softmax.exp2_fixed.

Covers every x in the useful range [-(max_shift + 1), 0] (all score LSBs; below it the result is
0), plus random very negative x down to 2 * score.min_int (the most negative t - M), with a
random pipeline enable. Also
prints the max error of the fixed-point exp2 vs exact 2^x (the figure docs/attention.md quotes).
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.attention.exp2 import Exp2, exp2_params
from sim.config import get_config
from sim.golden.softmax import exp2_fixed
from host.pysim import run_pysim
from tests.harness.seeds import np_rng, rng, seed, seed_msg  # noqa: F401


def exp2_inputs(cfg, rng_np, n_random=200):
    """All x from -(max_shift + 1) (in score LSBs) to 0, then random very negative x."""
    fs = cfg.num.score.frac_bits
    lo = -(exp2_params(cfg)["max_shift"] + 1) << fs
    dense = np.arange(lo, 1, dtype=np.int64)
    xmin = 2 * cfg.num.score.min_int          # t - M reaches about twice the score range
    far = rng_np.integers(xmin, lo, size=n_random, dtype=np.int64)
    edge = np.array([xmin, cfg.num.score.min_int, lo - 1], dtype=np.int64)
    return np.concatenate([dense, far, edge])


def exp2_error_report(cfg, xs):
    """Max abs error (exp LSBs) and max relative error of exp2_fixed vs exact 2^x."""
    y = exp2_fixed(cfg, xs).astype(np.float64) * cfg.num.exp.scale
    exact = np.exp2(xs.astype(np.float64) * cfg.num.score.scale)
    abs_lsb = np.abs(y - exact) / cfg.num.exp.scale
    big = exact >= 2.0 ** -4   # relative error where the value has >= 11 significant bits
    rel = np.abs(y[big] - exact[big]) / exact[big]
    return float(abs_lsb.max()), float(rel.max())


def run_exp2(cfg, xs, rng, en_prob=0.7, pipelined=False):
    """Drive xs through Exp2 with a random enable; return the outputs in input order."""
    dut = Exp2(cfg, pipelined=pipelined)
    got = []

    async def tb(ctx):
        pipe = []          # x sampled at each enabled edge
        k = 0
        while len(got) < len(xs):
            en = rng.random() < en_prob
            if k < len(xs):
                ctx.set(dut.x, int(xs[k]))
            else:
                ctx.set(dut.x, 0)        # flush with zeros
            ctx.set(dut.en, int(en))
            await ctx.tick()
            if en:
                pipe.append(k)
                k += 1
                if len(pipe) >= dut.latency and pipe[-dut.latency] < len(xs):
                    got.append(ctx.get(dut.y))
            # with en low the output must hold
            elif len(pipe) >= dut.latency and pipe[-dut.latency] < len(xs):
                assert ctx.get(dut.y) == got[-1]
    run_pysim(dut, [tb], deadline_cycles=4 * len(xs) + 100)
    return np.array(got, dtype=np.int64)


@pytest.mark.parametrize("pipelined", [False, True], ids=["3-stage", "pipelined"])
@pytest.mark.parametrize("cfg_name", ["tiny"])
def test_exp2_bit_exact(cfg_name, pipelined, seed, rng, np_rng):
    cfg = get_config(cfg_name)
    xs = exp2_inputs(cfg, np_rng)
    want = exp2_fixed(cfg, xs)
    got = run_exp2(cfg, xs, rng, pipelined=pipelined)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, (f"{bad.size} mismatches, first x={xs[bad[0]]}: got {got[bad[0]]}, "
                           f"want {want[bad[0]]}; {seed_msg(seed)}")
    assert want.max() <= 1 << cfg.num.exp.frac_bits
    abs_lsb, rel = exp2_error_report(cfg, xs)
    print(f"exp2 ({cfg.num.exp2_segments} segments, score {cfg.num.score} -> exp {cfg.num.exp}): "
          f"max |error| vs exact 2^x = {abs_lsb:.3f} LSB, max relative error = {rel:.2e}")
    # The PWL + rounding must stay within a few output LSBs of the exact exponential.
    assert abs_lsb < 4.0


@pytest.mark.parametrize("pipelined,latency", [(False, 3), (True, 5)])
def test_exp2_latency(pipelined, latency, seed):
    """x = 0 -> 1.0 appears exactly `latency` enabled edges after it is sampled."""
    cfg = get_config("tiny")
    dut = Exp2(cfg, pipelined=pipelined)
    assert dut.latency == latency
    one = 1 << cfg.num.exp.frac_bits

    async def tb(ctx):
        ctx.set(dut.x, -(40 << cfg.num.score.frac_bits))   # 2^-40 -> 0
        ctx.set(dut.en, 1)
        for _ in range(dut.latency):
            await ctx.tick()
        assert ctx.get(dut.y) == 0
        ctx.set(dut.x, 0)
        for k in range(dut.latency):
            await ctx.tick()
            assert ctx.get(dut.y) == (one if k == dut.latency - 1 else 0), seed_msg(seed)
    run_pysim(dut, [tb], deadline_cycles=100)
