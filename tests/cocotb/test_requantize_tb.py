# amaranth: UnusedElaboratable=no
"""cocotb tests of hw.array.requantize.Requantize on its Verilog (run by tests/hw/test_requantize_verilator.py).

Not collected by pytest on its own (the cocotb tests are not named ``test_*``); run through
``host.cocotb_run.run_cocotb`` which passes ``params``:
``config`` (Config.to_dict()), ``lanes``, ``beats``, ``seed``, ``valid_prob``, ``ready_prob``.
"""
from __future__ import annotations

import random

import cocotb

from hw.array.requantize import Requantize
from sim.config import Config
from host.cocotb_streams import StreamPort, load_params, start, stream_recv, stream_send
from tests.hw.test_requantize import expected, random_accumulator_beats


def _setup():
    p = load_params()
    cfg = Config.from_dict(p["config"])
    dut_model = Requantize(cfg, lanes=p["lanes"])   # only for its layouts
    return p, cfg, dut_model


@cocotb.test()
async def requantize_random_stream(dut):
    """Random accumulators (30 % rounding / saturation corners) with random valid gaps and
    back-pressure, bit-exact vs sim.fixed.requantize."""
    p, cfg, model = _setup()
    seed = p["seed"]
    rng = random.Random(seed)
    dut._log.info("seed=%d lanes=%d beats=%d", seed, p["lanes"], p["beats"])
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await start(dut)

    beats = random_accumulator_beats(cfg, p["lanes"], rng, p["beats"])
    want = expected(cfg, beats)
    i = StreamPort(dut, "i", model.in_layout)
    o = StreamPort(dut, "o", model.out_layout)
    send = cocotb.start_soon(stream_send(dut.clk, i, beats, rng=random.Random(seed + 1),
                                         valid_prob=p["valid_prob"]))
    got = await stream_recv(dut.clk, o, len(beats), rng=random.Random(seed + 2),
                            ready_prob=p["ready_prob"])
    await send
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"beat {k}: got {g}, expected {w}, input {beats[k]} (seed={seed})"


@cocotb.test()
async def requantize_full_rate(dut):
    """Always-valid / always-ready: one beat per cycle, latency exactly Requantize.latency."""
    p, cfg, model = _setup()
    rng = random.Random(p["seed"] + 3)
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await start(dut)
    beats = random_accumulator_beats(cfg, p["lanes"], rng, 64)
    want = expected(cfg, beats)
    i = StreamPort(dut, "i", model.in_layout)
    o = StreamPort(dut, "o", model.out_layout)
    accepted, transferred = [], []
    send = cocotb.start_soon(stream_send(dut.clk, i, beats, accepted_cycles=accepted))
    got = await stream_recv(dut.clk, o, len(beats), transfer_cycles=transferred)
    await send
    assert got == want, f"full-rate output differs (seed={p['seed']})"
    assert accepted == list(range(1, len(beats) + 1)), f"input stalled: {accepted[:8]}..."
    lat = [t - a for a, t in zip(accepted, transferred)]
    assert set(lat) == {Requantize.latency}, f"latency {sorted(set(lat))}, expected {model.latency}"
