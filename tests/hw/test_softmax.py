"""Softmax unit (hw/attention/softmax.py) and its divider (hw/attention/reciprocal.py) in pysim, bit-exact vs golden.

Rows: equal values, one dominant value, a max that grows every beat, very negative values,
full-range values, length 1, max length, random lengths; random valid gaps and back-pressure.
Also checks one beat per cycle at full rate and prints the row-sum error after dequantization.
"""
from __future__ import annotations

import numpy as np
import pytest

from hw.attention.reciprocal import Reciprocal
from hw.attention.softmax import Softmax, softmax_widths
from sim.config import get_config
from sim.golden.softmax import reciprocal, softmax_rows
from host.pysim import StreamDriver, StreamMonitor, run_pysim
from tests.harness.seeds import np_rng, rng, seed, seed_msg  # noqa: F401
from host.streams import assert_beats_equal
from tests.hw.test_softmax_cases import (expected_beats, group_beats, row_sum_error,
                                         softmax_groups)


def run_softmax(dut, beats, n_out, rng, valid_prob, ready_prob):
    drv = StreamDriver(dut.i, beats, rng=rng, valid_prob=valid_prob)
    mon = StreamMonitor(dut.o, n_out, rng=rng, ready_prob=ready_prob)
    run_pysim(dut, [drv, mon], deadline_cycles=20 * len(beats) + 400)
    return drv, mon


@pytest.mark.parametrize("lanes", [1, 3])
def test_softmax_cases(lanes, seed, rng, np_rng):
    cfg = get_config("tiny")
    dut = Softmax(cfg, lanes=lanes)
    groups = softmax_groups(cfg, lanes, dut.max_len, np_rng)
    beats, want, names = [], [], []
    for name, g in groups:
        beats += group_beats(g)
        want += expected_beats(cfg, g)
        names += [name] * g.shape[1]
    _, mon = run_softmax(dut, beats, len(want), rng, 0.7, 0.6)
    got = mon.received
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"group {names[k]!r}, beat {k}: got {g}, want {w}; {seed_msg(seed)}"
    assert_beats_equal(got, want, seed=seed)


def test_softmax_full_rate_and_row_sums(seed, rng, np_rng):
    """Back-to-back max-length rows at full rate: one beat per cycle; print row-sum error."""
    cfg = get_config("tiny")
    dut = Softmax(cfg, lanes=2)
    n, rows = dut.max_len, 6
    one = 1 << cfg.num.score.frac_bits
    groups = [np_rng.normal(0, 3 * one, size=(2, n)).astype(np.int64) for _ in range(rows)]
    beats = [b for g in groups for b in group_beats(g)]
    want = [b for g in groups for b in expected_beats(cfg, g)]
    drv, mon = run_softmax(dut, beats, len(want), None, 1.0, 1.0)
    assert_beats_equal(mon.received, want, seed=seed)
    acc = drv.accepted_cycles
    assert acc == list(range(acc[0], acc[0] + len(beats))), "input stalled at full rate"
    tr = mon.transfer_cycles
    assert tr == list(range(tr[0], tr[0] + len(want))), "output has gaps at full rate"
    print(f"softmax: {len(beats)} beats in {tr[-1] - acc[0] + 1} cycles; first-row latency "
          f"(last in -> first out) {tr[0] - acc[n - 1]} cycles")
    assert tr[0] - acc[n - 1] == dut.latency
    probs = np.array([b["p"] for b in mon.received]).reshape(rows, n, 2).transpose(0, 2, 1)
    err = row_sum_error(cfg, probs.reshape(-1, n))
    print(f"softmax RTL row sums (tiny, {2 * rows} random rows of {n}): max |sum - 1| = {err:.2e}")
    assert err < 1e-3


@pytest.mark.parametrize("name,length", [("tiny", None), ("m3vit-tiny-cityscapes", None)])
def test_softmax_row_sums(name, length, seed, np_rng):
    """Row sums after dequantization on random rows (golden = RTL, proven above)."""
    cfg = get_config(name)
    n = cfg.model.tokens if length is None else length
    one = 1 << cfg.num.score.frac_bits
    worst = 0.0
    for spread in (0.5, 2.0, 8.0, 30.0):
        t = np_rng.normal(0, spread * one, size=(200, n)).astype(np.int64)
        worst = max(worst, row_sum_error(cfg, softmax_rows(cfg, t)))
    print(f"softmax row sums ({name}, rows of {n}): max |sum - 1| = {worst:.2e}")
    assert worst < 1e-3


def test_softmax_m3vit_length(seed, rng, np_rng):
    """Rows of the M3ViT token count (129) with gaps and back-pressure."""
    cfg = get_config("m3vit-tiny-cityscapes")
    dut = Softmax(cfg, lanes=1)
    assert dut.max_len == 129
    one = 1 << cfg.num.score.frac_bits
    groups = [np_rng.normal(0, 4 * one, size=(1, 129)).astype(np.int64),
              np.full((1, 129), -5 * one), np_rng.integers(-20 * one, 20 * one, size=(1, 1))]
    beats = [b for g in groups for b in group_beats(g)]
    want = [b for g in groups for b in expected_beats(cfg, g)]
    _, mon = run_softmax(dut, beats, len(want), rng, 0.8, 0.8)
    assert_beats_equal(mon.received, want, seed=seed)


def test_reciprocal(seed, rng, np_rng):
    """The divider alone: random sums over the whole assumed range, gaps and back-pressure."""
    cfg = get_config("tiny")
    lb = softmax_widths(cfg, cfg.model.tokens)["l_bits"]
    for bpc in (1, 3):
        dut = Reciprocal(cfg, lb, lanes=2, bits_per_cycle=bpc)
        lo = 1 << (cfg.num.exp.frac_bits - 1)
        ls = np.concatenate([np_rng.integers(lo, 1 << lb, size=(40, 2)),
                             [[lo, (1 << lb) - 1], [lo + 1, lo * 3]]])
        want = reciprocal(cfg, ls).tolist()
        drv = StreamDriver(dut.i, ls.tolist(), rng=rng, valid_prob=0.6)
        mon = StreamMonitor(dut.o, len(want), rng=rng, ready_prob=0.6)
        run_pysim(dut, [drv, mon], deadline_cycles=100 * len(want))
        assert_beats_equal(mon.received, want, inputs=ls.tolist(), seed=seed)
