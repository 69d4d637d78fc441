"""sim/cycles/timeline.py: busy intervals per unit, and the descriptors' start cycles.

The busy cycles are re-derived here from the layer list and checked against the frame totals
(``FrameCost.array_macs``, ``bytes_read``); the epilogue's score beats against a hand count of
the model's residual / scaled GEMMs; the timeline is shown to follow ``LayerCost.busy_start``
(not a running sum) by moving descriptors, and background attention to overlap the array.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pytest

from sim.config import get_config, with_changes
from sim.cycles.frame import START_EXTRA, desc_fetch_cycles, frame_cost
from sim.cycles.timeline import TIMELINE_UNITS, frame_timeline, unit_busy_cycles
from sim.memory_image import DESC_BYTES, lower_program

CONFIGS = ["tiny", "tiny-ecp5", "m3vit-tiny-cityscapes", "m3vit-ecp5-85f"]


@pytest.fixture(scope="module", params=CONFIGS)
def frame(request):
    cfg = get_config(request.param)
    return cfg, frame_cost(cfg)


def test_starts_are_back_to_back(frame):
    cfg, f = frame
    t = desc_fetch_cycles(cfg) + START_EXTRA
    for x in f.layers:
        assert x.start == t, (cfg.name, x.index)
        assert x.busy_start >= x.start
        t += x.cycles
    assert t == f.cycles


def test_intervals_do_not_overlap_and_sit_in_their_descriptor(frame):
    cfg, f = frame
    tl = frame_timeline(cfg, f)
    assert set(tl) == set(TIMELINE_UNITS)
    spans = [(x.busy_start, x.busy_start + x.busy_cycles) for x in f.layers]
    for unit, ivs in tl.items():
        assert ivs, f"{cfg.name}: {unit} never busy"
        for (s0, e0), (s1, e1) in zip(ivs, ivs[1:]):
            assert s0 < e0 <= s1 < e1, (cfg.name, unit)
        for s, e in ivs:
            assert any(a <= s and e <= b for a, b in spans), (cfg.name, unit, s, e)


def _busy_from_layers(cfg, f) -> dict[str, int]:
    """Each unit's busy cycles written out from the layer list (module docstring's rules)."""
    R, C, W = cfg.hw.array_rows, cfg.hw.array_cols, cfg.hw.mem_bytes_per_cycle
    busy = dict.fromkeys(TIMELINE_UNITS, 0)
    for x in f.layers:
        span = x.busy_cycles
        if x.op in ("GEMM", "ROUTE", "EXPERTS"):
            busy["array"] += min(span, -(-x.macs // (R * C)))
        busy["attention"] += span * (x.op == "ATTENTION")
        busy["layernorm"] += span * (x.op == "LAYERNORM")
        busy["router"] += span * (x.op == "ROUTE")
        busy["dma"] += min(span, -(-(x.bytes_read + x.bytes_written) // W))
    return busy


def test_interval_sums_equal_busy_cycles(frame):
    cfg, f = frame
    want = _busy_from_layers(cfg, f)
    tl = frame_timeline(cfg, f)
    got = {u: sum(e - s for s, e in ivs) for u, ivs in tl.items()}
    assert got == want
    busy = unit_busy_cycles(cfg, f)
    assert {u: busy[u] for u in TIMELINE_UNITS} == want
    # against the frame's own totals: rounding up adds < 1 cycle per descriptor
    n = len(f.layers)
    assert 0 <= got["array"] - f.array_macs / cfg.hw.macs_per_cycle < n
    program_bytes = len(lower_program(cfg)) * DESC_BYTES
    moved = (f.bytes_read - program_bytes + f.bytes_written) / cfg.hw.mem_bytes_per_cycle
    assert 0 <= got["dma"] - moved < n


def test_epilogue_beats_match_a_hand_count(frame):
    cfg, f = frame
    m, C = cfg.model, cfg.hw.array_cols
    per_row = m.dim // C
    dense = m.depth - len(m.moe_blocks)
    # residual GEMMs: patch embedding (+ position table), every proj, every dense fc2;
    # scaled: every expert fc2, tokens x top_k rows per MoE block
    want = (m.patches + m.depth * m.tokens + dense * m.tokens
            + len(m.moe_blocks) * m.tokens * m.top_k) * per_row
    assert unit_busy_cycles(cfg, f)["epilogue"] == want
    assert unit_busy_cycles(cfg, f)["control"] == sum(
        x.op in ("LOAD", "STORE", "ROUTE") for x in f.layers)


def test_timeline_follows_start_not_order():
    cfg = get_config("tiny")
    f = frame_cost(cfg)
    # run the descriptors in reverse, each moved to a new start, two of them overlapping
    t, moved = 1000, []
    for x in reversed(f.layers):
        moved.append(replace(x, busy_start=t))
        t += x.cycles
    moved[1] = replace(moved[1], busy_start=moved[0].busy_start)     # overlaps the first
    g = replace(f, layers=moved)
    tl = frame_timeline(cfg, g)
    starts = {u: sorted(s for s, _ in ivs) for u, ivs in tl.items()}
    for x in moved:
        nbytes = x.bytes_read + x.bytes_written
        if nbytes:
            assert x.busy_start in starts["dma"]
            e = x.busy_start + min(x.busy_cycles, math.ceil(nbytes / cfg.hw.mem_bytes_per_cycle))
            assert (x.busy_start, e) in tl["dma"]
    att = [x for x in moved if x.op == "ATTENTION"]
    assert sorted(tl["attention"]) == sorted((x.busy_start, x.busy_start + x.busy_cycles)
                                             for x in att)


@pytest.mark.parametrize("overlap", [True, False])
def test_background_attention_overlaps_the_array(overlap):
    """With ``attn_overlap`` every head but each block's last runs beside the array (the next
    head's Q/K/V GEMMs); the serial program never overlaps them."""
    cfg = with_changes(get_config("m3vit-tiny-cityscapes"), hw=dict(attn_overlap=overlap))
    f = frame_cost(cfg)
    tl = frame_timeline(cfg, f)
    hidden = sum(1 for s, e in tl["attention"]
                 if any(s < e2 and s2 < e for s2, e2 in tl["array"]))
    m = cfg.model
    assert hidden == (m.depth * (m.heads - 1) if overlap else 0)
    # the serial frame is slower by about the hidden heads' attention time
    if overlap:
        serial = frame_cost(with_changes(cfg, hw=dict(attn_overlap=False)))
        att = sum(e - s for s, e in tl["attention"])
        assert serial.cycles - f.cycles > 0.5 * att * (m.heads - 1) / m.heads
