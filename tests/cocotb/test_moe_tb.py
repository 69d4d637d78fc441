"""cocotb test of the MoE layer + DRAM model on their Verilog (``MoESystem`` of
tests/hw/test_moe_layer.py; run by tests/hw/test_moe_layer_verilator.py).

Params: ``config``, ``seed``, ``dead`` (force an expert that can never be chosen), ``task``.
The case (weight image, inputs, golden output of sim.golden.model.moe_block) is rebuilt here from
the seed exactly as on the pytest side. Output rows must be bit-exact; the DRAM byte counter must
equal the gate tensor plus the chosen experts' tensors; no read may touch an unchosen expert.
Streams run with random valid gaps and back-pressure. The layer's counters are logged.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from host.bench.moe_system import MoESystem, expected_bytes, moe_beats, moe_case
from host.cocotb_streams import stream_recv, stream_send
from host.streams import from_bits
from tests.harness.cocotb_tb import setup_dut, tb_params
from tests.hw.test_moe_layer import check_reads


@cocotb.test()
async def moe_layer_frame(dut):
    p, cfg = tb_params()
    seed = p["seed"]
    case = moe_case(cfg, seed, dead_expert=p["dead"], task=p["task"])
    beats = moe_beats(cfg, case)
    model = MoESystem(cfg, case)
    dut._log.info("seed=%d task=%d chosen experts %s", seed, case["task"], case["chosen"])
    shapes = {n: getattr(model, n).payload.shape() for n in ("cmd", "xn", "x", "y")}
    ports = await setup_dut(dut, inputs={n: shapes[n] for n in ("cmd", "xn", "x")},
                            outputs={"y": shapes["y"]})

    reqs = []
    req_shape = model.req.shape()

    async def watch():
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()
            if int(dut.req_fire.value):
                r = from_bits(req_shape, dut.req.value.to_unsigned())
                reqs.append((r["addr"], r["beats"]))
            await RisingEdge(dut.clk)

    cocotb.start_soon(watch())
    sends = [cocotb.start_soon(stream_send(dut.clk, ports["cmd"],
                                           [{"task": case["task"], "layer": 0}])),
             cocotb.start_soon(stream_send(dut.clk, ports["xn"], beats["xn"],
                                           rng=random.Random(seed + 1), valid_prob=0.7)),
             cocotb.start_soon(stream_send(dut.clk, ports["x"], beats["x"],
                                           rng=random.Random(seed + 2), valid_prob=0.7))]
    got = await stream_recv(dut.clk, ports["y"], len(beats["y"]), rng=random.Random(seed + 3),
                            ready_prob=0.6, timeout_cycles=20_000)
    for s in sends:
        await s
    for k, (g, w) in enumerate(zip(got, beats["y"])):
        assert g == w, f"output row {k}: got {g}, expected {w} (seed={seed})"
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    await ReadOnly()
    stats = {k: int(getattr(dut, k).value) for k in ("bytes_read", "error", "cycles",
                                                    "route_cycles", "expert_cycles",
                                                    "stall_cycles")}
    dut._log.info("stats %s", stats)
    assert stats["error"] == 0
    assert stats["bytes_read"] == expected_bytes(cfg, case), stats
    check_reads(cfg, case, reqs)
