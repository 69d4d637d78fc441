"""An MoE layer on its own memory, for benches and block tests: stimulus, expectation, system.

``moe_case(cfg, seed)`` builds random params, the MoE part of the weight image, the inputs X and
XN = LN2(X) and the golden output; ``MoESystem`` is :class:`~host.bench.moe_layer.MoELayer` on an
:class:`~hw.mem.onchip_memory.OnChipMemory` holding that image, with its read requests mirrored
out for monitors.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from host.bench.moe_layer import MoELayer, gate_address_table, moe_cmd_layout
from host.pysim import StreamDriver, StreamMonitor, run_pysim
from hw.mem.bus import req_layout
from hw.mem.onchip_memory import OnChipMemory
from hw.moe.prefetcher import expert_address_table, prefetch_geometry
from sim.config import Config
from sim.golden import quantize_params
from sim.golden.layernorm import layernorm
from sim.golden.model import moe_block
from sim.golden.router import route
from sim.params import random_params
from sim.weight_image import build_image

__all__ = ["MoESystem", "moe_case", "moe_beats", "expected_bytes", "run_moe_system",
           "COUNTERS"]

# The status counters MoESystem exposes (read once the last output beat is out).
COUNTERS = ("cycles", "route_cycles", "expert_cycles", "stall_cycles", "first_wait_cycles",
            "bytes_read")


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
    x = np.clip(np.round(rng.normal(0, 3.0, (cfg.model.tokens, cfg.model.dim))
                         * (1 << act.frac_bits)),
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
    """MoELayer + OnChipMemory; the read-request channel is mirrored out for monitors.

    Parameters
    ----------
    cfg : Config
    case : dict
        From :func:`moe_case`: ``image``, ``base``, ``expert_table``, ``gate_table``.

    Ports
    -----
    cmd, xn, x, y : streams
        The :class:`~host.bench.moe_layer.MoELayer` ports, passed through.
    req_fire, req : Out
        A copy of each read request the layer issues (``req_fire`` on its handshake).
    bytes_read, error : Out
        The memory's byte counter and sticky address error.
    cycles, route_cycles, expert_cycles, stall_cycles, first_wait_cycles : Out
        The layer's counters.

    Latency / throughput: the layer's, on the memory's ``mem_latency`` and bandwidth.
    """

    def __init__(self, cfg: Config, case):
        self.cfg = cfg
        self.layer = MoELayer(cfg, case["expert_table"], case["gate_table"])
        self.dram = OnChipMemory(cfg, case["image"], base=case["base"])
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


def run_moe_system(cfg: Config, case, *, deadline_cycles: int = 200_000) -> tuple[list, dict]:
    """Run one MoE layer at full rate in pysim: (output beats received, status counters)."""
    beats = moe_beats(cfg, case)
    dut = MoESystem(cfg, case)
    drivers = [StreamDriver(dut.cmd, [{"task": case["task"], "layer": 0}]),
               StreamDriver(dut.xn, beats["xn"]), StreamDriver(dut.x, beats["x"])]
    mon = StreamMonitor(dut.y, len(beats["y"]))
    counters = {}

    async def finish(ctx):
        await mon(ctx)
        await ctx.tick()
        counters.update({k: ctx.get(getattr(dut, k)) for k in COUNTERS})

    run_pysim(dut, [*drivers, finish], deadline_cycles=deadline_cycles)
    return mon.received, counters
