# amaranth: UnusedElaboratable=no
"""hw.array.requantize.Requantize in pysim, and the sim.fixed Amaranth generators it is built from.

Everything is bit-exact against the numpy definitions in sim/fixed.py. Seeds: see
tests/harness/seeds.py (``EDGE_MOE_SEED=<n>`` replays a failure).
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned

from hw.array.requantize import Requantize, qformat_shape
from sim.config import Config, with_changes
from sim.fixed import QFormat, hw_add_rshift_round, hw_requantize, hw_requantize_prerounded, \
    hw_rshift_round, hw_saturate, requantize, round_half, rshift_round, saturate
from host.pysim import StreamDriver, StreamMonitor, run_pysim
from tests.harness.configs import q810
from tests.harness.seeds import rng, seed  # noqa: F401  (pytest fixtures)
from host.streams import assert_beats_equal, shape_width

# --------------------------------------------------------------------------------------------
# Stimulus (also used by the cocotb test, tests/cocotb/test_requantize_tb.py)
# --------------------------------------------------------------------------------------------


def corner_accumulators(cfg: Config) -> list[int]:
    """Accumulator values at every rounding / saturation boundary of acc -> act."""
    n = cfg.num
    s = n.acc_frac - n.act.frac_bits
    amin, amax = -(1 << (n.acc_bits - 1)), (1 << (n.acc_bits - 1)) - 1
    one = 1 << s if s >= 0 else 0             # one output LSB, in accumulator units
    half = one >> 1
    hi = n.act.max_int * one                  # exactly the largest output
    lo = n.act.min_int * one
    vals = [0, 1, -1, amin, amin + 1, amax, amax - 1,
            half, half - 1, -half, -half - 1, 3 * half, -3 * half, one, -one,
            hi, hi + half - 1, hi + half, hi + one, lo, lo - half, lo - half - 1, lo - one,
            hi + 1, lo - 1]
    return sorted({min(amax, max(amin, v)) for v in vals})


def random_accumulator_beats(cfg: Config, lanes: int, rng: random.Random, count: int,
                             corner_prob: float = 0.3) -> list[list[int]]:
    """``count`` beats of ``lanes`` accumulators: corners, and random values of every magnitude."""
    n = cfg.num
    amin, amax = -(1 << (n.acc_bits - 1)), (1 << (n.acc_bits - 1)) - 1
    corners = corner_accumulators(cfg)
    beats = []
    for _ in range(count):
        row = []
        for _ in range(lanes):
            if rng.random() < corner_prob:
                v = rng.choice(corners)
            else:   # log-uniform magnitude: most values land inside the output range
                v = rng.randrange(amin, amax + 1) >> rng.randrange(n.acc_bits)
            row.append(v)
        beats.append(row)
    return beats


def expected(cfg: Config, beats) -> list[list[int]]:
    return requantize(np.array(beats, dtype=np.int64), cfg.num.acc_frac, cfg.num.act).tolist()


def _short_shift() -> Config:
    """Q2.2 weights: acc_frac = act.frac + 2, shift 2 (a small half-LSB constant)."""
    act = Config.tiny().num.act
    return with_changes(Config.tiny(), name="tiny-w2.2",
                        num=dict(weight=QFormat(2, 2), bias=QFormat(8, act.frac_bits + 2)))


CONFIGS = [
    pytest.param(Config.tiny, None, 300, id="tiny"),
    pytest.param(q810, 5, 300, id="q8.10-5lanes"),
    pytest.param(_short_shift, 1, 300, id="shift2-1lane"),
    pytest.param(Config.m3vit_tiny, None, 120, id="m3vit-16lanes"),
]

# --------------------------------------------------------------------------------------------
# The block
# --------------------------------------------------------------------------------------------


def test_requantize_ports_from_config():
    cfg = Config.m3vit_tiny()
    dut = Requantize(cfg)
    assert dut.lanes == cfg.hw.array_cols
    assert dut.in_layout.elem_shape == signed(cfg.num.acc_bits)
    assert dut.out_layout.elem_shape == qformat_shape(cfg.num.act)
    assert shape_width(dut.in_layout) == cfg.num.acc_bits * cfg.hw.array_cols
    assert shape_width(dut.out_layout) == cfg.num.act.bits * cfg.hw.array_cols
    assert Requantize(cfg, lanes=3).lanes == 3
    with pytest.raises(ValueError):
        Requantize(cfg, lanes=0)


@pytest.mark.parametrize("valid_prob,ready_prob", [(1.0, 1.0), (0.7, 0.6), (0.3, 0.95),
                                                   (1.0, 0.3)])
@pytest.mark.parametrize("make_cfg,lanes,count", CONFIGS)
def test_requantize_stream(make_cfg, lanes, count, valid_prob, ready_prob, seed, rng):
    """Random accumulators incl. corners, random valid gaps and back-pressure: bit-exact."""
    cfg = make_cfg()
    dut = Requantize(cfg, lanes=lanes)
    beats = random_accumulator_beats(cfg, dut.lanes, rng, count)
    drv = StreamDriver(dut.i, beats, rng=random.Random(seed + 1), valid_prob=valid_prob)
    mon = StreamMonitor(dut.o, len(beats), rng=random.Random(seed + 2), ready_prob=ready_prob)
    run_pysim(dut, [drv, mon], deadline_cycles=20 * count + 100)
    assert_beats_equal(mon.received, expected(cfg, beats), inputs=beats, seed=seed)


@pytest.mark.parametrize("make_cfg,lanes,count", CONFIGS)
def test_requantize_every_corner(make_cfg, lanes, count, seed):
    """Each corner value in every lane."""
    cfg = make_cfg()
    dut = Requantize(cfg, lanes=lanes)
    corners = corner_accumulators(cfg)
    beats = [[corners[(b + k) % len(corners)] for k in range(dut.lanes)]
             for b in range(len(corners))]
    drv = StreamDriver(dut.i, beats)
    mon = StreamMonitor(dut.o, len(beats), rng=random.Random(seed), ready_prob=0.5)
    run_pysim(dut, [drv, mon], deadline_cycles=40 * len(beats) + 100)
    assert_beats_equal(mon.received, expected(cfg, beats), inputs=beats, seed=seed)


def test_requantize_corner_values_hit_the_boundaries():
    """The corner list really exercises round-up at .5, and both saturations."""
    cfg = Config.tiny()
    acc = np.array(corner_accumulators(cfg))
    out = expected(cfg, acc[None, :])[0]
    s = cfg.num.acc_frac - cfg.num.act.frac_bits
    assert cfg.num.act.max_int in out and cfg.num.act.min_int in out
    assert 1 in out and 0 in out                          # half rounds up, half - 1 down
    assert int(requantize(np.array([(1 << (s - 1))]), cfg.num.acc_frac, cfg.num.act)[0]) == 1
    assert int(requantize(np.array([-(1 << (s - 1))]), cfg.num.acc_frac, cfg.num.act)[0]) == 0


def test_requantize_full_rate_latency(rng):
    """No gaps, no back-pressure: one beat per cycle in and out, latency Requantize.latency."""
    cfg = Config.tiny()
    dut = Requantize(cfg)
    beats = random_accumulator_beats(cfg, dut.lanes, rng, 50)
    drv = StreamDriver(dut.i, beats)
    mon = StreamMonitor(dut.o, len(beats))
    cycles = run_pysim(dut, [drv, mon], deadline_cycles=1000)
    assert_beats_equal(mon.received, expected(cfg, beats), inputs=beats)
    assert drv.accepted_cycles == list(range(1, len(beats) + 1))
    assert [t - a for a, t in zip(drv.accepted_cycles, mon.transfer_cycles)] == \
        [Requantize.latency] * len(beats)
    assert cycles == len(beats) + Requantize.latency


def test_requantize_stall_then_drain(rng):
    """Output blocked for a while: the input must stop after filling the stage, nothing lost."""
    cfg = Config.tiny()
    dut = Requantize(cfg)
    beats = random_accumulator_beats(cfg, dut.lanes, rng, 8)
    drv = StreamDriver(dut.i, beats)
    got = []

    async def late_sink(ctx):
        ctx.set(dut.o.ready, 0)
        for _ in range(10):
            await ctx.tick()
            # one beat in the register, the next one waiting at the input
            assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.i.ready) == 0
        mon = StreamMonitor(dut.o, len(beats))
        await mon(ctx)
        got.extend(mon.received)

    run_pysim(dut, [drv, late_sink], deadline_cycles=500)
    assert_beats_equal(got, expected(cfg, beats), inputs=beats)
    assert drv.accepted_cycles[0] == 1 and drv.accepted_cycles[1] == 11


# --------------------------------------------------------------------------------------------
# sim.fixed Amaranth generators vs their numpy counterparts
# --------------------------------------------------------------------------------------------

SHIFTS = [-2, -1, 0, 1, 2, 3, 8, 9, 11]
SAT_FORMATS = [QFormat(4, 0), QFormat(3, 2), QFormat(1, 3), QFormat(9, 0), QFormat(12, 0),
               QFormat(4, 0, signed=False), QFormat(1, 7, signed=False)]
REQUANT = [(6, QFormat(4, 2)), (6, QFormat(3, 3)), (6, QFormat(8, 0)), (0, QFormat(6, 2)),
           (4, QFormat(2, 4)), (9, QFormat(5, 1)), (3, QFormat(3, 0, signed=False))]


def _check_comb(in_shape, values, cases, seed=None):
    """Simulate ``cases`` = [(label, build(x) -> expr, ref(np array) -> np array)] on ``values``."""
    m = Module()
    x = Signal(in_shape)
    outs = []
    for label, build, ref in cases:
        expr = build(x)
        o = Signal(expr.shape(), name=label.replace(" ", "_").replace(".", "_")
                   .replace("(", "").replace(")", "").replace(",", ""))
        m.d.comb += o.eq(expr)
        outs.append((label, o, ref))
    got = {label: [] for label, _, _ in cases}

    async def tb(ctx):
        for v in values:
            ctx.set(x, int(v))
            for label, o, _ in outs:
                got[label].append(ctx.get(o))

    run_pysim(m, [tb], clock=False)
    arr = np.array(values, dtype=np.int64)
    for label, _, ref in outs:
        want = ref(arr)
        bad = np.flatnonzero(np.array(got[label]) != want)
        assert bad.size == 0, (f"{label}: {bad.size} mismatches, first x={values[bad[0]]}: "
                               f"hw {got[label][bad[0]]} vs numpy {int(want[bad[0]])} "
                               f"[seed={seed}]")


def _generator_cases(input_signed: bool):
    cases = []
    for n in SHIFTS:
        cases.append((f"rshift_round(x, {n})", lambda x, n=n: hw_rshift_round(x, n),
                      lambda a, n=n: rshift_round(a, n)))
    for f in SAT_FORMATS:
        if not input_signed and f.signed:
            continue   # sim.fixed bug, see test_hw_saturate_unsigned_input_to_signed_format
        cases.append((f"saturate(x, {f})", lambda x, f=f: hw_saturate(x, f),
                      lambda a, f=f: saturate(a, f)))
    for frac, f in REQUANT:
        if not input_signed and f.signed:
            continue
        cases.append((f"requantize(x, {frac}, {f})", lambda x, frac=frac, f=f: hw_requantize(x, frac, f),
                      lambda a, frac=frac, f=f: requantize(a, frac, f)))
    return cases


@pytest.mark.parametrize("in_shape", [signed(9), unsigned(9), signed(1), signed(3)],
                         ids=str)
def test_hw_generators_exhaustive(in_shape):
    """hw_rshift_round / hw_saturate / hw_requantize == numpy, every value of a small input."""
    lo, hi = (-(1 << (in_shape.width - 1)), 1 << (in_shape.width - 1)) if in_shape.signed \
        else (0, 1 << in_shape.width)
    _check_comb(in_shape, list(range(lo, hi)), _generator_cases(in_shape.signed))


@pytest.mark.parametrize("make_cfg", [Config.tiny, q810, _short_shift], ids=["tiny", "q8.10",
                                                                            "shift2"])
def test_hw_requantize_wide_random(make_cfg, seed, rng):
    """The accumulator-width generators on random + corner accumulators of the config."""
    cfg = make_cfg()
    n = cfg.num
    vals = corner_accumulators(cfg) + [v for row in random_accumulator_beats(cfg, 1, rng, 1500, 0)
                                       for v in row]
    s = n.acc_frac - n.act.frac_bits
    _check_comb(signed(n.acc_bits), vals, [
        ("requantize", lambda x: hw_requantize(x, n.acc_frac, n.act),
         lambda a: requantize(a, n.acc_frac, n.act)),
        ("requantize_prerounded(x + half)",
         lambda x: hw_requantize_prerounded(x + round_half(s), n.acc_frac, n.act),
         lambda a: requantize(a, n.acc_frac, n.act)),
        ("rshift_round", lambda x: hw_rshift_round(x, s), lambda a: rshift_round(a, s)),
        ("saturate", lambda x: hw_saturate(x, n.act), lambda a: saturate(a, n.act)),
    ], seed=seed)


def test_hw_add_rshift_round_exhaustive():
    """x + rshift_round(v, n) as one adder == numpy, every (x, v) of a 4-bit x and a 6-bit v:
    the input's high 4 bits are x, its low 6 bits v (both signed)."""
    def split(a):
        return a >> 6, ((a & 63) ^ 32) - 32
    _check_comb(signed(10), list(range(-512, 512)), [
        (f"add_rshift_round(x, v, {n})",
         lambda s, n=n: hw_add_rshift_round(s[6:].as_signed(), s[:6].as_signed(), n),
         lambda a, n=n: split(a)[0] + rshift_round(split(a)[1], n)) for n in SHIFTS])


def test_hw_saturate_unsigned_input_to_signed_format():
    fmts = [f for f in SAT_FORMATS if f.signed]
    _check_comb(unsigned(8), list(range(256)),
                [(f"saturate(x, {f})", lambda x, f=f: hw_saturate(x, f),
                  lambda a, f=f: saturate(a, f)) for f in fmts])
