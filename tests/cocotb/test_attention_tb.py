"""cocotb tests of hw.attention.attention.Attention on its Verilog.

Run by tests/hw/test_attention_verilator.py.

params: ``config`` (Config.to_dict()), ``tokens``, ``heads``, ``seed``, ``scale`` (|q|, |k|, |v|
bound in activation LSBs), ``valid_prob``, ``ready_prob``. Expected O beats come from
sim.golden.softmax.attention_head (hw.attention.attention_stream.attention_reference); the
full-rate test also checks the cycle count against sim.cycles.attention and the K/V byte counter.
"""
from __future__ import annotations

import random

import cocotb
import numpy as np

from hw.attention.attention import attention_layouts
from hw.attention.attention_lane import attention_params
from hw.attention.attention_stream import attention_reference, kv_beats, o_beats, q_beats
from host.cocotb_streams import stream_recv, stream_send
from sim.cycles.attention import (attention_head_cycles, attention_kv_bytes,
                                  attention_steady_cycles)
from tests.harness.cocotb_tb import setup_dut, tb_params


def _setup(seed_offset: int):
    p, cfg = tb_params()
    ap = attention_params(cfg, p["tokens"])
    rng = np.random.default_rng(p["seed"] + seed_offset)
    q, k, v = (rng.integers(-p["scale"], p["scale"], size=(p["heads"], ap.N, ap.hd))
               for _ in range(3))
    want = o_beats(cfg, attention_reference(cfg, q, k, v), ap.norm_width)
    return p, cfg, ap, q, k, v, want


async def _run(dut, cfg, ap, q, k, v, n_out, rng, valid_prob, ready_prob):
    lay = attention_layouts(cfg, ap)
    ports = await setup_dut(dut, inputs={"q": lay["q"], "kv": lay["kv"]}, outputs={"o": lay["o"]})
    qp, kvp, op = ports["q"], ports["kv"], ports["o"]
    acc, tr = [], []
    sq = cocotb.start_soon(stream_send(dut.clk, qp, q_beats(cfg, q), rng=rng,
                                       valid_prob=valid_prob))
    skv = cocotb.start_soon(stream_send(dut.clk, kvp, kv_beats(cfg, k, v), rng=rng,
                                        valid_prob=valid_prob, accepted_cycles=acc))
    got = await stream_recv(dut.clk, op, n_out, rng=rng, ready_prob=ready_prob,
                            transfer_cycles=tr, timeout_cycles=100 * ap.N * ap.c + 1000)
    await sq
    await skv
    return got, acc, tr


@cocotb.test()
async def attention_random_stalls(dut):
    """Random valid gaps on Q and K/V, random back-pressure on O: bit-exact."""
    p, cfg, ap, q, k, v, want = _setup(0)
    got, _, _ = await _run(dut, cfg, ap, q, k, v, len(want), random.Random(p["seed"]),
                           p["valid_prob"], p["ready_prob"])
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"O beat {i}: got {g}, expected {w} (seed={p['seed']})"
    dut._log.info("%d heads, %d O beats bit-exact (seed=%d)", p["heads"], len(want), p["seed"])


@cocotb.test()
async def attention_full_rate(dut):
    """Always valid / ready: bit-exact, cycle count = model, K/V bytes = model."""
    p, cfg, ap, q, k, v, want = _setup(1)
    got, acc, tr = await _run(dut, cfg, ap, q, k, v, len(want), None, 1.0, 1.0)
    assert got == want, f"full-rate output differs (seed={p['seed']})"
    heads = p["heads"]
    model = (attention_head_cycles(cfg, p["tokens"])
             + (heads - 1) * attention_steady_cycles(cfg, p["tokens"]))
    assert tr[-1] == model, f"RTL {tr[-1]} cycles, model {model}"
    kv_bytes = int(dut.kv_bytes.value)
    # The counters keep running; kv_bytes stops growing after the last K/V beat.
    assert kv_bytes == heads * attention_kv_bytes(cfg, p["tokens"]), kv_bytes
    stream = acc[-1] - acc[0] + 1
    dut._log.info("p=%d N=%d hd=%d: %d cycles (model %d), %d K/V bytes, %.1f bytes/cycle while "
                  "streaming", ap.p, ap.N, ap.hd, tr[-1], model, kv_bytes, kv_bytes / stream)


@cocotb.test()
async def attention_heavy_backpressure(dut):
    """O rarely ready: the lanes stall on full hold registers; still bit-exact."""
    p, cfg, ap, q, k, v, want = _setup(2)
    got, acc, _ = await _run(dut, cfg, ap, q, k, v, len(want), random.Random(p["seed"] + 5),
                             0.9, 0.05)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"O beat {i}: got {g}, expected {w} (seed={p['seed']})"
    gaps = sum(b - a - 1 for a, b in zip(acc, acc[1:]))
    # K/V valid gaps alone explain ~0.11 gap cycles per beat (valid 0.9); half a gap per beat or
    # more is the lanes stalling on the rarely-ready O stream.
    assert gaps > len(acc) // 2, f"no lane stall observed (K/V gaps {gaps}, {len(acc)} beats)"
