"""LayerNorm unit (hw/norm/layernorm.py) in pysim, bit-exact against sim.golden.layernorm.

Every test drives ``param`` and ``x`` from one sequencer testbench (parameter set, then its rows,
then the next set ...) with random valid gaps, and reads ``y`` with random back-pressure; the
expected beats come from the golden ``layernorm`` only. Seeds come from tests/harness/seeds.py
(printed on failure; replay with EDGE_MOE_SEED=<seed>).
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed

from hw.norm.layernorm import LayerNorm, _round_saturate
from sim import float_model
from sim.config import generic_config, get_config, with_changes
from sim.cycles import layernorm as ln_cycles
from sim.fixed import QFormat, dequantize, hw_saturate, quantize
from sim.golden.layernorm import layernorm
from tests.harness import StreamMonitor, assert_beats_equal, run_pysim, stream_send
from tests.harness.seeds import np_rng, rng, seed  # noqa: F401  (pytest fixtures)

TINY = get_config("tiny")
DIM192 = with_changes(TINY, name="tiny-dim192", model=dict(dim=192, heads=3))


# ----------------------------------------------------------------------------------------------
# stimulus helpers (also used by the Verilator test)
# ----------------------------------------------------------------------------------------------

def random_params(cfg, r: np.random.Generator, *, spread=1.0):
    """gamma around 1 (ln_gamma format) and beta around 0 (act format), ``spread`` wide."""
    n, d = cfg.num, cfg.model.dim
    gamma = quantize(1 + r.normal(0, 0.5 * spread, d), n.ln_gamma)
    beta = quantize(r.normal(0, spread, d), n.act)
    return gamma, beta


def random_rows(cfg, r: np.random.Generator, count: int):
    """Rows of mixed scale and offset (like residual-stream tokens, some far off zero)."""
    n, d = cfg.num, cfg.model.dim
    scale = np.exp(r.uniform(np.log(0.01), np.log(60.0), (count, 1)))
    offset = r.normal(0, 10, (count, 1))
    return quantize(r.normal(0, 1, (count, d)) * scale + offset, n.act)


def extreme_rows(cfg, r: np.random.Generator):
    """Rows at the act format's limits: all min / all max, half and half, single outliers."""
    n, d = cfg.num, cfg.model.dim
    lo, hi = n.act.min_int, n.act.max_int
    rows = [np.full(d, lo), np.full(d, hi),
            np.where(np.arange(d) % 2 == 0, lo, hi),          # variance at its maximum
            np.where(np.arange(d) < d // 2, hi, lo),
            np.full(d, lo), np.full(d, lo),
            r.choice([lo, hi], d),
            r.choice([lo, hi, 0, lo + 1, hi - 1], d)]
    rows[4][3] = hi                                            # one outlier: |z| = sqrt(d - 1)
    rows[5][d - 1] = lo + 1                                    # tiny variance on a huge offset
    return np.array(rows, dtype=np.int64)


def to_beats(rows, lanes):
    rows = np.asarray(rows, dtype=np.int64)
    return rows.reshape(-1, lanes).tolist()


def param_beats(gamma, beta, lanes):
    g = np.asarray(gamma).reshape(-1, lanes).tolist()
    b = np.asarray(beta).reshape(-1, lanes).tolist()
    return [{"gamma": gg, "beta": bb} for gg, bb in zip(g, b)]


def expected_beats(cfg, jobs, lanes):
    """jobs: [(gamma, beta, rows)], gamma None = the reset contents (gamma 1, beta 0)."""
    out = []
    d = cfg.model.dim
    for gamma, beta, rows in jobs:
        if gamma is None:
            gamma, beta = np.full(d, 1 << cfg.num.ln_gamma.frac_bits), np.zeros(d, np.int64)
        out += to_beats(layernorm(cfg, rows, gamma, beta), lanes)
    return out


def run_jobs(cfg, jobs, *, seed, lanes=None, banks=3, valid_prob=0.7, ready_prob=0.6,
             param_prob=None):
    """Simulate the unit on ``jobs``; returns (received, expected, monitor, accepted cycles, dut)."""
    # pysim elaborates the generic build (an ECP5 preset's multipliers are MULT18X18D instances)
    dut = LayerNorm(generic_config(cfg), lanes=lanes, banks=banks)
    lanes = dut.lanes
    r = random.Random(seed)
    want = expected_beats(cfg, jobs, lanes)
    accepted = []

    async def sequencer(ctx):
        for gamma, beta, rows in jobs:
            if gamma is not None:
                await stream_send(ctx, dut.param, param_beats(gamma, beta, lanes),
                                  rng=random.Random(r.random()),
                                  valid_prob=valid_prob if param_prob is None else param_prob)
            acc = []
            await stream_send(ctx, dut.x, to_beats(rows, lanes), rng=random.Random(r.random()),
                              valid_prob=valid_prob, accepted_cycles=acc)
            accepted.append(acc)

    mon = StreamMonitor(dut.y, len(want), rng=random.Random(r.random()), ready_prob=ready_prob)
    total_rows = sum(len(j[2]) for j in jobs)
    run_pysim(dut, [sequencer, mon], deadline_cycles=40 * total_rows * dut.beats + 2000)
    return mon.received, want, mon, accepted, dut


def check(cfg, jobs, seed, **kw):
    got, want, *_ = run_jobs(cfg, jobs, seed=seed, **kw)
    inputs = [b for _, _, rows in jobs for b in to_beats(rows, kw.get("lanes") or
                                                         cfg.hw.array_rows)]
    assert_beats_equal(got, want, inputs=inputs, seed=seed, what="LayerNorm y")


# ----------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------

def test_random_rows_two_parameter_sets(seed, np_rng):
    """Two LayerNorm instances back to back: the second set must wait for the first's rows."""
    g1, b1 = random_params(TINY, np_rng)
    g2, b2 = random_params(TINY, np_rng, spread=3.0)
    jobs = [(g1, b1, random_rows(TINY, np_rng, 30)), (g2, b2, random_rows(TINY, np_rng, 20))]
    check(TINY, jobs, seed)


def test_reset_parameters_are_identity(seed, np_rng):
    check(TINY, [(None, None, random_rows(TINY, np_rng, 3))], seed)


def test_constant_rows_give_beta(seed, np_rng):
    """Variance 0: V = E, z = 0 and the output is beta exactly (as the golden model says)."""
    n, d = TINY.num, TINY.model.dim
    gamma, beta = random_params(TINY, np_rng, spread=4.0)
    rows = np.array([[c] * d for c in (0, 1, -1, n.act.max_int, n.act.min_int, 1234, -777)])
    assert np.array_equal(layernorm(TINY, rows, gamma, beta), np.broadcast_to(beta, rows.shape))
    check(TINY, [(gamma, beta, rows)], seed)


def test_extreme_rows_and_output_saturation(seed, np_rng):
    """Rows at the act limits; with gamma and beta at their limits the output saturates."""
    n, d = TINY.num, TINY.model.dim
    rows = extreme_rows(TINY, np_rng)
    g_big = np_rng.choice([n.ln_gamma.max_int, n.ln_gamma.min_int], d)
    b_big = np_rng.choice([n.act.max_int, n.act.min_int, 0], d)
    want = layernorm(TINY, rows, g_big, b_big)
    assert np.any(want == n.act.max_int) and np.any(want == n.act.min_int)  # saturation is hit
    g, b = random_params(TINY, np_rng)
    check(TINY, [(g, b, rows), (g_big, b_big, rows)], seed)


@pytest.mark.parametrize("lanes,banks", [(1, 2), (2, 3), (8, 2), (32, 3), (16, 4)])
def test_lane_and_bank_variants(lanes, banks, seed, np_rng):
    g, b = random_params(TINY, np_rng)
    rows = np.concatenate([random_rows(TINY, np_rng, 3), extreme_rows(TINY, np_rng)[:2]])
    check(TINY, [(g, b, rows)], seed, lanes=lanes, banks=banks)


def test_dim192_rows(seed, np_rng):
    """dim 192 (the M3ViT width) with 16 lanes: 12 beats per row."""
    g, b = random_params(DIM192, np_rng)
    rows = np.concatenate([random_rows(DIM192, np_rng, 3), extreme_rows(DIM192, np_rng)[[2, 4]]])
    check(DIM192, [(g, b, rows)], seed, lanes=16)


@pytest.mark.parametrize("name", ["m3vit-tiny-cityscapes", "m3vit-ecp5-85f"])
def test_full_size_configs(name, seed, np_rng):
    """The M3ViT presets (dim 192) with their default lanes (16 and 8 = array_rows)."""
    cfg = get_config(name)
    g, b = random_params(cfg, np_rng, spread=5.0)
    rows = np.concatenate([random_rows(cfg, np_rng, 12), extreme_rows(cfg, np_rng)])
    check(cfg, [(g, b, rows)], seed)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["m3vit-tiny-cityscapes", "m3vit-ecp5-85f"])
def test_full_size_two_instances_of_all_tokens(name, seed, np_rng):
    """Two LayerNorm instances over all 129 tokens each (one encoder block's LN1 and LN2)."""
    cfg = get_config(name)
    jobs = []
    for spread in (1.0, 5.0):
        g, b = random_params(cfg, np_rng, spread=spread)
        jobs.append((g, b, random_rows(cfg, np_rng, cfg.model.tokens)))
    check(cfg, jobs, seed, valid_prob=0.9, ready_prob=0.8)


def test_full_rate_cycles_match_the_cycle_model(seed, np_rng):
    """Always-valid input, always-ready output: timing equals sim/cycles/layernorm.py exactly."""
    assert (ln_cycles.LATENCY_STATS, ln_cycles.LATENCY_EMIT) == (LayerNorm.latency_stats,
                                                                 LayerNorm.latency_emit)
    for lanes, banks, count in [(4, 3, 7), (4, 2, 5), (8, 4, 9)]:
        rows = random_rows(TINY, np_rng, count)
        got, want, mon, accepted, dut = run_jobs(TINY, [(None, None, rows)], seed=seed,
                                                 lanes=lanes, banks=banks,
                                                 valid_prob=1.0, ready_prob=1.0)
        assert_beats_equal(got, want, seed=seed)
        b = dut.beats
        first_in = accepted[0][0]
        sched = ln_cycles.layernorm_schedule(TINY, count, lanes=lanes, banks=banks)
        row_in = [accepted[0][r * b] - first_in for r in range(count)]
        row_out = [mon.transfer_cycles[r * b] - first_in for r in range(count)]
        assert row_in == [s[0] for s in sched], (lanes, banks, row_in, sched)
        assert row_out == [s[1] for s in sched], (lanes, banks, row_out, sched)
        total = mon.transfer_cycles[-1] - first_in + 1
        assert total == ln_cycles.layernorm_cycles(TINY, count, lanes=lanes, banks=banks)
        assert row_out[0] == dut.latency == ln_cycles.layernorm_latency(TINY, lanes=lanes)
        # within a row, beats leave one per cycle
        assert all(mon.transfer_cycles[r * b + i + 1] - mon.transfer_cycles[r * b + i] == 1
                   for r in range(count) for i in range(b - 1))
        print(f"\nlanes {lanes} banks {banks}: {count} rows in {total} cycles "
              f"(latency {row_out[0]}, period "
              f"{ln_cycles.layernorm_period(TINY, lanes=lanes, banks=banks):.2f}, {b} beats/row)")


def test_error_against_float_layernorm(seed, np_rng):
    """Golden-exact RTL output vs float64 LayerNorm on the same quantized inputs."""
    n, d = TINY.num, TINY.model.dim
    g, b = random_params(TINY, np_rng)
    rows = random_rows(TINY, np_rng, 12)
    got, want, *_ = run_jobs(TINY, [(g, b, rows)], seed=seed)
    assert_beats_equal(got, want, seed=seed)
    y = dequantize(np.array(got).reshape(-1, d), n.act)
    ref = float_model.layernorm(dequantize(rows, n.act), dequantize(g, n.ln_gamma),
                                dequantize(b, n.act), TINY.model.ln_eps)
    err = np.abs(y - ref)
    print(f"\nLayerNorm RTL vs float: max abs err {err.max():.5f}, mean {err.mean():.2e} "
          f"(1 LSB = {n.act.scale})")
    # output rounding (1/2 LSB) + z rounding (2^-13 * |gamma|) + rsqrt rel. error (< 2e-4, see
    # tests/sim) * |gamma z| (< 8 here): measured ~0.6 LSB; the bound is one LSB.
    assert err.max() < n.act.scale


def test_parameters_win_on_an_idle_unit(seed, np_rng):
    """x and param offered together to an idle unit: the whole set loads first, and x is held
    off while the set is half loaded (parameter beats arrive with gaps)."""
    g, b = random_params(TINY, np_rng, spread=2.0)
    rows = random_rows(TINY, np_rng, 5)
    dut = LayerNorm(TINY)
    pbeats = param_beats(g, b, dut.lanes)
    mon = StreamMonitor(dut.y, 5 * dut.beats, rng=random.Random(seed), ready_prob=0.7)

    async def send_params(ctx):
        await stream_send(ctx, dut.param, pbeats[:1])       # valid from the first cycle
        await stream_send(ctx, dut.param, pbeats[1:], rng=random.Random(seed + 1), valid_prob=0.3)

    async def send_rows(ctx):
        await stream_send(ctx, dut.x, to_beats(rows, dut.lanes), rng=random.Random(seed + 2),
                          valid_prob=0.8)

    run_pysim(dut, [send_params, send_rows, mon], deadline_cycles=3000)
    assert_beats_equal(mon.received, to_beats(layernorm(TINY, rows, g, b), dut.lanes), seed=seed)


def test_parameters_wait_for_a_half_written_row(seed, np_rng):
    """A parameter set offered from the cycle after a row's first beat (no slot occupied yet)
    waits for that row to be read out: the row keeps the reset parameters, the rows sent after
    the set use it."""
    g, b = random_params(TINY, np_rng, spread=2.0)
    rows = random_rows(TINY, np_rng, 4)
    dut = LayerNorm(TINY)
    beats = to_beats(rows, dut.lanes)
    loaded = []
    want = (expected_beats(TINY, [(None, None, rows[:1])], dut.lanes)
            + to_beats(layernorm(TINY, rows[1:], g, b), dut.lanes))
    mon = StreamMonitor(dut.y, len(want), rng=random.Random(seed), ready_prob=0.7)

    async def send_rows(ctx):
        await stream_send(ctx, dut.x, beats[:1])           # row 0 half written
        for _ in range(3 * dut.beats):                        # x pauses while the set is offered
            await ctx.tick()
        await stream_send(ctx, dut.x, beats[1:dut.beats])
        while not loaded:
            await ctx.tick()
        await stream_send(ctx, dut.x, beats[dut.beats:], rng=random.Random(seed + 1),
                          valid_prob=0.8)

    async def send_params(ctx):
        taken = 0
        while not taken:                                      # the first x beat's edge
            _, _, valid, ready = await ctx.tick().sample(dut.x.valid, dut.x.ready)
            taken = valid and ready
        await stream_send(ctx, dut.param, param_beats(g, b, dut.lanes))
        loaded.append(True)

    run_pysim(dut, [send_rows, send_params, mon], deadline_cycles=3000)
    assert_beats_equal(mon.received, want, seed=seed)


@pytest.mark.parametrize("width, int_bits, frac_bits", [(9, 2, 2), (10, 1, 6), (7, 3, 0)])
def test_round_saturate_matches_hw_saturate(width, int_bits, frac_bits):
    """The E5 round + saturate (overflow read off the unincremented value) against
    hw_saturate((sh + 1) >> 1) for every ``width``-bit sh."""
    fmt = QFormat(int_bits, frac_bits)
    m = Module()
    sh = Signal(signed(width))
    fast, ref = Signal(signed(fmt.bits)), Signal(signed(fmt.bits))
    m.d.comb += [fast.eq(_round_saturate(sh, fmt)), ref.eq(hw_saturate((sh + 1) >> 1, fmt))]
    bad = []

    async def sweep(ctx):
        for v in range(-(1 << (width - 1)), 1 << (width - 1)):
            ctx.set(sh, v)
            if ctx.get(fast) != ctx.get(ref):
                bad.append((v, ctx.get(fast), ctx.get(ref)))

    run_pysim(m, [sweep], clock=False)
    assert not bad, bad[:5]


def test_constructor_validation():
    with pytest.raises(ValueError, match="multiple of lanes"):
        LayerNorm(TINY, lanes=5)
    with pytest.raises(ValueError, match="at least 2"):
        LayerNorm(TINY, banks=1)
    with pytest.raises(ValueError, match="init_gamma"):
        LayerNorm(TINY, init_gamma=[1, 2, 3])


def test_init_parameters(seed, np_rng):
    """Constructor-initialized gamma/beta are used until a parameter set is loaded."""
    g, b = random_params(TINY, np_rng, spread=2.0)
    rows = random_rows(TINY, np_rng, 4)
    dut = LayerNorm(TINY, init_gamma=g, init_beta=b)
    mon = StreamMonitor(dut.y, 4 * dut.beats, rng=random.Random(seed), ready_prob=0.5)

    async def send(ctx):
        await stream_send(ctx, dut.x, to_beats(rows, dut.lanes), rng=random.Random(seed + 1),
                          valid_prob=0.5)

    run_pysim(dut, [send, mon], deadline_cycles=2000)
    assert_beats_equal(mon.received, to_beats(layernorm(TINY, rows, g, b), dut.lanes), seed=seed)
