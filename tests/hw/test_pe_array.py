"""PEArray in pysim: every output row equals the exact dot products of its weight tile.

A sequence of weight tiles alternates between the two banks, back to back (the bank bit
changes while the previous tile's beats are still in the array); the next tile's rows are
written into the idle bank as soon as each row is free, random clock-enable gaps stall the
array, random bubbles enter it (with the write port unregistered and registered), and each beat's C sums are checked against
sim.golden.linear.gemm_acc (exact integer products, no bias) when they leave the bottom row.
Operands include the extremes (-max * -max products).
The Verilog of the array is covered by the GEMM engine's Verilator test and the ECP5 synthesis
test (test_pe_array_synth.py).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from hw.array.pe_array import PEArray, psum_bits
from sim.config import Config, with_changes
from sim.golden.linear import gemm_acc
from tests.harness import run_pysim
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.hw.test_gemm_cases import _mixed


def _configs():
    tiny = Config.tiny()
    return [pytest.param(tiny, id="4x4"),
            pytest.param(with_changes(tiny, name="3x5", hw=dict(array_rows=3, array_cols=5)),
                         id="3x5"),
            pytest.param(with_changes(tiny, name="1x2", hw=dict(array_rows=1, array_cols=2)),
                         id="1x2")]


@pytest.mark.parametrize("write_delay", [0, 1])
@pytest.mark.parametrize("cfg", _configs())
def test_pe_array_tiles(cfg, write_delay, seed):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    R, C = cfg.hw.array_rows, cfg.hw.array_cols
    n = cfg.num
    tiles = 8
    wts = [_mixed(nrng, (R, C), n.weight.bits) for _ in range(tiles)]
    wts[0][:] = n.weight.min_int                     # largest product: min * min
    beats = [_mixed(nrng, (rng.randint(1, 2 * R), R), n.act.bits) for _ in range(tiles)]
    beats[0][:] = n.act.min_int
    if write_delay and R < 2:
        with pytest.raises(ValueError):
            PEArray(cfg, write_delay=1)
        return
    # write_delay 1: a row lands a cycle later; the loop below still issues a tile only in the
    # cycle after its last row's write, which is in time for R >= 2 (pe_array docstring)
    dut = PEArray(cfg, write_delay=write_delay)
    got, want = [], []

    async def tb(ctx):
        # Per cycle, like the GEMM engine's controller: write one row of the next tile into the
        # idle bank as soon as the last beat of the tile that used that bank has passed the row
        # (row r reads a beat issued at advance a during advance a + r); issue the current
        # tile's beats back to back, the bank bit switching mid-array.
        adv = 0                     # advances so far
        inflight = []               # (advance at which the result is on psum, expected row)
        last_issue = [-10 * R, -10 * R]
        j, i = 0, 0                 # tile and beat being issued
        ld, lr = 0, 0               # tile and row being loaded
        while j < tiles or inflight:
            write = ld < tiles and ld <= j + 1 and adv > last_issue[ld % 2] + lr
            ctx.set(dut.w_en, int(write))
            if write:
                ctx.set(dut.w_data, wts[ld][lr].tolist())
                ctx.set(dut.w_row, lr)
                ctx.set(dut.w_bank, ld % 2)
            en = rng.random() < 0.8
            ctx.set(dut.en, int(en))
            issue = en and j < tiles and ld > j and rng.random() < 0.9
            if issue:
                x = beats[j][i]
                ctx.set(dut.x, x.tolist())
                ctx.set(dut.bank, j % 2)
                want_row = gemm_acc(cfg, x[None, :], wts[j].T)[0].tolist()
                inflight.append((adv + dut.latency, want_row))
            else:                   # a bubble: garbage in, its result is never looked at
                ctx.set(dut.x, [rng.randrange(-9, 9) for _ in range(R)])
                ctx.set(dut.bank, rng.randrange(2))
            await ctx.tick()
            if write:
                lr += 1
                if lr == R:
                    ld, lr = ld + 1, 0
            if issue:
                i += 1
                if i == len(beats[j]):
                    last_issue[j % 2] = adv
                    j, i = j + 1, 0
            if en:
                adv += 1
                while inflight and inflight[0][0] == adv:
                    got.append([ctx.get(dut.psum[c]) for c in range(C)])
                    want.append(inflight.pop(0)[1])

    run_pysim(dut, [tb], deadline_cycles=20000)
    assert len(got) == sum(len(b) for b in beats)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"beat {i}: got {g}, expected {w} (seed={seed})"
    # the extreme tile: R * min * min must be representable in psum_bits
    assert max(max(abs(v) for v in w) for w in want) < 1 << (psum_bits(cfg, R) - 1)
