# amaranth: UnusedElaboratable=no
"""cocotb tests of hw.array.requantize.Requantize on its Verilog (run by
tests/hw/test_requantize_verilator.py).

Not collected by pytest on its own (the cocotb tests are not named ``test_*``); run through
``tests.harness.verilator.run_block_verilator``, which passes ``params``:
``config`` (Config.to_dict()), ``lanes``, ``beats``, ``seed``, ``valid_prob``, ``ready_prob``.
"""
from __future__ import annotations

import random

import cocotb

from hw.array.requantize import Requantize
from tests.harness.cocotb_tb import setup_dut, stream_through, tb_params
from tests.hw.test_requantize import expected, random_accumulator_beats


async def _setup(dut):
    p, cfg = tb_params()
    model = Requantize(cfg, lanes=p["lanes"])   # only for its layouts
    ports = await setup_dut(dut, inputs={"i": model.in_layout}, outputs={"o": model.out_layout})
    return p, cfg, model, ports["i"], ports["o"]


@cocotb.test()
async def requantize_random_stream(dut):
    """Random accumulators (30 % rounding / saturation corners) with random valid gaps and
    back-pressure, bit-exact vs sim.fixed.requantize."""
    p, cfg, model, i, o = await _setup(dut)
    seed = p["seed"]
    rng = random.Random(seed)
    dut._log.info("seed=%d lanes=%d beats=%d", seed, p["lanes"], p["beats"])
    beats = random_accumulator_beats(cfg, p["lanes"], rng, p["beats"])
    want = expected(cfg, beats)
    got = await stream_through(dut, i, o, beats, rng_in=random.Random(seed + 1),
                               valid_prob=p["valid_prob"], rng_out=random.Random(seed + 2),
                               ready_prob=p["ready_prob"])
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"beat {k}: got {g}, expected {w}, input {beats[k]} (seed={seed})"


@cocotb.test()
async def requantize_full_rate(dut):
    """Always-valid / always-ready: one beat per cycle, latency exactly Requantize.latency."""
    p, cfg, model, i, o = await _setup(dut)
    rng = random.Random(p["seed"] + 3)
    beats = random_accumulator_beats(cfg, p["lanes"], rng, 64)
    want = expected(cfg, beats)
    accepted, transferred = [], []
    got = await stream_through(dut, i, o, beats, accepted=accepted, transferred=transferred)
    assert got == want, f"full-rate output differs (seed={p['seed']})"
    assert accepted == list(range(1, len(beats) + 1)), f"input stalled: {accepted[:8]}..."
    lat = [t - a for a, t in zip(accepted, transferred)]
    assert set(lat) == {Requantize.latency}, f"latency {sorted(set(lat))}, expected {model.latency}"
