"""cocotb tests of hw.array.gelu.GeluUnit on its Verilog (run by tests/hw/test_gelu_verilator.py).

Params (``tb_params()``): ``config`` (Config.to_dict()), ``lanes``, ``seed``, ``valid_prob``,
``ready_prob``, ``random_beats``. ``gelu_full_range`` pushes every activation code through the
unit at full rate and writes its error vs exact GELU to ``gelu_error.json`` next to the params
file (the pytest wrapper prints it).
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np

from host.cocotb_streams import PARAMS_ENV
from hw.array.gelu import GeluUnit
from sim.golden.gelu import gelu_exact, gelu_pwl
from tests.harness.cocotb_tb import setup_dut, stream_through, tb_params


async def _run(dut, beats, *, rng_in=None, rng_out=None, valid_prob=1.0, ready_prob=1.0,
               accepted=None, transferred=None):
    p, cfg = tb_params()
    model = GeluUnit(cfg, p["lanes"])
    ports = await setup_dut(dut, inputs={"i": model.i.payload.shape()},
                            outputs={"o": model.o.payload.shape()})
    got = await stream_through(dut, ports["i"], ports["o"], beats, rng_in=rng_in,
                               valid_prob=valid_prob, rng_out=rng_out, ready_prob=ready_prob,
                               accepted=accepted, transferred=transferred)
    return cfg, got


@cocotb.test()
async def gelu_full_range(dut):
    """All 2^act.bits inputs, one beat per cycle; bit-exact, latency GeluUnit.latency."""
    p, cfg = tb_params()
    act, lanes = cfg.num.act, p["lanes"]
    vals = list(range(act.min_int, act.max_int + 1))
    vals += [0] * (-len(vals) % lanes)
    beats = np.array(vals, dtype=np.int64).reshape(-1, lanes)
    accepted, transferred = [], []
    cfg, got = await _run(dut, beats.tolist(), accepted=accepted, transferred=transferred)
    got = np.array(got, dtype=np.int64)
    want = gelu_pwl(cfg, beats)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{len(bad)} wrong values; first: x={beats[tuple(bad[0])]} got "
                           f"{got[tuple(bad[0])]} expected {want[tuple(bad[0])]}")
    assert accepted == list(range(1, len(beats) + 1)), "input stalled at full rate"
    lat = {t - a for a, t in zip(accepted, transferred)}
    assert lat == {GeluUnit.latency}, f"latency {sorted(lat)}"

    x = beats.ravel()[: act.max_int - act.min_int + 1]
    y = got.ravel()[: x.size] * act.scale
    err = np.abs(y - gelu_exact(x * act.scale))
    inner = np.abs(x * act.scale) <= cfg.num.gelu_range
    report = dict(config=cfg.name, values=int(x.size), lsb=act.scale,
                  max_abs=float(err.max()), mean_abs=float(err.mean()),
                  max_abs_at=float(x[int(err.argmax())] * act.scale),
                  max_abs_inner=float(err[inner].max()), mean_abs_inner=float(err[inner].mean()))
    Path(os.environ[PARAMS_ENV]).with_name("gelu_error.json").write_text(json.dumps(report))
    dut._log.info("GELU vs exact: %s", report)


@cocotb.test()
async def gelu_random_stream(dut):
    """Random activations with random valid gaps and back-pressure."""
    p, cfg = tb_params()
    seed = p["seed"]
    rng = random.Random(seed)
    act, lanes = cfg.num.act, p["lanes"]
    beats = [[rng.randrange(act.min_int, act.max_int + 1) >> rng.randrange(act.bits)
              for _ in range(lanes)] for _ in range(p["random_beats"])]
    cfg, got = await _run(dut, beats, rng_in=random.Random(seed + 1),
                          rng_out=random.Random(seed + 2), valid_prob=p["valid_prob"],
                          ready_prob=p["ready_prob"])
    want = gelu_pwl(cfg, np.array(beats, dtype=np.int64)).tolist()
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"beat {k}: got {g}, expected {w}, input {beats[k]} (seed={seed})"
