"""cocotb tests of hw.attention.softmax.Softmax on its Verilog (run by
tests/hw/test_softmax_verilator.py).

params: ``config`` (Config.to_dict()), ``lanes``, ``max_len``, ``seed``, ``valid_prob``,
``ready_prob``. Rows: the corner cases of tests/hw/test_softmax_cases.py (equal values, one
dominant, very negative, full range, length 1, max length, random); expected beats from
sim.golden.softmax.softmax_rows.
"""
from __future__ import annotations

import random

import cocotb
import numpy as np

from hw.attention.softmax import Softmax
from tests.harness.cocotb_tb import setup_dut, stream_through, tb_params
from tests.hw.test_softmax_cases import (expected_beats, group_beats, row_sum_error,
                                         softmax_groups)


async def _setup(dut):
    p, cfg = tb_params()
    model = Softmax(cfg, lanes=p["lanes"], max_len=p["max_len"])
    ports = await setup_dut(dut, inputs={"i": model.in_layout}, outputs={"o": model.out_layout})
    return p, cfg, p["seed"], model, ports["i"], ports["o"]


@cocotb.test()
async def softmax_corner_rows(dut):
    """Every corner-case group, random valid gaps and back-pressure, bit-exact."""
    p, cfg, seed, model, i, o = await _setup(dut)
    groups = softmax_groups(cfg, model.lanes, model.max_len, np.random.default_rng(seed))
    beats, want, names = [], [], []
    for name, g in groups:
        beats += group_beats(g)
        want += expected_beats(cfg, g)
        names += [name] * g.shape[1]
    got = await stream_through(dut, i, o, beats, len(want), rng_in=random.Random(seed + 1),
                               valid_prob=p["valid_prob"], rng_out=random.Random(seed + 2),
                               ready_prob=p["ready_prob"])
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"group {names[k]!r} beat {k}: got {g}, expected {w} (seed={seed})"
    dut._log.info("%d groups, %d beats bit-exact (seed=%d)", len(groups), len(want), seed)


@cocotb.test()
async def softmax_full_rate(dut):
    """Back-to-back max-length random rows at full rate: one beat per cycle, row sums ~ 1."""
    p, cfg, seed, model, i, o = await _setup(dut)
    rng = np.random.default_rng(seed + 3)
    one = 1 << cfg.num.score.frac_bits
    n, rows = model.max_len, 4
    groups = [rng.normal(0, 3 * one, size=(model.lanes, n)).astype(np.int64)
              for _ in range(rows)]
    beats = [b for g in groups for b in group_beats(g)]
    want = [b for g in groups for b in expected_beats(cfg, g)]
    acc, tr = [], []
    got = await stream_through(dut, i, o, beats, len(want), accepted=acc, transferred=tr)
    assert got == want, f"full-rate output differs (seed={seed})"
    assert acc == list(range(acc[0], acc[0] + len(beats))), "input stalled at full rate"
    assert tr == list(range(tr[0], tr[0] + len(want))), "output has gaps at full rate"
    assert tr[0] - acc[n - 1] == model.latency, f"row latency {tr[0] - acc[n - 1]}"
    probs = np.array([b["p"] for b in got]).reshape(rows, n, model.lanes).transpose(0, 2, 1)
    dut._log.info("row sums: max |sum - 1| = %.2e", row_sum_error(cfg, probs.reshape(-1, n)))
