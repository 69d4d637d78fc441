"""cocotb tests of hw.attention.softmax.Softmax on its Verilog (run by tests/hw/test_softmax_verilator.py).

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
from sim.config import Config
from host.cocotb_streams import StreamPort, load_params, start, stream_recv, stream_send
from tests.hw.test_softmax_cases import (expected_beats, group_beats, row_sum_error,
                                         softmax_groups)


@cocotb.test()
async def softmax_corner_rows(dut):
    """Every corner-case group, random valid gaps and back-pressure, bit-exact."""
    p = load_params()
    cfg = Config.from_dict(p["config"])
    seed = p["seed"]
    model = Softmax(cfg, lanes=p["lanes"], max_len=p["max_len"])
    groups = softmax_groups(cfg, model.lanes, model.max_len, np.random.default_rng(seed))
    beats, want, names = [], [], []
    for name, g in groups:
        beats += group_beats(g)
        want += expected_beats(cfg, g)
        names += [name] * g.shape[1]
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await start(dut)
    i = StreamPort(dut, "i", model.in_layout)
    o = StreamPort(dut, "o", model.out_layout)
    send = cocotb.start_soon(stream_send(dut.clk, i, beats, rng=random.Random(seed + 1),
                                         valid_prob=p["valid_prob"]))
    got = await stream_recv(dut.clk, o, len(want), rng=random.Random(seed + 2),
                            ready_prob=p["ready_prob"])
    await send
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"group {names[k]!r} beat {k}: got {g}, expected {w} (seed={seed})"
    dut._log.info("%d groups, %d beats bit-exact (seed=%d)", len(groups), len(want), seed)


@cocotb.test()
async def softmax_full_rate(dut):
    """Back-to-back max-length random rows at full rate: one beat per cycle, row sums ~ 1."""
    p = load_params()
    cfg = Config.from_dict(p["config"])
    seed = p["seed"]
    model = Softmax(cfg, lanes=p["lanes"], max_len=p["max_len"])
    rng = np.random.default_rng(seed + 3)
    one = 1 << cfg.num.score.frac_bits
    n, rows = model.max_len, 4
    groups = [rng.normal(0, 3 * one, size=(model.lanes, n)).astype(np.int64)
              for _ in range(rows)]
    beats = [b for g in groups for b in group_beats(g)]
    want = [b for g in groups for b in expected_beats(cfg, g)]
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await start(dut)
    i = StreamPort(dut, "i", model.in_layout)
    o = StreamPort(dut, "o", model.out_layout)
    acc, tr = [], []
    send = cocotb.start_soon(stream_send(dut.clk, i, beats, accepted_cycles=acc))
    got = await stream_recv(dut.clk, o, len(want), transfer_cycles=tr)
    await send
    assert got == want, f"full-rate output differs (seed={seed})"
    assert acc == list(range(acc[0], acc[0] + len(beats))), "input stalled at full rate"
    assert tr == list(range(tr[0], tr[0] + len(want))), "output has gaps at full rate"
    assert tr[0] - acc[n - 1] == model.latency, f"row latency {tr[0] - acc[n - 1]}"
    probs = np.array([b["p"] for b in got]).reshape(rows, n, model.lanes).transpose(0, 2, 1)
    dut._log.info("row sums: max |sum - 1| = %.2e", row_sum_error(cfg, probs.reshape(-1, n)))
