"""MoE layer integration (host/bench/moe_layer.py) in pysim: bit-exact vs the golden moe_block.

The layer (gate GEMM, router, reorder, prefetcher, GEMM engine with the SCALED epilogue) runs
against a DRAM model with latency holding the exported weight image (model_io build_image layout).
Inputs are the residual X (random activations) and XN = LN2(X) from the golden LayerNorm; the
expected output is sim.golden.model.moe_block(cfg, qp, block, X, task) -- which recomputes LN2
itself, so the test also proves the hardware consumed exactly the golden XN. Also checked: the
bytes the DRAM served are exactly the task's gate tensor plus every chosen expert's four tensors,
and no read touches an expert no token chose (one variant forces an expert that can never win).
Shared with the cocotb test (tests/cocotb/test_moe_tb.py).
"""
from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mem.bus import req_layout
from hw.mem.onchip_memory import OnChipMemory
from host.bench.moe_layer import MoELayer, gate_address_table, moe_cmd_layout
from hw.moe.prefetcher import expert_address_table, prefetch_geometry
from sim.weight_image import build_image
from sim.config import Config
from sim.golden import quantize_params
from sim.golden.layernorm import layernorm
from sim.golden.model import moe_block
from sim.golden.router import route
from sim.params import random_params
from host.pysim import StreamDriver, StreamMonitor, run_pysim
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from host.streams import assert_beats_equal
from host.bench.moe_system import MoESystem, expected_bytes, moe_beats, moe_case
from tests.hw.test_prefetcher import expert_ranges

def check_reads(cfg: Config, case, reqs) -> None:
    """No read request touches an unchosen expert; each chosen tensor is read exactly once."""
    W = cfg.hw.mem_bytes_per_cycle
    touched = [(a, a + n * W) for a, n in reqs]
    for e in range(cfg.model.experts):
        for lo, hi in expert_ranges(cfg, case["entries"], case["block"], e):
            hit = sum(max(0, min(hi, b) - max(lo, a)) for a, b in touched)
            want = (hi - lo) if e in case["chosen"] else 0
            assert hit == want, f"expert {e} [{lo:#x},{hi:#x}): {hit} bytes read, expected " \
                                f"{want}; chosen {case['chosen']}"


def _cases():
    tiny = Config.tiny()
    return [pytest.param(tiny, False, id="tiny"),
            pytest.param(tiny, True, id="tiny-dead-expert")]


@pytest.mark.parametrize("cfg,dead", _cases())
def test_moe_layer(cfg, dead, seed):
    case = moe_case(cfg, seed, dead_expert=dead)
    if dead:
        assert cfg.model.experts - 1 not in case["chosen"]
    beats = moe_beats(cfg, case)
    dut = MoESystem(cfg, case)
    rng = random.Random(seed)
    reqs = []
    drivers = [StreamDriver(dut.cmd, [{"task": case["task"], "layer": 0}]),
               StreamDriver(dut.xn, beats["xn"], rng=random.Random(seed + 1), valid_prob=0.7),
               StreamDriver(dut.x, beats["x"], rng=random.Random(seed + 2), valid_prob=0.7)]
    mon = StreamMonitor(dut.y, len(beats["y"]), rng=random.Random(seed + 3), ready_prob=0.6)
    stats = {}

    async def watch(ctx):
        async for _, _, fire, req in ctx.tick().sample(dut.req_fire, dut.req):
            if fire:
                reqs.append((req.addr, req.beats))

    async def finish(ctx):
        await mon(ctx)
        await ctx.tick().repeat(2)
        for k in ("bytes_read", "error", "cycles", "route_cycles", "expert_cycles",
                  "stall_cycles", "first_wait_cycles"):
            stats[k] = ctx.get(getattr(dut, k))

    run_pysim(dut, [*drivers, finish], background=[watch], deadline_cycles=60_000)
    assert_beats_equal(mon.received, beats["y"], seed=seed, what="MoE layer output rows")
    assert not stats["error"]
    assert stats["bytes_read"] == expected_bytes(cfg, case), (stats, case["chosen"])
    check_reads(cfg, case, reqs)
    print(f"[moe] chosen {case['chosen']} stats {stats}")
