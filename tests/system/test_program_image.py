"""The binary frame program and memory image (sim/memory_image.py), executed by the golden
byte-level interpreter ``run_image``, equal ``sim.golden.forward`` bit for bit."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.config import get_config
from sim.frame_program import Instr, Op, frame_program
from sim.memory_image import (DESC_BYTES, Desc, HwOp, build_memory_image, check_aliasing,
                               decode_desc, encode_desc, lower_program, read_output, run_image)
from tests.harness.seeds import seed  # noqa: F401
from tests.system.frames import dense_config, depth1_config, frame_case, tiny


@pytest.mark.parametrize("task", [0, 1])
@pytest.mark.parametrize("make_cfg", [tiny, dense_config, lambda: depth1_config(True)],
                         ids=["tiny", "dense", "d1moe"])
def test_run_image_equals_forward(make_cfg, task, seed):
    case = frame_case(make_cfg(), seed, task)
    mem, layout = build_memory_image(case["cfg"], case["qparams"], case["image_q"], task)
    got, descs = run_image(case["cfg"], mem, layout, task)
    assert descs[-1].op is HwOp.END
    np.testing.assert_array_equal(got, case["want"], err_msg=f"seed={seed}")
    # the untouched image holds zeros where the output goes
    assert not read_output(case["cfg"], mem, layout).any()


def test_tasks_differ(seed):
    """The program is task independent, the TASK register selects the gate weights."""
    cfg = tiny()
    a = frame_case(cfg, seed, 0)
    b = frame_case(cfg, seed, 1)
    mem, layout = build_memory_image(cfg, a["qparams"], a["image_q"], 0)
    ga, _ = run_image(cfg, mem, layout, 0)
    gb, _ = run_image(cfg, mem, layout, 1)
    np.testing.assert_array_equal(ga, a["want"])
    np.testing.assert_array_equal(gb, b["want"])


def test_m3vit_program_lowering():
    """Full-size program: fields fit, the layout is uniform, encode/decode round-trips."""
    cfg = get_config("m3vit-tiny-cityscapes")
    descs = lower_program(cfg)
    assert descs[-1].op is HwOp.END
    ops = [d.op for d in descs]
    assert ops.count(HwOp.ATTENTION) == cfg.model.depth
    assert ops.count(HwOp.EXPERTS) == len(cfg.model.moe_blocks)
    for d in descs:
        raw = encode_desc(d)
        assert len(raw) == DESC_BYTES
        assert decode_desc(raw) == d


def test_decode_rejects_corruption():
    d = Desc(HwOp.GEMM, m=17, k=32, n=96, addr_a=0x40)
    raw = bytearray(encode_desc(d))
    for pos, what in [(0, "magic"), (5, "check"), (63, "check")]:
        bad = bytearray(raw)
        bad[pos] ^= 0x10
        with pytest.raises(ValueError, match=what):
            decode_desc(bytes(bad))
    with pytest.raises(ValueError, match="does not fit"):
        encode_desc(dataclasses.replace(d, m=1 << 16))


def test_aliasing_checker():
    prog = frame_program(tiny(), 0)
    check_aliasing(prog)
    # ATT and XN share a physical buffer: reading XN after ATT was written is an error
    bad = list(prog)
    att = next(i for i, ins in enumerate(bad) if ins.op is Op.ATTENTION)
    bad.insert(att + 1, Instr(Op.GEMM, "XN", "H", "w", "b", 1, 1, 1))
    with pytest.raises(ValueError, match="holds ATT"):
        check_aliasing(bad)
