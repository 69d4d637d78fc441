"""Whole tiny frames with streamed expert weights (``hw.expert_weights = "stream"``).

The expert fc1 / fc2 GEMMs read their weight tiles and biases from the DRAM model through the
GEMM path's readers (hw/moe/expert_stream.py), with no ping/pong buffers. One frame (seeded
random weights and image, unthrottled bus) is checked bit-exact against ``sim.golden.forward``,
its bytes read against the analytic count (every chosen expert's weight rows and bias tiles,
whole beats), and its per-descriptor cycles against the frame model (sim/cycles/frame.py) given
the golden routing: every descriptor exact except EXPERTS, whose weight-stream model is within
1 % (it misses a few cycles per expert GEMM whose tiles and weight rows run at nearly the same
pace, docs/moe.md). pysim in the default run; the same in Verilator is slow.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from host.run import run_frame
from sim import golden
from sim.config import Config
from sim.cycles.frame import frame_cost
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.system.frames import frame_case, tiny


def stream_config() -> Config:
    cfg = tiny()
    return replace(cfg, name="tiny-stream", hw=replace(cfg.hw, expert_weights="stream"))


def _expert_counts(case) -> dict:
    cfg = case["cfg"]
    trace = {}
    golden.forward(cfg, case["qparams"], case["image_q"], case["task"], trace)
    return {b: np.bincount(trace[f"blocks.{b}.routing"].experts.ravel(),
                           minlength=cfg.model.experts).tolist() for b in cfg.model.moe_blocks}


def _streamed_bytes(cfg: Config, counts: dict) -> int:
    """Expert bytes read per MoE block, counted independently: fc1 (K = dim, N = hidden) and fc2
    read nt = N / C column tiles of K weight rows of C weights plus one bias tile each, every
    one rounded up to whole memory beats."""
    m, n, h = cfg.model, cfg.num, cfg.hw
    W, C = h.mem_bytes_per_cycle, h.array_cols
    per_expert = 0
    for k, nn in ((m.dim, m.expert_hidden), (m.expert_hidden, m.dim)):
        row = -(-C * n.weight.storage_bytes // W) * W
        bias = -(-C * n.bias.storage_bytes // W) * W
        per_expert += (nn // C) * (k * row + bias)
    return sum(per_expert * sum(1 for c in cs if c) for cs in counts.values())


def _check(sim, seed, tmp_path=None):
    cfg = stream_config()
    case = frame_case(cfg, seed, 0)
    res = run_frame(cfg, case["qparams"], case["image_q"], 0, sim=sim, work_dir=tmp_path)
    bad = np.argwhere(res.tokens != case["want"])
    assert not len(bad), f"{len(bad)} values differ, first at {bad[0]} (seed={seed})"
    counts = _expert_counts(case)
    model = frame_cost(cfg, counts)
    rtl = {t["index"]: t["cycles"] for t in res.trace}
    lines = [f"{x.index:3d} {x.op:9s} model {x.cycles:7,} rtl {rtl[x.index]:7,} {x.note}"
             for x in model.layers]
    msg = "\n".join(lines) + f"\nseed={seed}, expert counts {counts}"
    for x in model.layers:
        if x.op == "EXPERTS":
            assert abs(x.cycles - rtl[x.index]) <= 0.01 * rtl[x.index], msg
        else:
            assert x.cycles == rtl[x.index], msg
    assert abs(model.cycles - res.cycles) <= 0.005 * res.cycles, msg
    assert model.bytes_read == res.counters["bytes_read"], msg
    assert sum(x.bytes_read for x in model.layers if x.op == "EXPERTS") == \
        _streamed_bytes(cfg, counts), msg
    print(f"\n{msg}\nframe: model {model.cycles:,} RTL {res.cycles:,} cycles")


def test_stream_frame_pysim(seed):
    _check("pysim", seed)


@pytest.mark.slow
def test_stream_frame_verilator(seed, tmp_path):
    _check("verilator", seed, tmp_path)
