"""The MoE cycle model (sim/cycles/moe.py) against its RTL and its own invariants.

- constants shared with the RTL (exp2 latency, router latency / throughput, load geometry);
- the MoE layer model vs the RTL (pysim, tiny-sized) cycle counters for a few memory bandwidths,
  latencies and outstanding limits: total, EXPERTS phase and stall cycles within 1 %;
- properties of the analytic model on the M3ViT shapes: bytes only for chosen experts, stalls
  non-increasing with bandwidth, prefetch hidden (zero stall after the first load) at high
  bandwidth and not at low.
"""
from __future__ import annotations

import pytest

from hw.attention.exp2 import Exp2
from hw.moe.prefetcher import prefetch_geometry
from hw.moe.router import Router
from sim.config import Config, get_config, with_changes
from sim.cycles.moe import (EXP2_LATENCY, hiding_bandwidth, load_geometry, moe_layer_cycles,
                            router_cycles_per_token, router_latency, tokens_per_expert)
from sim.golden.router import expert_queues, route
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from host.bench.moe_system import moe_beats, moe_case, run_moe_system


@pytest.mark.parametrize("name", ["tiny", "m3vit-tiny-cityscapes", "m3vit-ecp5-85f"])
def test_constants_match_rtl(name):
    cfg = get_config(name)
    assert EXP2_LATENCY == Exp2.latency
    r = Router(cfg)
    r._MustUse__silence = True          # only its documented figures are used, not elaborated
    assert router_latency(cfg) == r.latency
    assert router_cycles_per_token(cfg) == r.cycles_per_token
    assert load_geometry(cfg) == prefetch_geometry(cfg)


def _rtl_counters(cfg, seed):
    case = moe_case(cfg, seed)
    received, st = run_moe_system(cfg, case)
    assert received == moe_beats(cfg, case)["y"]
    p = f"blocks.{case['block']}."
    r = route(cfg, case["xn"], case["qp"][p + f"mlp.gates.{case['task']}.weight"])
    return st, [len(q.tokens) for q in expert_queues(cfg, r)]


@pytest.mark.parametrize("hw", [
    dict(),                                                        # tiny: 8 B/cycle, latency 8
    dict(mem_bytes_per_cycle=2, mem_latency=12),                   # bandwidth-bound
    dict(mem_max_outstanding=1, mem_max_burst=4, mem_latency=12),  # latency-bound bursts
], ids=["tiny", "bw2", "outstanding1"])
def test_model_matches_rtl(hw, seed):
    cfg = with_changes(Config.tiny(), hw=hw)
    st, counts = _rtl_counters(cfg, seed)
    mc = moe_layer_cycles(cfg, counts)
    assert st["bytes_read"] == mc.bytes
    for rtl, model, what in ((st["cycles"], mc.total, "total"),
                             (st["expert_cycles"], mc.experts, "experts"),
                             (st["stall_cycles"], mc.stall, "stall"),
                             (st["route_cycles"], mc.route, "route"),
                             (st["first_wait_cycles"], mc.first_wait, "first wait")):
        assert abs(rtl - model) <= 0.01 * rtl + 2, f"{what}: RTL {rtl}, model {model} ({st})"


@pytest.mark.parametrize("name", ["m3vit-tiny-cityscapes", "m3vit-ecp5-85f"])
def test_model_properties(name):
    cfg = get_config(name)
    even = tokens_per_expert(cfg, "even")
    half = tokens_per_expert(cfg, "half")
    assert sum(even) == sum(half) == cfg.model.tokens * cfg.model.top_k
    g = load_geometry(cfg)
    full, part = moe_layer_cycles(cfg, even), moe_layer_cycles(cfg, half)
    gate = g["gate_beats"] * g["W"]
    # an expert's matrices are loaded once per chunk of at most h_rows tokens (hw.hidden_rows;
    # m3vit-ecp5-85f: 32, so the 33-token queues of "half" load twice)
    loads = lambda counts: sum(-(-c // cfg.h_rows) for c in counts)   # noqa: E731
    assert full.bytes - gate == sum(g["bytes"]) * loads(even)
    assert part.bytes - gate == sum(g["bytes"]) * loads(half)
    sweep = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    stalls = [moe_layer_cycles(cfg, even, beat=w).prefetch_stall for w in sweep]
    assert all(a >= b for a, b in zip(stalls, stalls[1:])), stalls
    assert stalls[0] > 0 and stalls[-1] == 0
    assert hiding_bandwidth(cfg, even, sweep) is not None
