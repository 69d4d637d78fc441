"""GeluUnit in pysim: bit-exact vs sim.golden.gelu.gelu_pwl, with random valid gaps / back-pressure.

pysim is slow, so it covers a strided sweep of the activation range plus every corner (segment
boundaries, the table end, +-max, min); the Verilator test (test_gelu_verilator.py) covers all
2^act.bits inputs and prints the error vs exact GELU.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from hw.array.gelu import GeluLane, GeluUnit
from sim.config import Config
from sim.golden.gelu import gelu_exact, gelu_pwl, gelu_step_bits
from tests.harness import StreamDriver, StreamMonitor, assert_beats_equal, run_pysim
from tests.harness.configs import gelu_q810
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


def gelu_test_inputs(cfg: Config, stride: int, rng: random.Random) -> list[int]:
    """Corners of the PWL table and saturation, plus a strided sweep with a random offset."""
    act = cfg.num.act
    sb = gelu_step_bits(cfg)
    end = cfg.num.gelu_segments << sb
    corners = {0, 1, -1, act.max_int, act.min_int, act.min_int + 1, act.max_int - 1,
               end, end - 1, end + 1, -end, -end + 1, -end - 1}
    for i in range(cfg.num.gelu_segments + 1):
        for d in (-1, 0, 1, 1 << max(sb - 1, 0)):
            corners |= {(i << sb) + d, -((i << sb) + d)}
    sweep = range(act.min_int + rng.randrange(stride), act.max_int + 1, stride)
    vals = sorted(v for v in corners | set(sweep) if act.min_int <= v <= act.max_int)
    rng.shuffle(vals)
    return vals


@pytest.mark.parametrize("cfg,lanes,stride", [pytest.param(Config.tiny(), None, 97, id="tiny"),
                                              pytest.param(gelu_q810(), 5, 389, id="q8.10")])
def test_gelu_unit_pysim(cfg, lanes, stride, seed):
    rng = random.Random(seed)
    dut = GeluUnit(cfg, lanes)
    vals = gelu_test_inputs(cfg, stride, rng)
    vals += [0] * (-len(vals) % dut.lanes)
    beats = np.array(vals, dtype=np.int64).reshape(-1, dut.lanes)
    want = gelu_pwl(cfg, beats)
    drv = StreamDriver(dut.i, beats, rng=rng, valid_prob=0.7)
    mon = StreamMonitor(dut.o, len(beats), rng=rng, ready_prob=0.6)
    run_pysim(dut, [drv, mon], deadline_cycles=20 * len(beats) + 100)
    assert_beats_equal(mon.received, want, inputs=beats, seed=seed, what="gelu")

    got = np.array(mon.received, dtype=np.int64).ravel()
    x = beats.ravel() * cfg.num.act.scale
    err = np.abs(got * cfg.num.act.scale - gelu_exact(x))
    print(f"\nGeluUnit pysim [{cfg.name}]: {got.size} values, vs exact GELU: max abs "
          f"{err.max():.5f}, mean abs {err.mean():.2e} (1 LSB = {cfg.num.act.scale:g})")


def test_gelu_unit_full_rate(seed):
    """Always valid / ready: one beat per cycle, latency exactly GeluUnit.latency."""
    cfg = Config.tiny()
    rng = random.Random(seed)
    dut = GeluUnit(cfg)
    beats = np.array([[rng.randrange(cfg.num.act.min_int, cfg.num.act.max_int + 1)
                       for _ in range(dut.lanes)] for _ in range(40)], dtype=np.int64)
    drv = StreamDriver(dut.i, beats)
    mon = StreamMonitor(dut.o, len(beats))
    run_pysim(dut, [drv, mon], deadline_cycles=200)
    assert_beats_equal(mon.received, gelu_pwl(cfg, beats), inputs=beats, seed=seed)
    assert drv.accepted_cycles == list(range(1, len(beats) + 1))
    lat = {t - a for a, t in zip(drv.accepted_cycles, mon.transfer_cycles)}
    assert lat == {GeluUnit.latency}, f"latency {lat}"


def test_gelu_lane_bypass():
    """bypass passes x through with the same latency (the epilogue's no-GELU mode)."""
    cfg = Config.tiny()
    dut = GeluLane(cfg)
    xs = [5, -300, cfg.num.act.max_int, cfg.num.act.min_int, 77, -1, 0, 1000]
    got = []

    async def tb(ctx):
        ctx.set(dut.en, 1)
        for k in range(len(xs) + GeluLane.latency):
            if k < len(xs):
                ctx.set(dut.x, xs[k])
                ctx.set(dut.bypass, k % 2)
            await ctx.tick()
            if k >= GeluLane.latency - 1 and len(got) < len(xs):
                got.append(ctx.get(dut.y))

    run_pysim(dut, [tb], deadline_cycles=100)
    want = [x if k % 2 else int(gelu_pwl(cfg, x)) for k, x in enumerate(xs)]
    assert got == want
