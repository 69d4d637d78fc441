"""MoE layer integration (hw/moe_layer.py) in pysim: bit-exact vs the golden moe_block.

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
from hw.mem.dram_model import DramModel
from hw.moe_layer import MoELayer, gate_address_table, moe_cmd_layout
from hw.prefetcher import expert_address_table, prefetch_geometry
from model_io.export import build_image
from sim.config import Config
from sim.golden import quantize_params
from sim.golden.layernorm import layernorm
from sim.golden.model import moe_block
from sim.golden.router import route
from sim.params import random_params
from tests.harness.pysim import StreamDriver, StreamMonitor, run_pysim
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.streams import assert_beats_equal
from tests.hw.test_prefetcher import expert_ranges

__all__ = ["MoESystem", "moe_case", "moe_beats"]


@lru_cache(maxsize=8)
def _params(cfg: Config, pseed: int, dead_expert: bool):
    p = random_params(cfg, pseed)
    if dead_expert:
        # Gate rows 0, 1 and E-1 identical in every MoE block and task: expert E-1 always ties
        # with experts 0 and 1 and loses the tie (lowest index first), so with top-2 it is never
        # chosen.
        for b in cfg.model.moe_blocks:
            for t in range(cfg.model.tasks):
                g = p[f"blocks.{b}.mlp.gates.{t}.weight"]
                g[1] = g[0]
                g[-1] = g[0]
    qp, _ = quantize_params(cfg, p)
    blob, entries = build_image(cfg, qp)
    return qp, blob, entries


def moe_case(cfg: Config, seed: int, dead_expert: bool = False, task: int | None = None):
    """Everything one MoE-layer test needs: params, DRAM slice, inputs, expected output."""
    rng = np.random.default_rng(seed)
    qp, blob, entries = _params(cfg, seed % 3, dead_expert)
    block = cfg.model.moe_blocks[0]
    task = int(rng.integers(cfg.model.tasks)) if task is None else task
    act = cfg.num.act
    x = np.clip(np.round(rng.normal(0, 3.0, (cfg.model.tokens, cfg.model.dim)) * (1 << act.frac_bits)),
                act.min_int, act.max_int).astype(np.int64)
    p = f"blocks.{block}."
    xn = layernorm(cfg, x, qp[p + "norm2.weight"], qp[p + "norm2.bias"])
    want = moe_block(cfg, qp, block, x, task)
    routing = route(cfg, xn, qp[p + f"mlp.gates.{task}.weight"])
    chosen = sorted(set(routing.experts.ravel().tolist()))
    # The DRAM model holds the MoE part of the image (gates and experts of every MoE block).
    lo = min(e["offset"] for e in entries if ".mlp.gates." in e["name"])
    hi = max(e["offset"] + e["length"] for e in entries if ".mlp.experts." in e["name"])
    image = blob[lo:hi + (-hi % 64)]
    return dict(qp=qp, entries=entries, block=block, task=task, x=x, xn=xn, want=want,
                chosen=chosen, image=image, base=lo,
                expert_table=expert_address_table(cfg, entries),
                gate_table=gate_address_table(cfg, entries))


def moe_beats(cfg: Config, case) -> dict:
    R, C = cfg.hw.array_rows, cfg.hw.array_cols
    xn, x, want = case["xn"], case["x"], case["want"]
    return dict(xn=xn.reshape(-1, R).tolist(), x=x.reshape(-1, C).tolist(),
                y=want.reshape(-1, C).tolist())


def expected_bytes(cfg: Config, case) -> int:
    W = cfg.hw.mem_bytes_per_cycle
    gate = -(-cfg.model.dim * cfg.model.experts * cfg.num.weight.storage_bytes // W) * W
    return gate + sum(prefetch_geometry(cfg)["bytes"]) * len(case["chosen"])


class MoESystem(wiring.Component):
    """MoELayer + DramModel; the read-request channel is mirrored out for monitors."""

    def __init__(self, cfg: Config, case):
        self.cfg = cfg
        self.layer = MoELayer(cfg, case["expert_table"], case["gate_table"])
        self.dram = DramModel(cfg, case["image"], base=case["base"])
        L = self.layer
        cb = cfg.hw.moe_counter_bits
        super().__init__({
            "cmd": In(stream.Signature(moe_cmd_layout(cfg, L.layers))),
            "xn": In(stream.Signature(L.xn.payload.shape())),
            "x": In(stream.Signature(L.x.payload.shape())),
            "y": Out(stream.Signature(L.y.payload.shape())),
            "req_fire": Out(1), "req": Out(req_layout(cfg)),
            "bytes_read": Out(cb), "error": Out(1),
            "cycles": Out(cb), "route_cycles": Out(cb), "expert_cycles": Out(cb),
            "stall_cycles": Out(cb), "first_wait_cycles": Out(cb),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.layer, m.submodules.dram = L, dram = self.layer, self.dram
        wiring.connect(m, L.bus, dram.rd)
        for name in ("cmd", "xn", "x"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(L, name))
        wiring.connect(m, L.y, wiring.flipped(self.y))
        m.d.comb += [
            self.req_fire.eq(L.bus.rd_req.valid & L.bus.rd_req.ready),
            self.req.eq(L.bus.rd_req.payload), self.bytes_read.eq(dram.bytes_read),
            self.error.eq(dram.error), self.cycles.eq(L.cycles),
            self.route_cycles.eq(L.route_cycles), self.expert_cycles.eq(L.expert_cycles),
            self.stall_cycles.eq(L.stall_cycles), self.first_wait_cycles.eq(L.first_wait_cycles),
            dram.wr.wr_req.valid.eq(0), dram.wr.wr_data.valid.eq(0),
        ]
        return m


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
