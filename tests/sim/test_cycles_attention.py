"""Cycle / traffic model of the attention unit (sim/cycles/attention.py) against the RTL.

The RTL figures come from host.bench.attention.simulate_attention (pysim, full rate, outputs
checked bit-exact there): the isolated-head cycle count must equal attention_head_cycles, the
per-head increment of back-to-back heads attention_steady_cycles, the K/V byte counter
attention_kv_bytes. Also the properties the design claims (bandwidth independent of p, cycles
~ 1/p) on the M3ViT head, and the model's constants against the RTL's.
"""
from __future__ import annotations

import pytest
from amaranth.hdl import Fragment

from host.bench.attention import simulate_attention
from sim.config import get_config, with_changes
from sim.golden.softmax import reciprocal
from sim.cycles.attention import (E_LATENCY_FIXED, LANE_EXP2_LATENCY, attention_head_cycles,
                                  attention_kv_bytes, e_latency,
                                  attention_schedule, attention_steady_cycles, attention_sweep,
                                  divider_bits_per_cycle, recip_q_bits)


@pytest.mark.parametrize("dw,levels", [(1, 0), (2, 1), (4, 2), (8, 3), (16, 4), (64, 6)])
def test_constants_match_rtl(dw, levels):
    from hw.attention.attention_lane import AttentionLane, attention_params
    from hw.attention.exp2 import Exp2
    base = get_config("tiny" if dw <= 16 else "m3vit-tiny-cityscapes")
    cfg = with_changes(base, hw=dict(attn_parallel=1, attn_dot_width=dw))
    lane = AttentionLane(cfg, attention_params(cfg), 0)
    Fragment.get(lane, None)        # elaborates (its asserts check the tree depth and Exp2's)
    # registers counted by hand in attention_lane.py: q*k operands + products (2), one per
    # adder-tree level, dot (1), clamp / partial products / their sum / round (4), ceil (1),
    # max (1), then the 5-stage Exp2
    assert lane.latency == e_latency(dw) == 2 + levels + 1 + 4 + 1 + 1 + 5
    assert LANE_EXP2_LATENCY == Exp2.PIPELINED_LATENCY == 5
    assert E_LATENCY_FIXED == 9
    # q_bits is exactly the width of the largest reciprocal (smallest possible softmax sum).
    cfg = get_config("tiny")
    r_max = int(reciprocal(cfg, 1 << (cfg.num.exp.frac_bits - 1)))
    assert r_max.bit_length() == recip_q_bits(cfg)


@pytest.mark.parametrize("p,dw,tokens", [(2, 16, None), (3, 4, None), (8, 16, 33), (1, 8, 9)])
def test_model_matches_rtl(p, dw, tokens):
    cfg = with_changes(get_config("tiny"), hw=dict(attn_parallel=p, attn_dot_width=dw))
    r = simulate_attention(cfg, tokens if tokens else cfg.model.tokens, heads=2)
    assert r["cycles_first_head"] == attention_head_cycles(cfg, tokens)
    assert r["cycles_per_head_steady"] == attention_steady_cycles(cfg, tokens)
    assert r["kv_bytes"] == 2 * attention_kv_bytes(cfg, tokens)
    # One K/V beat (dw keys + dw values) per cycle while streaming, whatever p is.
    assert r["kv_bytes_per_cycle"] == pytest.approx(2 * dw * cfg.num.act.storage_bytes)
    assert r["max_bytes_per_cycle"] == 2 * dw * cfg.num.act.storage_bytes


def test_bandwidth_constant_cycles_drop():
    cfg = get_config("m3vit-tiny-cityscapes")
    sweep = attention_sweep(cfg, (1, 2, 4, 8))
    bw = {s["kv_bytes_per_steady_cycle"] for s in sweep}
    assert bw == {2 * cfg.hw.attn_dot_width * cfg.num.act.storage_bytes}
    base = sweep[0]["steady_cycles"]
    for s in sweep:
        # ceil(N / p) groups: within one group of the ideal N^2 / p.
        assert s["steady_cycles"] <= base / s["p"] + cfg.model.tokens
        assert s["cycles"] >= s["steady_cycles"]


@pytest.mark.parametrize("name", ["tiny", "m3vit-tiny-cityscapes", "m3vit-ecp5-85f"])
def test_schedule_keeps_up(name):
    """Presets: the dividers and the normalizer drain a group within one group period."""
    cfg = get_config(name)
    s = attention_schedule(cfg)
    period = s.N * s.c
    assert s.div_latency + 1 <= period // 2 or s.div_bits_per_cycle == recip_q_bits(cfg)
    assert s.div_latency + 8 + s.p * (s.hd // s.norm_width) <= period
    assert s.hd % s.norm_width == 0
    assert divider_bits_per_cycle(cfg, 10 ** 6) == 1
