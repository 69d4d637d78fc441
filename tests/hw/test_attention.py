"""Attention unit (hw/attention/attention.py) in pysim, bit-exact against sim.golden.softmax.attention_head.

Covers: the tiny config (2 heads back to back) with random valid gaps on Q and K/V and random
back-pressure on O; several (p, dot width) shapes, including c = head_dim / dw > 1 chunks per
key and partial last groups (N not a multiple of p); saturating scores (huge q, k); full-rate
runs whose cycle count must equal sim.cycles.attention.attention_head_cycles and whose K/V byte
counter must equal the model's traffic; one M3ViT head (129 x 64, slow).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from hw.attention.attention import Attention
from hw.attention.attention_lane import attention_params
from hw.attention.attention_stream import attention_reference, kv_beats, o_beats, q_beats
from sim.config import get_config, with_changes
from sim.cycles.attention import (attention_head_cycles, attention_kv_bytes,
                                  attention_steady_cycles)
from host.pysim import StreamDriver, StreamMonitor, run_pysim
from tests.harness.seeds import np_rng, rng, seed  # noqa: F401
from host.streams import assert_beats_equal


def attention_inputs(ap, heads: int, rng_np: np.random.Generator, scale: int):
    """Random q, k, v (heads, N, hd) in [-scale, scale) activation LSBs."""
    return [rng_np.integers(-scale, scale, size=(heads, ap.N, ap.hd)) for _ in range(3)]


def run_attention(cfg, q, k, v, *, tokens=None, rng=None, valid_prob=1.0, ready_prob=1.0):
    """Simulate; returns (dut, received O beats, expected O beats, drivers, monitor, stats)."""
    dut = Attention(cfg, tokens)
    ap = dut.ap
    want = o_beats(cfg, attention_reference(cfg, q, k, v), ap.norm_width)
    dq = StreamDriver(dut.q, q_beats(cfg, q), rng=rng, valid_prob=valid_prob)
    dkv = StreamDriver(dut.kv, kv_beats(cfg, k, v), rng=rng, valid_prob=valid_prob)
    mon = StreamMonitor(dut.o, len(want), rng=rng, ready_prob=ready_prob)
    stats = {}

    async def read_counters(ctx):
        # Runs until the monitor is done; keeps the last counter values.
        while True:
            await ctx.tick()
            stats["kv_bytes"] = ctx.get(dut.kv_bytes)
            stats["cycles"] = ctx.get(dut.cycles)

    heads = q.shape[0]
    budget = int(heads * ap.G * ap.N * ap.c / max(min(valid_prob, ready_prob), 0.1) * 4) + 2000
    run_pysim(dut, [dq, dkv, mon], background=[read_counters], deadline_cycles=budget)
    return dut, mon.received, want, dkv, mon, stats


def _shapes():
    tiny = get_config("tiny")
    out = [pytest.param(tiny, id="tiny-p2-dw16")]
    for p, dw in [(3, 4), (4, 8), (1, 16), (5, 2)]:
        out.append(pytest.param(with_changes(tiny, hw=dict(attn_parallel=p, attn_dot_width=dw)),
                                id=f"p{p}-dw{dw}"))
    return out


@pytest.mark.parametrize("cfg", _shapes())
def test_attention_random_stalls(cfg, seed, rng, np_rng):
    """Two heads back to back, random gaps and back-pressure, bit-exact."""
    ap = attention_params(cfg)
    q, k, v = attention_inputs(ap, 2, np_rng, 3 << cfg.num.act.frac_bits)
    _, got, want, *_ = run_attention(cfg, q, k, v, rng=rng, valid_prob=0.7, ready_prob=0.5)
    assert_beats_equal(got, want, seed=seed, what=f"attention O ({cfg.name})")


@pytest.mark.parametrize("cfg", [_shapes()[0], _shapes()[1]])
def test_attention_heavy_backpressure(cfg, seed, rng, np_rng):
    """O rarely ready: the lanes must stall on a full hold register (checked to happen)."""
    ap = attention_params(cfg)
    q, k, v = attention_inputs(ap, 2, np_rng, 3 << cfg.num.act.frac_bits)
    dut, got, want, dkv, mon, _ = run_attention(cfg, q, k, v, rng=rng, valid_prob=0.9,
                                                ready_prob=0.04)
    assert_beats_equal(got, want, seed=seed, what="attention O (heavy back-pressure)")
    acc = dkv.accepted_cycles
    gaps = sum(b - a - 1 for a, b in zip(acc, acc[1:]))
    # With O at 4 % the lanes outrun the normalizer: K/V acceptance must have been held off
    # much longer than the 10 % of input gaps alone would explain.
    assert gaps > len(acc), f"no lane stall observed (K/V gaps {gaps})"


@pytest.mark.parametrize("cfg", _shapes()[:3])
def test_attention_saturating_scores(cfg, seed, rng, np_rng):
    """Full-range q, k, v: scores saturate at the score format's limits, max grows by huge
    steps (shifts beyond the accumulator width)."""
    ap = attention_params(cfg)
    big = 1 << (cfg.num.act.bits - 1)
    q, k, v = attention_inputs(ap, 1, np_rng, big)
    _, got, want, *_ = run_attention(cfg, q, k, v, rng=rng, valid_prob=0.8, ready_prob=0.8)
    assert_beats_equal(got, want, seed=seed, what="attention O (saturating)")


@pytest.mark.parametrize("cfg", _shapes())
def test_attention_full_rate_cycles(cfg, seed, np_rng):
    """Always-valid / always-ready: exact cycle count and K/V bytes vs sim.cycles.attention."""
    heads = 2
    ap = attention_params(cfg)
    q, k, v = attention_inputs(ap, heads, np_rng, 2 << cfg.num.act.frac_bits)
    dut, got, want, dkv, mon, stats = run_attention(cfg, q, k, v)
    assert_beats_equal(got, want, seed=seed)
    model = attention_head_cycles(cfg) + (heads - 1) * attention_steady_cycles(cfg)
    assert mon.transfer_cycles[-1] == model, f"RTL {mon.transfer_cycles[-1]} cycles, model {model}"
    acc = dkv.accepted_cycles
    assert acc == list(range(acc[0], acc[0] + len(acc))), "K/V stream stalled at full rate"
    assert stats["kv_bytes"] == heads * attention_kv_bytes(cfg)
    print(f"{cfg.name} p={ap.p} dw={ap.dw}: {heads} heads in {model} cycles, "
          f"{stats['kv_bytes'] / (acc[-1] - acc[0] + 1):.1f} K/V bytes per streaming cycle")


@pytest.mark.parametrize("tokens", [None, 33])
def test_attention_tokens_param(tokens, seed, rng, np_rng):
    """A token count other than the config's (33: the benchmark size) with p = 8 lanes."""
    cfg = with_changes(get_config("tiny"), hw=dict(attn_parallel=8, attn_dot_width=16))
    ap = attention_params(cfg, tokens)
    q, k, v = attention_inputs(ap, 1, np_rng, 4 << cfg.num.act.frac_bits)
    _, got, want, *_ = run_attention(cfg, q, k, v, tokens=tokens, rng=rng, valid_prob=0.8,
                                     ready_prob=0.7)
    assert_beats_equal(got, want, seed=seed, what=f"attention O (N={ap.N}, p=8)")


@pytest.mark.slow
def test_attention_m3vit_head(seed, np_rng):
    """One M3ViT head (129 tokens x head_dim 64, p = 4, 64 multipliers per lane), full rate."""
    cfg = get_config("m3vit-tiny-cityscapes")
    ap = attention_params(cfg)
    one = 1 << cfg.num.act.frac_bits
    q, k, v = (np_rng.normal(0, 2 * one, size=(1, ap.N, ap.hd)).astype(np.int64)
               for _ in range(3))
    _, got, want, dkv, mon, stats = run_attention(cfg, q, k, v, rng=random.Random(seed),
                                                  valid_prob=0.95, ready_prob=0.9)
    assert_beats_equal(got, want, seed=seed, what="attention O (M3ViT head)")
    assert stats["kv_bytes"] == attention_kv_bytes(cfg)
