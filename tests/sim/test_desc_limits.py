"""Descriptor field ranges (sim.memory_image.desc_ranges): the program builder refuses a
descriptor outside them with a message naming the field (the sequencer rejects the same ones,
tests/system/test_top_frame_pysim.py)."""
from __future__ import annotations

import dataclasses

import pytest

import sim.memory_image as mi
from sim.config import get_config
from sim.frame_program import Op, frame_program
from sim.memory_image import Buf, Desc, HwOp, check_desc, lower_program


def test_tiny_limits():
    cfg = get_config("tiny")          # 17 tokens, dim 32, 2 heads, 4 experts, expert MLP 48
    check_desc(cfg, Desc(HwOp.GEMM, m=17, k=192, n=96, row0d=0))
    check_desc(cfg, Desc(HwOp.GEMM, m=16, k=192, n=96, row0d=1))
    for d, msg in [
        (Desc(HwOp.GEMM, m=17, k=32, n=97), r"GEMM: n must be in \[1, 96\], got 97"),
        (Desc(HwOp.GEMM, m=17, k=193, n=4), r"k must be in \[1, 192\], got 193"),
        (Desc(HwOp.GEMM, m=0, k=4, n=4), r"m must be in \[1, 17\], got 0"),
        (Desc(HwOp.GEMM, m=16, k=4, n=4, row0s=2), r"row0s \+ m must be in \[1, 17\], got 18"),
        (Desc(HwOp.GEMM, m=1, k=4, n=4, epi=3), r"epi must be in \[0, 2\], got 3"),
        (Desc(HwOp.GEMM, m=1, k=4, n=4, dst=4), r"dst must be in \[0, 3\], got 4"),
        (Desc(HwOp.LOAD, m=17, n=193), r"LOAD: n must be in \[1, 192\], got 193"),
        (Desc(HwOp.LOAD, m=1, n=1, mode=2), r"mode must be in \[0, 1\], got 2"),
        (Desc(HwOp.STORE, m=17, n=33, base=0), r"STORE: n must be in \[1, 32\], got 33"),
        (Desc(HwOp.STORE, m=1, n=1, base=4), r"base must be in \[0, 3\], got 4"),
        (Desc(HwOp.ATTENTION, head0=1, nheads=2), r"head0 \+ nheads must be in \[1, 2\], got 3"),
        (Desc(HwOp.ROUTE, m=17, k=32, n=5), r"ROUTE: n must be in \[1, 4\], got 5"),
        (Desc(HwOp.EXPERTS, k=33, n=48), r"EXPERTS: k must be in \[1, 32\], got 33"),
        (Desc(HwOp.EXPERTS, k=32, n=49), r"EXPERTS: n must be in \[1, 48\], got 49"),
        (Desc(HwOp.LAYERNORM, m=18, src=Buf.X), r"LAYERNORM: m must be in \[1, 17\], got 18"),
    ]:
        with pytest.raises(ValueError, match=msg):
            check_desc(cfg, d)


def test_lower_program_refuses_an_out_of_range_descriptor(monkeypatch):
    cfg = get_config("tiny")
    logical = frame_program(cfg, 0)
    i = next(i for i, ins in enumerate(logical) if ins.op is Op.GEMM and ins.n == 64)
    logical[i] = dataclasses.replace(logical[i], n=97)
    monkeypatch.setattr(mi, "frame_program", lambda cfg, task: logical)
    with pytest.raises(ValueError, match=r"lower_program \(tiny\): descriptor \d+ GEMM "
                                         r"\(blocks.0.mlp.fc1\): n must be in \[1, 96\], got 97"):
        lower_program(cfg)
