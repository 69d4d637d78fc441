"""hw.norm.rsqrt.Rsqrt (the LayerNorm's 1/sqrt(V)) in pysim, bit-exact against golden rsqrt_fixed.

V values cover every power-of-four boundary, the LUT bucket edges, random magnitudes and the
largest V of the dim-192 LayerNorm; valid has random gaps and every result must appear exactly
``Rsqrt.latency`` cycles after its input, with its tag.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from hw.norm.rsqrt import Rsqrt, rsqrt_bounds
from sim.config import get_config, with_changes
from sim.golden.layernorm import rsqrt_fixed
from tests.harness import run_pysim
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


def _values(cfg, v_bits: int, r: random.Random, count: int) -> list[int]:
    f, lb = cfg.num.rsqrt_frac, cfg.num.rsqrt_lut_bits
    vmax = (1 << v_bits) - 1
    vals = {1, 2, 3, vmax, vmax - 1}
    for k in range(0, v_bits, 2):
        for off in (-1, 0, 1):
            vals.add((1 << k) + off)
        # bucket edges of the LUT at this exponent: m = i * 2^(f + 2 - lb)
        for i in range(1 << (lb - 2), 1 << lb, max(1, (1 << lb) // 16)):
            base = i << (f + 2 - lb)
            for off in (-1, 0):
                v = ((base + off) << (2 * k)) >> f if 2 * k >= f else (base + off) >> (f - 2 * k)
                vals.add(v)
    vals = sorted(v for v in vals if 1 <= v <= vmax)
    while len(vals) < count:
        vals.append(r.randrange(1, 1 << r.randrange(1, v_bits + 1)))
    r.shuffle(vals)
    return vals


@pytest.mark.parametrize("cfg", [
    get_config("tiny"),
    with_changes(get_config("tiny"), name="lut5-frac12", num=dict(rsqrt_lut_bits=5, rsqrt_frac=12)),
    with_changes(get_config("tiny"), name="lut9-frac18", num=dict(rsqrt_lut_bits=9, rsqrt_frac=18)),
], ids=lambda c: c.name)
@pytest.mark.parametrize("v_bits", [21, 46])
def test_rsqrt_bit_exact(cfg, v_bits, seed):
    r = random.Random(seed)
    dut = Rsqrt(cfg, v_bits, tag_shape=8)
    vals = _values(cfg, v_bits, r, 600)
    want_y, want_k = rsqrt_fixed(cfg, np.array(vals, dtype=np.int64))
    sent, got = [], []

    async def driver(ctx):
        cycle = 0
        for i, v in enumerate(vals):
            while r.random() < 0.3:
                ctx.set(dut.i.valid, 0)
                ctx.set(dut.i.payload.v, r.getrandbits(v_bits))   # garbage while not valid
                await ctx.tick()
                cycle += 1
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"v": v, "tag": i & 0xFF})
            await ctx.tick()
            cycle += 1
            sent.append(cycle)
        ctx.set(dut.i.valid, 0)

    async def monitor(ctx):
        cycle = 0
        while len(got) < len(vals):
            _, _, valid, y, k, tag = await ctx.tick().sample(dut.o.valid, dut.o.payload.y,
                                                             dut.o.payload.k, dut.o.payload.tag)
            cycle += 1
            if valid:
                got.append((cycle, y, k, tag))

    run_pysim(dut, [driver, monitor], deadline_cycles=4 * len(vals) + 100)
    for i, (cycle, y, k, tag) in enumerate(got):
        assert (y, k, tag) == (want_y[i], want_k[i], i & 0xFF), \
            f"V={vals[i]}: got y={y} k={k}, golden y={want_y[i]} k={want_k[i]} (seed={seed})"
        assert cycle - sent[i] == Rsqrt.latency, f"V={vals[i]}: latency {cycle - sent[i]}"
    assert max(want_y) <= dut.y_max


def test_newton_intermediates_fit_one_18x18_multiplier_each():
    """With the default f = 15 every Newton operand is <= 17 bits (unsigned): one MULT18X18D."""
    b = rsqrt_bounds(get_config("tiny"))
    assert b["d_min"] > 0
    assert all(v.bit_length() <= 17 for v in b.values()), b
