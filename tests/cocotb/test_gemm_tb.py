"""cocotb tests of hw.array.gemm_engine.GemmEngine on its Verilog (run by
tests/hw/test_gemm_verilator.py).

Params (``tb_params()``): ``config`` (Config.to_dict()), ``max_m`` / ``max_k`` / ``max_n``,
``cases`` (list of [m, k, n, bias, gelu, mode-name]), ``seed``, ``valid_prob``, ``ready_prob``,
``check_cycles`` (compare the engine's cycle counter with sim.cycles.gemm.gemm_cycles; only
meaningful with probabilities 1.0). The operands are generated here from the seed
(tests/hw/test_gemm_cases.py) and checked against sim/golden.
"""
from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.array.gemm_engine import GemmEngine
from host.cocotb_streams import stream_recv, stream_send
from sim.cycles.gemm import gemm_active_cycles, gemm_cycles
from tests.harness.cocotb_tb import setup_dut, tb_params
from tests.hw.test_gemm_cases import cmd_payload, make_case, res_payloads


async def _send_commands(dut, port, layout, cases, counters):
    """One command at a time; after each, wait for busy low and record (cycles, active)."""
    for c in cases:
        # Encoded here: the harness's to_bits does not handle enum-shaped struct fields.
        await stream_send(dut.clk, port, [layout.const(cmd_payload(c["cmd"])).as_bits()])
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()
            if not int(dut.busy.value):
                counters.append((int(dut.cycles.value), int(dut.mac_active_cycles.value)))
                break
        await RisingEdge(dut.clk)


@cocotb.test()
async def gemm_cases(dut):
    """Every case back to back, random gaps on all inputs and back-pressure on the output."""
    p, cfg = tb_params()
    seed = p["seed"]
    model = GemmEngine(cfg, max_m=p["max_m"], max_k=p["max_k"], max_n=p["max_n"])
    nrng = np.random.default_rng(seed)
    cases = [make_case(cfg, m, k, n, bias=bool(b), gelu=bool(g), mode=mode, rng=nrng)
             for m, k, n, b, g, mode in p["cases"]]
    dut._log.info("seed=%d, %d GEMMs on a %dx%d array", seed, len(cases), cfg.hw.array_rows,
                  cfg.hw.array_cols)

    shapes = {name: getattr(model, name).payload.shape() for name in ("act", "w", "bias", "res")}
    ports = await setup_dut(dut, inputs={"cmd": None, **shapes},
                            outputs={"o": model.o.payload.shape()})
    streams = {
        "act": np.concatenate([c["beats"]["act"] for c in cases]).tolist(),
        "w": np.concatenate([c["beats"]["w"] for c in cases]).tolist(),
        "bias": np.concatenate([c["beats"]["bias"] for c in cases]).tolist(),
        "res": [r for c in cases for r in res_payloads(c)],
    }
    vp, rp = p["valid_prob"], p["ready_prob"]
    tasks = [cocotb.start_soon(stream_send(dut.clk, ports[k], v, rng=random.Random(seed + i),
                                           valid_prob=vp))
             for i, (k, v) in enumerate(streams.items())]
    counters = []
    cmd_task = cocotb.start_soon(_send_commands(dut, ports["cmd"], model.cmd.payload.shape(), cases,
                                                counters))
    n_out = sum(len(c["out_beats"]) for c in cases)
    got = await stream_recv(dut.clk, ports["o"], n_out, rng=random.Random(seed + 10),
                            ready_prob=rp, timeout_cycles=2000)
    for t in tasks:
        await t
    await cmd_task

    at = 0
    for i, c in enumerate(cases):
        want = c["out_beats"].tolist()
        mine = got[at:at + len(want)]
        at += len(want)
        cmd = c["cmd"]
        for j, (g, w) in enumerate(zip(mine, want)):
            assert g == w, (f"GEMM {i} ({cmd['m']}x{cmd['k']}x{cmd['n']} bias={cmd['bias']} "
                            f"gelu={cmd['gelu']} mode={cmd['mode'].name}) beat {j}: got {g}, "
                            f"expected {w} (seed={seed})")
        cyc, active = counters[i]
        assert active == gemm_active_cycles(cfg, cmd["m"], cmd["k"], cmd["n"]), \
            f"GEMM {i}: mac_active_cycles {active}"
        if p.get("check_cycles"):
            want_cyc = gemm_cycles(cfg, cmd["m"], cmd["k"], cmd["n"])
            assert cyc == want_cyc, f"GEMM {i}: {cyc} cycles, model {want_cyc}"
        dut._log.info("GEMM %d %dx%dx%d: %d cycles, %d active", i, cmd["m"], cmd["k"], cmd["n"],
                      cyc, active)
