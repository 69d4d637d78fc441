"""GemmEngine in pysim: bit-exact vs sim/golden/linear.py with random gaps on every stream.

Shapes include K and N that are not multiples of the array size, M < R (weight-load bound
tiles), M = 1, single-tile and many-tile GEMMs; every epilogue mode with and without bias and
GELU; saturation at +max / -max (tests/hw/test_gemm_cases.py puts full-scale rows and columns
in every case). Several commands run back to back on one engine to check that state resets.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from hw.array.gemm_engine import GemmEngine
from sim.config import Config, with_changes
from sim.cycles.gemm import gemm_active_cycles, gemm_cycles
from tests.harness import StreamDriver, StreamMonitor, assert_beats_equal, run_pysim
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.hw.test_gemm_cases import cmd_payload, make_case, res_payloads

TINY = Config.tiny()


def run_engine(cfg: Config, cases: list[dict], rng: random.Random, *, valid_prob: float = 0.7,
               ready_prob: float = 0.6, max_m: int, max_k: int, max_n: int):
    """Run ``cases`` back to back on one engine; returns (received beats per case, counters)."""
    dut = GemmEngine(cfg, max_m=max_m, max_k=max_k, max_n=max_n)
    cat = {key: np.concatenate([c["beats"][key] for c in cases])
           for key in ("act", "w", "bias")}
    res = [p for c in cases for p in res_payloads(c)]
    n_out = sum(len(c["out_beats"]) for c in cases)
    counters = []
    received = []

    async def commands(ctx):
        # One command at a time, then record the engine's counters when it goes idle.
        for c in cases:
            ctx.set(dut.cmd.payload, cmd_payload(c["cmd"]))
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            await ctx.tick()
            await ctx.tick().until(~dut.busy)
            counters.append((ctx.get(dut.cycles), ctx.get(dut.mac_active_cycles)))

    drivers = [StreamDriver(dut.act, cat["act"], rng=rng, valid_prob=valid_prob),
               StreamDriver(dut.w, cat["w"], rng=rng, valid_prob=valid_prob),
               StreamDriver(dut.bias, cat["bias"], rng=rng, valid_prob=valid_prob),
               StreamDriver(dut.res, res, rng=rng, valid_prob=valid_prob)]
    mon = StreamMonitor(dut.o, n_out, rng=rng, ready_prob=ready_prob)
    total = sum(gemm_cycles(cfg, c["cmd"]["m"], c["cmd"]["k"], c["cmd"]["n"]) for c in cases)
    run_pysim(dut, [commands, mon, *drivers], deadline_cycles=40 * total + 1000)
    at = 0
    for c in cases:
        received.append(mon.received[at:at + len(c["out_beats"])])
        at += len(c["out_beats"])
    return received, counters


def check(cfg, cases, received, seed):
    for i, (c, got) in enumerate(zip(cases, received)):
        cmd = c["cmd"]
        assert_beats_equal(got, c["out_beats"], seed=seed,
                           what=f"GEMM {i} ({cmd['m']}x{cmd['k']}x{cmd['n']} bias={cmd['bias']} "
                                f"gelu={cmd['gelu']} mode={cmd['mode'].name})")


# (m, k, n): odd K and N, M < R, M = 1, exact multiples, single tile.
SHAPES = [(5, 9, 7), (3, 4, 4), (1, 6, 5), (7, 13, 10), (6, 8, 9), (2, 3, 1)]


@pytest.mark.parametrize("mode", ["plain", "residual", "scaled"])
def test_gemm_modes_pysim(mode, seed):
    """Each mode on a sequence of shapes, bias / GELU toggling, random gaps everywhere."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    cases = [make_case(TINY, m, k, n, bias=bool(i % 2 == 0), gelu=bool(i % 3 != 1), mode=mode,
                       rng=nrng) for i, (m, k, n) in enumerate(SHAPES)]
    received, counters = run_engine(TINY, cases, rng, max_m=8, max_k=16, max_n=12)
    check(TINY, cases, received, seed)
    for c, (_, active) in zip(cases, counters):
        cmd = c["cmd"]
        assert active == gemm_active_cycles(TINY, cmd["m"], cmd["k"], cmd["n"])


def test_gemm_full_rate_cycles(seed):
    """No gaps, no back-pressure: output exact and cycles == the analytic model."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    shapes = [(9, 10, 7), (2, 9, 6), (4, 4, 4), (1, 1, 1)]
    cases = [make_case(TINY, m, k, n, bias=True, gelu=True, mode="scaled", rng=nrng)
             for m, k, n in shapes]
    received, counters = run_engine(TINY, cases, rng, valid_prob=1.0, ready_prob=1.0,
                                    max_m=9, max_k=12, max_n=8)
    check(TINY, cases, received, seed)
    for (m, k, n), (cyc, active) in zip(shapes, counters):
        assert cyc == gemm_cycles(TINY, m, k, n), f"{m}x{k}x{n}: RTL {cyc} cycles"
        assert active == gemm_active_cycles(TINY, m, k, n)


def test_gemm_odd_array_pysim(seed):
    """A 3 x 5 array (neither dimension a power of two) with the full-size defaults of max_k."""
    cfg = with_changes(TINY, name="tiny-3x5", hw=dict(array_rows=3, array_cols=5))
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    cases = [make_case(cfg, 4, 7, 11, bias=True, gelu=True, mode="residual", rng=nrng),
             make_case(cfg, 2, 5, 5, bias=False, gelu=False, mode="plain", rng=nrng)]
    received, _ = run_engine(cfg, cases, rng, max_m=4, max_k=None, max_n=None)
    check(cfg, cases, received, seed)


def test_gemm_one_row_array_accumulates_back_to_back(seed):
    """A 1 x 4 array: with M = 1 a row's k tiles issue in consecutive cycles, so the
    accumulator reads a row in the very cycle it is written (the engine's registered
    write-through bypass; with R >= 2 the schedule keeps those beats apart)."""
    cfg = with_changes(TINY, name="tiny-1x4", hw=dict(array_rows=1, array_cols=4))
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    cases = [make_case(cfg, 1, 6, 4, bias=True, gelu=False, mode="plain", rng=nrng),
             make_case(cfg, 2, 5, 8, bias=False, gelu=False, mode="plain", rng=nrng)]
    received, _ = run_engine(cfg, cases, rng, valid_prob=1.0, ready_prob=1.0, max_m=2,
                             max_k=8, max_n=8)
    check(cfg, cases, received, seed)


def test_gemm_stalls_during_weight_load(seed):
    """Heavy output back-pressure with always-valid inputs and M >= R: the epilogue fills up and
    stalls the array right after a tile's last beat, while the loader wants to overwrite that
    tile's bank. Catches a loader that writes row r one advance too early (before a stalled
    beat has read it)."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    shapes = [(10, 12, 12), (6, 8, 12), (4, 16, 8), (9, 5, 9)]
    cases = [make_case(TINY, m, k, n, bias=True, gelu=False, mode="plain", rng=nrng)
             for m, k, n in shapes]
    received, _ = run_engine(TINY, cases, rng, valid_prob=1.0, ready_prob=0.3, max_m=10,
                             max_k=16, max_n=12)
    check(TINY, cases, received, seed)


def test_gemm_output_held_credits_bound_the_work_in_flight(seed):
    """``o`` not ready for a long time: the free-running array must stop taking last-k-tile
    beats once the sum FIFO's credits are gone, so no row is lost. With K <= R every beat is
    of the last k tile, and while ``o`` is held the engine can hold at most the sum FIFO's
    words, the epilogue's stages and its two-entry output slice (one row per register). Then
    ``o`` opens and every row comes out bit-exact."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    cfg = TINY
    R = cfg.hw.array_rows
    case = make_case(cfg, 40, R, 7, bias=True, gelu=True, mode="scaled", rng=nrng)
    dut = GemmEngine(cfg, max_m=40, max_k=R, max_n=8)
    hold = 300
    taken_during_hold = []

    async def command(ctx):
        ctx.set(dut.cmd.payload, cmd_payload(case["cmd"]))
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)

    async def count_act(ctx):
        taken = 0
        for _ in range(hold):
            await ctx.tick()
            # o.ready is low for the whole window (the monitor starts after it)
            taken += ctx.get(dut.act.valid & dut.act.ready)
            assert not ctx.get(dut.o.ready)
        taken_during_hold.append(taken)

    mon = StreamMonitor(dut.o, len(case["out_beats"]), rng=rng, ready_prob=0.8)

    async def late_monitor(ctx):
        await ctx.tick().repeat(hold + 1)
        await mon(ctx)

    drivers = [StreamDriver(dut.act, case["beats"]["act"], rng=rng, valid_prob=1.0),
               StreamDriver(dut.w, case["beats"]["w"], rng=rng, valid_prob=1.0),
               StreamDriver(dut.bias, case["beats"]["bias"], rng=rng, valid_prob=1.0),
               StreamDriver(dut.res, res_payloads(case), rng=rng, valid_prob=1.0)]
    run_pysim(dut, [command, count_act, late_monitor, *drivers], deadline_cycles=20_000)
    capacity = dut.sum_fifo_depth + dut.latency - R - cfg.hw.pe_mult_latency + 1
    # (the epilogue: latency - 1 stage registers and the slice's two entries)
    assert dut.sum_fifo_depth < taken_during_hold[0] <= capacity, taken_during_hold
    check(cfg, [case], [mon.received], seed)
