"""cocotb tests of hw.moe.router.Router on its Verilog (run by tests/hw/test_router_verilator.py).

Params: ``config`` (Config.to_dict()), ``tokens`` (beats), ``seed``, ``valid_prob``,
``ready_prob``. Logits come from the shared generator in tests/hw/test_router.py and the
expectation from the golden to_score -> softmax_rows -> top_k.
"""
from __future__ import annotations

import random

import cocotb

from hw.moe.router import Router
from tests.harness.cocotb_tb import setup_dut, stream_through, tb_params
from tests.hw.test_router import router_beats, router_expected, router_logits


async def _run(dut, valid_prob, ready_prob, count, seed_offset=0):
    p, cfg = tb_params()
    seed = p["seed"] + seed_offset
    model = Router(cfg)
    rng = random.Random(seed)
    logits = router_logits(cfg, rng, count)
    beats = router_beats(cfg, logits)
    want = router_expected(cfg, logits, beats)
    ports = await setup_dut(dut, inputs={"i": model.in_layout}, outputs={"o": model.out_layout})
    acc, tr = [], []
    got = await stream_through(dut, ports["i"], ports["o"], beats,
                               rng_in=random.Random(seed + 1), valid_prob=valid_prob,
                               rng_out=random.Random(seed + 2), ready_prob=ready_prob,
                               accepted=acc, transferred=tr)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"token {k}: got {g}, expected {w}, logits {beats[k]['logits']} " \
                       f"(seed={seed})"
    return model, acc, tr


@cocotb.test()
async def router_random_stream(dut):
    """Random logits (ties, extremes) with random valid gaps and back-pressure, bit-exact."""
    p, _ = tb_params()
    await _run(dut, p["valid_prob"], p["ready_prob"], p["tokens"])


@cocotb.test()
async def router_full_rate(dut):
    """Always valid / ready: documented latency and one token per cycles_per_token."""
    model, acc, tr = await _run(dut, 1.0, 1.0, 16, seed_offset=7)
    assert tr[0] - acc[0] == model.latency, f"latency {tr[0] - acc[0]}, doc {model.latency}"
    gaps = {b - a for a, b in zip(tr, tr[1:])}
    assert gaps == {model.cycles_per_token}, f"output spacing {gaps}"
