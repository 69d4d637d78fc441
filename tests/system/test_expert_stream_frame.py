"""Whole tiny frames with streamed expert weights (``hw.expert_weights = "stream"``).

The expert fc1 / fc2 GEMMs read their weight tiles and biases from the DRAM model through the
GEMM path's readers (hw/moe/expert_stream.py), with no ping/pong buffers. One frame (the random
weights and image of tests/system/test_frame_model.py, seed 0, unthrottled bus: its routing
gives the experts 5, 12, 1 and 16 tokens, so both bounds of the streamed-GEMM model and the step
between them are exercised) is checked bit-exact against ``sim.golden.forward``,
its bytes read against the analytic count (every chosen expert's weight rows and bias tiles,
whole beats), and its per-descriptor cycles against the frame model (sim/cycles/frame.py) given
the golden routing: every descriptor exact except EXPERTS, whose weight-stream model is within
1 % (it misses a few cycles per expert GEMM whose tiles and weight rows run at nearly the same
pace, docs/moe.md). The row-tiled streamed frame in pysim is in the default run; the untiled one
(pysim) and Verilator are slow.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from host.run import run_frame
from sim import golden
from sim.config import Config, with_changes
from sim.cycles.frame import frame_cost
from sim.params import random_params
from tests.system.frames import expert_counts, tiled_config, tiny


def stream_config() -> Config:
    cfg = tiny()
    return replace(cfg, name="tiny-stream", hw=replace(cfg.hw, expert_weights="stream"))


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
    # a row-tiled H (hw.hidden_rows) streams both matrices once per chunk of h_rows tokens
    return sum(per_expert * sum(-(-c // cfg.h_rows) for c in cs if c) for cs in counts.values())


def _case(cfg: Config) -> dict:
    m = cfg.model
    qp, _ = golden.quantize_params(cfg, random_params(cfg, 0))
    img = golden.quantize_image(cfg, np.random.default_rng(0).random(
        (m.image_channels, m.image_height, m.image_width)))
    return dict(cfg=cfg, qparams=qp, image_q=img, task=0, want=golden.forward(cfg, qp, img, 0))


def tiled_stream_config() -> Config:
    """Streamed expert weights with a 9-row H (tests.system.frames.tiled_config): the 12- and
    16-token queues are streamed in chunks of 9. The bank is wired for this program only
    (``buffer_wiring="program"``), as on the M3ViT board config."""
    return with_changes(tiled_config(9), name="tiny-h9-stream",
                        hw=dict(expert_weights="stream", buffer_wiring="program"))


def _check(sim, tmp_path=None, cfg=None):
    cfg = cfg or stream_config()
    case = _case(cfg)
    res = run_frame(cfg, case["qparams"], case["image_q"], 0, sim=sim, work_dir=tmp_path)
    bad = np.argwhere(res.tokens != case["want"])
    assert not len(bad), f"{len(bad)} values differ, first at {bad[0]}"
    counts = expert_counts(case["cfg"], case["qparams"], case["image_q"], case["task"])
    model = frame_cost(cfg, counts)
    rtl = {t["index"]: t["cycles"] for t in res.trace}
    lines = [f"{x.index:3d} {x.op:9s} model {x.cycles:7,} rtl {rtl[x.index]:7,} {x.note}"
             for x in model.layers]
    msg = "\n".join(lines) + f"\nexpert counts {counts}"
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


# the untiled streamed frame is slow: the tiled one below runs the same streamer and GEMM path
# (plus the chunked queues) in the default run
@pytest.mark.slow
def test_stream_frame_pysim():
    _check("pysim")


def test_stream_frame_tiled_pysim():
    _check("pysim", cfg=tiled_stream_config())


@pytest.mark.slow
def test_stream_frame_verilator(tmp_path):
    _check("verilator", tmp_path)


def board_like_config() -> Config:
    """The M3ViT board config's shape on tiny: row-tiled H, streamed experts, GELU on fc2's
    activation reads (``hw.gelu_site = "act"``), more experts than array columns (4 gate
    logits over 2 columns: the gate GEMM's first column tile waits in the GEMM path's store)
    and 4-byte memory beats (the descriptor fetch then delays each reading descriptor by 8
    cycles more than with 8-byte beats)."""
    return with_changes(tiled_stream_config(), name="tiny-h9-stream-act-c2",
                        hw=dict(gelu_site="act", array_cols=2, mem_bytes_per_cycle=4))


def test_stream_frame_board_like_verilator(tmp_path):
    """:func:`board_like_config`: fc2 applies GELU to H's rows as it reads them (dense MLP in
    row tiles and the streamed experts), the router gets 4 logits from two column tiles:
    bit-exact with the golden model and the frame model as above (the two-tile ROUTE exact;
    EXPERTS 15,750 cycles against the RTL's 15,752, seed 0)."""
    cfg = board_like_config()
    assert cfg.gate_tiles == 2 and cfg.hw.gelu_on_reads
    _check("verilator", tmp_path, cfg=cfg)
