"""The binary frame program and memory image (sim/memory_image.py), executed by the golden
byte-level interpreter ``run_image``, equal ``sim.golden.forward`` bit for bit."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.config import get_config, with_changes
from sim.frame_program import Instr, Op, frame_program
from sim.memory_image import (DESC_BYTES, Buf, Desc, HwOp, LoadMode, build_memory_image,
                               check_aliasing, check_concurrency, check_desc, check_slots, decode_desc,
                               encode_desc, lower_program, read_output, run_image)
from tests.harness.seeds import seed  # noqa: F401
from tests.system.frames import (dense_config, depth1_config, frame_case, kv_config, tiled_config,
                                 tiny)


@pytest.mark.parametrize("task", [0, 1])
@pytest.mark.parametrize("make_cfg", [tiny, dense_config, lambda: depth1_config(True),
                                      lambda: with_changes(tiny(), hw=dict(attn_overlap=False)),
                                      tiled_config, lambda: tiled_config(4), kv_config,
                                      lambda: kv_config(2, None)],
                         ids=["tiny", "dense", "d1moe", "serial", "tiled5", "tiled4", "kv1",
                              "kv2"])
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
    # overlapped attention: one background ATTENTION per head, three QKV GEMMs per head
    assert ops.count(HwOp.ATTENTION) == cfg.model.depth * cfg.model.heads
    assert all(d.background for d in descs if d.op is HwOp.ATTENTION)
    qkv = [d for d in descs if d.op is HwOp.GEMM and d.dst == Buf.QKV]
    assert len(qkv) == 3 * cfg.model.depth * cfg.model.heads
    assert sorted({d.col0d for d in qkv}) == list(range(0, 3 * cfg.model.dim, cfg.model.head_dim))
    serial = lower_program(with_changes(cfg, hw=dict(attn_overlap=False)))
    assert [d.op for d in serial].count(HwOp.ATTENTION) == cfg.model.depth
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
    # ATT and H share a physical buffer: reading H after ATT was written is an error
    bad = list(prog)
    fc1 = next(i for i, ins in enumerate(bad) if ins.op is Op.GEMM and ins.dst == "H")
    att = next(i for i, ins in enumerate(bad) if ins.op is Op.ATTENTION and i > fc1)
    bad.insert(att + 1, Instr(Op.GEMM, "H", "X", "w", "b", 1, 1, 1))
    with pytest.raises(ValueError, match="holds ATT"):
        check_aliasing(bad)


def test_concurrency_checker():
    """The lowering's background attention is hazard-free; a concurrent descriptor that touches
    the running head's columns (or its output) is refused, a non-concurrent one waits."""
    cfg = tiny()
    prog = lower_program(cfg)
    check_concurrency(cfg, prog)
    att = next(i for i, d in enumerate(prog) if d.op is HwOp.ATTENTION)
    hd = cfg.model.head_dim
    k_cols_head0 = dataclasses.replace(prog[att + 2], col0d=cfg.model.dim)     # K of head 0
    with pytest.raises(ValueError, match="QKV column 32"):
        check_concurrency(cfg, prog[:att + 2] + [k_cols_head0] + prog[att + 3:])
    # reading the attention's output (H columns of head 0) while it is written
    reads_att = Desc(HwOp.GEMM, src=Buf.H, dst=Buf.X, m=4, k=hd, n=4, concurrent=1)
    with pytest.raises(ValueError, match="H column 0"):
        check_concurrency(cfg, prog[:att + 1] + [reads_att] + prog[att + 1:])
    check_concurrency(cfg, prog[:att + 1] + [dataclasses.replace(reads_att, concurrent=0)]
                      + prog[att + 1:])
    # reading other columns of Q/K/V, or writing other columns of H: the same memory port
    reads_qkv = Desc(HwOp.GEMM, src=Buf.QKV, dst=Buf.X, m=4, k=4, n=4, concurrent=1)
    with pytest.raises(ValueError, match="read port of QKV"):
        check_concurrency(cfg, prog[:att + 1] + [reads_qkv] + prog[att + 1:])
    writes_h = Desc(HwOp.GEMM, src=Buf.X, dst=Buf.H, m=4, k=4, n=4, concurrent=1)  # columns 0-3
    att1 = next(i for i, d in enumerate(prog) if d.op is HwOp.ATTENTION and d.head0 == 1)
    with pytest.raises(ValueError, match="write port of H"):       # head 1 writes columns 16-31
        check_concurrency(cfg, prog[:att1 + 1] + [writes_h] + prog[att1 + 1:])
    with pytest.raises(ValueError, match="only ATTENTION"):
        check_concurrency(cfg, [dataclasses.replace(prog[att - 1], background=1)])


def _rows(descs, pred):
    """Row ranges (first, count) of the descriptors matching ``pred``, in program order."""
    return [(d.row0s, d.row0d, d.m) for d in descs if pred(d)]


def test_tiled_lowering():
    """hw.hidden_rows = 5 on tiny (17 tokens, 4 x 4 patches): the dense MLP in tiles of 5, 5, 5
    and 2 rows through H rows 0..4, the patch embedding in tiles of one row of 4 patches, ATT
    in XN, one ATTENTION per block (serial)."""
    cfg = tiled_config(5)
    descs = lower_program(cfg)
    fc1 = _rows(descs, lambda d: d.op is HwOp.GEMM and d.dst == Buf.H)
    fc2 = _rows(descs, lambda d: d.op is HwOp.GEMM and d.src == Buf.H and d.dst == Buf.X
                and d.gelu == 0 and d.k == cfg.model.mlp_hidden)
    assert fc1 == [(0, 0, 5), (5, 0, 5), (10, 0, 5), (15, 0, 2)]
    assert fc2 == [(0, 0, 5), (0, 5, 5), (0, 10, 5), (0, 15, 2)]
    loads = [(d.patch0, d.m) for d in descs if d.op is HwOp.LOAD and d.mode == LoadMode.PATCHIFY]
    assert loads == [(0, 4), (4, 4), (8, 4), (12, 4)]
    embed = _rows(descs, lambda d: d.op is HwOp.GEMM and d.k == cfg.model.patch_dim)
    assert embed == [(0, 1, 4), (0, 5, 4), (0, 9, 4), (0, 13, 4)]
    att = [d for d in descs if d.op is HwOp.ATTENTION]
    assert [(d.dst, d.nheads, d.background) for d in att] == [(Buf.XN, 2, 0)] * cfg.model.depth
    # the untiled program keeps ATT in H
    assert {d.dst for d in lower_program(tiny()) if d.op is HwOp.ATTENTION} == {Buf.H}


def test_tiled_att_in_xn_needs_serial_attention():
    """ATT in XN is safe only in the serial program: the overlapped one (the next head's Q/K/V
    GEMM reads XN while a head writes ATT) fails check_concurrency, and check_aliasing with the
    tiled config proves the serial one."""
    cfg = tiled_config(5)
    check_aliasing(frame_program(cfg, 0), cfg)
    prog = lower_program(tiny())           # overlapped; move ATT to XN as a tiled H would
    moved = [dataclasses.replace(d, dst=Buf.XN) if d.op is HwOp.ATTENTION else d for d in prog]
    with pytest.raises(ValueError, match="touch XN column"):
        check_concurrency(tiny(), moved)
    # with ATT in XN, reading XN (not ATT) after the attention wrote it is an aliasing error
    bad = list(frame_program(cfg, 0))
    att = next(i for i, ins in enumerate(bad) if ins.op is Op.ATTENTION)
    bad.insert(att + 1, Instr(Op.GEMM, "XN", "X", "w", "b", 1, 1, 1))
    with pytest.raises(ValueError, match="XN now holds ATT"):
        check_aliasing(bad, cfg)
    check_aliasing(bad)                    # untiled map: ATT is in H, XN untouched


@pytest.mark.parametrize("desc, message", [
    (Desc(HwOp.GEMM, src=Buf.XN, dst=Buf.H, m=5, k=4, n=4, row0d=1), r"row0d \+ m must be <= 5 \(rows of H\)"),
    (Desc(HwOp.GEMM, src=Buf.H, dst=Buf.X, m=6, k=4, n=4), r"row0s \+ m must be <= 5"),
    (Desc(HwOp.LOAD, dst=Buf.H, mode=LoadMode.PATCHIFY, m=4, n=192, patch0=2), "whole rows of 4"),
    (Desc(HwOp.LOAD, dst=Buf.H, mode=LoadMode.PATCHIFY, m=3, n=192), "whole rows of 4"),
    (Desc(HwOp.LOAD, dst=Buf.X, m=4, n=32, patch0=4), r"LINEAR: patch0 = 0"),
])
def test_tiled_desc_checks(desc, message):
    cfg = tiled_config(5)
    with pytest.raises(ValueError, match=message):
        check_desc(cfg, desc)
    # the same GEMM rows are fine when H holds every token
    if desc.op is HwOp.GEMM:
        check_desc(tiny(), desc)


def test_kv_heads_lowering():
    """hw.kv_heads = 1 on tiny (2 heads of 16): one Q GEMM of all dim columns, then per head its
    K and V GEMMs into K / V columns 0..15 (weights of that head's columns) and a one-head
    ATTENTION whose output goes to Q; the projection reads Q."""
    cfg = kv_config(1)
    md = cfg.model
    d, hd, sw = md.dim, md.head_dim, cfg.num.weight.storage_bytes
    descs = lower_program(cfg)
    qkv = [x for x in descs if x.op is HwOp.GEMM and x.dst == Buf.QKV]
    base = qkv[0].addr_a
    got = [((x.addr_a - base) // sw, x.col0d, x.n) for x in qkv[:1 + 2 * md.heads]]
    assert got == [(0, 0, d), (d, d, hd), (2 * d, 2 * d, hd),
                   (d + hd, d, hd), (2 * d + hd, 2 * d, hd)]
    att = [x for x in descs if x.op is HwOp.ATTENTION]
    assert [(x.head0, x.nheads, x.dst) for x in att] == [(0, 1, Buf.QKV), (1, 1, Buf.QKV)] * md.depth
    proj = [x for x in descs if x.op is HwOp.GEMM and x.src == Buf.QKV]
    assert len(proj) == md.depth and all(x.k == d for x in proj)


def _kv_meta(cfg, descs):
    """check_slots' meta rebuilt from the descriptors (block by counting Q GEMMs)."""
    sw = cfg.num.weight.storage_bytes
    meta, block, base = {}, -1, 0
    for pc, x in enumerate(descs):
        if x.op is HwOp.GEMM and x.dst == Buf.QKV:
            if x.col0d == 0:
                block, base = block + 1, x.addr_a
            meta[pc] = (block, (x.addr_a - base) // sw)
        elif x.op is HwOp.ATTENTION or x.op is HwOp.GEMM and x.src == Buf.QKV:
            meta[pc] = (block, 0)
    return meta


def test_kv_slots_checker():
    """check_slots proves the kv_heads schedule and refuses: a head's attention after the next
    head's K GEMM overwrote its K columns, the projection before the last head wrote its
    output, and an attention whose output would clobber Q columns a later head reads."""
    cfg = kv_config(1)
    descs = lower_program(cfg)
    check_slots(cfg, descs, _kv_meta(cfg, descs))
    att0 = next(i for i, x in enumerate(descs) if x.op is HwOp.ATTENTION)
    # head 0's attention moved after head 1's K / V GEMMs
    moved = descs[:att0] + descs[att0 + 1:att0 + 3] + [descs[att0]] + descs[att0 + 3:]
    with pytest.raises(ValueError, match="reads QKV column 32"):
        check_slots(cfg, moved, _kv_meta(cfg, moved))
    # the projection before head 1's attention
    att1 = next(i for i, x in enumerate(descs) if x.op is HwOp.ATTENTION and x.head0 == 1)
    proj = next(i for i, x in enumerate(descs) if x.op is HwOp.GEMM and x.src == Buf.QKV)
    early = descs[:att1] + [descs[proj]] + descs[att1:proj] + descs[proj + 1:]
    with pytest.raises(ValueError, match="for \\('ATT', 0, 16\\)"):
        check_slots(cfg, early, _kv_meta(cfg, early))
    # the first attention labelled head 1: the K / V columns hold head 0's
    wrong = descs[:att0] + [dataclasses.replace(descs[att0], head0=1)] + descs[att0 + 1:]
    with pytest.raises(ValueError, match=r"reads QKV column 32 for \('QKV', 0, 48\)"):
        check_slots(cfg, wrong, _kv_meta(cfg, wrong))


def test_kv_heads_desc_checks():
    cfg = kv_config(1)
    hd, d = cfg.model.head_dim, cfg.model.dim
    with pytest.raises(ValueError, match=r"K / V destination column \+ n must be <= 16"):
        check_desc(cfg, Desc(HwOp.GEMM, src=Buf.XN, dst=Buf.QKV, m=4, k=4, n=hd, col0d=d + hd))
    with pytest.raises(ValueError, match=r"nheads must be in \[1, 1\]"):
        check_desc(cfg, Desc(HwOp.ATTENTION, dst=Buf.QKV, m=4, nheads=2))
    with pytest.raises(ValueError, match="attn_overlap=False"):
        with_changes(tiny(), hw=dict(kv_heads=1))
