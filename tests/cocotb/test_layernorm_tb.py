"""cocotb tests of hw.norm.layernorm.LayerNorm on its Verilog (run by test_layernorm_verilator.py).

Not collected by pytest on its own; ``run_block_verilator`` passes ``params``: ``config``
(Config.to_dict()), ``lanes``, ``banks``, ``rows`` (random rows per parameter set), ``seed``,
``valid_prob``, ``ready_prob``. Expectations come from sim.golden.layernorm only.
"""
from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge

from hw.norm.layernorm import param_layout, row_layout
from host.cocotb_streams import stream_recv, stream_send
from sim.cycles import layernorm as ln_cycles
from sim.golden.layernorm import layernorm
from tests.harness.cocotb_tb import setup_dut, tb_params
from tests.hw.test_layernorm import (extreme_rows, param_beats, random_params, random_rows,
                                     to_beats)


async def _setup(dut):
    p, cfg = tb_params()
    lanes = p["lanes"]
    ports = await setup_dut(dut, inputs={"x": row_layout(cfg, lanes),
                                         "param": param_layout(cfg, lanes)},
                            outputs={"y": row_layout(cfg, lanes)})
    return p, cfg, lanes, (ports["x"], ports["param"], ports["y"])


@cocotb.test()
async def layernorm_random_jobs(dut):
    """Three parameter sets, each followed by its rows (random, constant, extreme); random valid
    gaps on x and param, random back-pressure on y; bit-exact vs the golden layernorm."""
    p, cfg, lanes, (x, par, y) = await _setup(dut)
    seed = p["seed"]
    dut._log.info("seed=%d config=%s lanes=%d banks=%d", seed, cfg.name, lanes, p["banks"])
    r = np.random.default_rng(seed)
    n, d = cfg.num, cfg.model.dim
    consts = np.array([[c] * d for c in (0, n.act.max_int, n.act.min_int, -321)])
    g_big = r.choice([n.ln_gamma.max_int, n.ln_gamma.min_int], d)
    b_big = r.choice([n.act.max_int, n.act.min_int, 0], d)
    jobs = [(*random_params(cfg, r), random_rows(cfg, r, p["rows"])),
            (*random_params(cfg, r, spread=4.0),
             np.concatenate([consts, random_rows(cfg, r, 3), extreme_rows(cfg, r)])),
            (g_big, b_big, np.concatenate([extreme_rows(cfg, r), random_rows(cfg, r, 3)]))]
    want = [b for g, bt, rows in jobs for b in to_beats(layernorm(cfg, rows, g, bt), lanes)]
    inputs = [b for _, _, rows in jobs for b in to_beats(rows, lanes)]
    rr = random.Random(seed)

    async def sequencer():
        for g, bt, rows in jobs:
            await stream_send(dut.clk, par, param_beats(g, bt, lanes),
                              rng=random.Random(rr.random()), valid_prob=p["valid_prob"])
            await stream_send(dut.clk, x, to_beats(rows, lanes), rng=random.Random(rr.random()),
                              valid_prob=p["valid_prob"])

    send = cocotb.start_soon(sequencer())
    got = await stream_recv(dut.clk, y, len(want), rng=random.Random(rr.random()),
                            ready_prob=p["ready_prob"])
    await send
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, (f"beat {k} (row {k // (d // lanes)}): got {g}, expected {w}, "
                        f"input {inputs[k]} (seed={seed})")


@cocotb.test()
async def layernorm_full_rate(dut):
    """Always-valid input, always-ready output: per-row timing equals sim/cycles/layernorm.py."""
    p, cfg, lanes, (x, par, y) = await _setup(dut)
    r = np.random.default_rng(p["seed"] + 1)
    rows = random_rows(cfg, r, p["rows"])
    # memories keep their contents across reset (and across the cocotb tests): load a set first
    gamma, beta = random_params(cfg, r)
    await stream_send(dut.clk, par, param_beats(gamma, beta, lanes))
    want = to_beats(layernorm(cfg, rows, gamma, beta), lanes)
    accepted, transferred = [], []
    send = cocotb.start_soon(stream_send(dut.clk, x, to_beats(rows, lanes),
                                         accepted_cycles=accepted))
    got = await stream_recv(dut.clk, y, len(want), transfer_cycles=transferred)
    await send
    assert got == want, f"full-rate output differs (seed={p['seed']})"
    beats = cfg.model.dim // lanes
    sched = ln_cycles.layernorm_schedule(cfg, len(rows), lanes=lanes, banks=p["banks"])
    t0 = accepted[0]
    row_in = [accepted[i * beats] - t0 for i in range(len(rows))]
    row_out = [transferred[i * beats] - t0 for i in range(len(rows))]
    assert row_in == [s[0] for s in sched], f"row starts {row_in}, model {sched}"
    assert row_out == [s[1] for s in sched], f"row outputs {row_out}, model {sched}"
    total = transferred[-1] - t0 + 1
    assert total == ln_cycles.layernorm_cycles(cfg, len(rows), lanes=lanes, banks=p["banks"])
    dut._log.info("%d rows of %d beats in %d cycles (first output after %d)", len(rows), beats,
                  total, row_out[0])


@cocotb.test()
async def layernorm_busy_and_reset_state(dut):
    """busy is low after reset, high while a row is inside, low again once every row has left."""
    p, cfg, lanes, (x, par, y) = await _setup(dut)
    await FallingEdge(dut.clk)
    assert int(dut.busy.value) == 0
    await RisingEdge(dut.clk)          # the stream helpers start right after a rising edge
    r = np.random.default_rng(p["seed"] + 2)
    gamma, beta = random_params(cfg, r)
    rows = random_rows(cfg, r, 2)
    await stream_send(dut.clk, par, param_beats(gamma, beta, lanes))
    recv = cocotb.start_soon(stream_recv(dut.clk, y, 2 * (cfg.model.dim // lanes),
                                         rng=random.Random(p["seed"]), ready_prob=0.5))
    await stream_send(dut.clk, x, to_beats(rows, lanes))
    await FallingEdge(dut.clk)
    assert int(dut.busy.value) == 1      # the last row was just accepted: it cannot be out yet
    got = await recv
    assert got == to_beats(layernorm(cfg, rows, gamma, beta), lanes)
    await FallingEdge(dut.clk)
    assert int(dut.busy.value) == 0
