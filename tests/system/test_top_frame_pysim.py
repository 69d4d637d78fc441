"""Whole frames on the top level in pysim (TopWithMemory: EdgeMoeTop + bus throttle + DRAM model),
bit-exact vs sim.golden.forward for the tiny config, both tasks, seeded random weights and image,
with seeded random gaps and back-pressure on every memory-bus channel (hw/mem/bus_throttle.py).

A full tiny frame is ~31k cycles, about a minute of pysim per task. The CSR / error test runs
several small programs from one memory image (PROG_BASE selects one): bad magic, bad check
word, bad opcode, bad field, a bare END, an out-of-range TASK, and LOAD + STORE round trips.
The limits test runs one program per range-checked descriptor field, one past its limit.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.top.csr import CSR_ID
from hw.top.error_codes import ErrorCode
from hw.top.top_with_memory import TopWithMemory
from host.run import _csr_read, _csr_write, _host_read, run_frame
from sim.config import get_config, with_changes
from sim.memory_image import (DESC_BYTES, Base, Buf, Desc, EpiMode, HwOp, LoadMode, check_desc,
                              encode_desc, lower_program)
from tests.harness.seeds import seed  # noqa: F401
from tests.system.frames import dense_config, frame_case, kv_config, tiled_config, tiny


# task 1 also runs in Verilator (tests/system/test_top_frame_verilator.py); its pysim run is slow
@pytest.mark.parametrize("task", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_tiny_frame_pysim(task, seed):
    case = frame_case(tiny(), seed, task)
    ticks = []
    res = run_frame(case["cfg"], case["qparams"], case["image_q"], task, sim="pysim",
                    throttle_seed=seed, progress=ticks.append, progress_every=10_000)
    bad = np.argwhere(res.tokens != case["want"])
    assert not len(bad), (f"{len(bad)} values differ, first at {bad[0]} (seed={seed}, "
                          f"task={task})")
    c = res.counters
    m = case["cfg"].model
    assert c["error"] == 0
    assert c["bytes_written"] == m.tokens * m.dim * case["cfg"].num.act.storage_bytes
    assert c["descriptors"] == len(lower_program(case["cfg"]))
    assert c["mac_active_cycles"] <= c["busy_cycles"]["gemm"] < c["cycles"]
    assert ticks and ticks == sorted(ticks)


def test_dense_serial_frame_pysim(seed):
    """The top without MoE hardware (no router, reorder unit, prefetcher or expert path) running
    the serial attention program: tests/system/frames.py's dense config (no MoE blocks,
    ``attn_overlap`` off) cut to one block, bit-exact, bus throttle on. Its Verilator twin
    (test_variant_frame_verilator[dense], a build of its own) runs with -m slow."""
    cfg = with_changes(dense_config(), name="tiny-d1-dense-serial", model=dict(depth=1))
    case = frame_case(cfg, seed, 1)
    res = run_frame(cfg, case["qparams"], case["image_q"], 1, sim="pysim", throttle_seed=seed)
    bad = np.argwhere(res.tokens != case["want"])
    assert not len(bad), f"{len(bad)} values differ, first at {bad[0]} (seed={seed})"
    assert res.counters["error"] == 0
    assert res.counters["descriptors"] == len(lower_program(cfg))
    assert res.counters["busy_cycles"]["route"] == res.counters["busy_cycles"]["experts"] == 0


def _corrupt(raw: bytes, pos: int) -> bytes:
    b = bytearray(raw)
    b[pos] ^= 0x40
    return bytes(b)


def _bad_opcode() -> bytes:
    raw = bytearray(encode_desc(Desc(HwOp.END)))
    raw[1] = (raw[1] & 0xF0) | 0x0B            # opcode 11 (word 0 bits 8..11)
    chk = int.from_bytes(raw[60:64], "little") ^ (0x0B << 8)   # keep the check word valid
    raw[60:64] = chk.to_bytes(4, "little")
    return bytes(raw)


def test_csr_errors_and_load_store(seed):
    """Register file, error detection and LOAD / STORE (LINEAR and PATCHIFY) on tiny."""
    cfg = get_config("tiny")
    md = cfg.model
    rng = np.random.default_rng(seed)
    act = cfg.num.act
    rows = rng.integers(act.min_int, act.max_int + 1, (md.tokens, md.dim))
    img = rng.integers(act.min_int, act.max_int + 1,
                       (md.image_channels, md.image_height, md.image_width))
    vb, dt = act.storage_bytes, act.numpy_dtype          # bytes and dtype of one value
    data_at, img_at, out_at, out2_at = 0x1000, 0x2000, 0x6000, 0x7000
    progs = {
        "magic": _corrupt(encode_desc(Desc(HwOp.END)), 0),
        "check": _corrupt(encode_desc(Desc(HwOp.END)), 61),
        "opcode": _bad_opcode(),
        "field": encode_desc(Desc(HwOp.GEMM, m=md.tokens + 5, k=4, n=4)),
        "end": encode_desc(Desc(HwOp.END)),
        "copy": b"".join(encode_desc(d) for d in [
            Desc(HwOp.LOAD, dst=Buf.X, mode=LoadMode.LINEAR, base=Base.IMAGE, m=md.tokens,
                 n=md.dim, addr_a=0),
            Desc(HwOp.STORE, src=Buf.X, base=Base.OUT, m=md.tokens, n=md.dim),
            Desc(HwOp.LOAD, dst=Buf.H, mode=LoadMode.PATCHIFY, base=Base.IMAGE, m=md.patches,
                 n=md.patch_dim, addr_a=img_at - data_at),
            Desc(HwOp.END)]),
    }
    mem = bytearray(0x8000)
    starts = {}
    at = 0
    for name, code in progs.items():
        starts[name] = at
        mem[at:at + len(code)] = code
        at += -(-len(code) // DESC_BYTES) * DESC_BYTES + DESC_BYTES
    mem[data_at:data_at + rows.size * vb] = rows.astype(dt).tobytes()
    mem[img_at:img_at + img.size * vb] = img.astype(dt).tobytes()
    dut = TopWithMemory(cfg, image=bytes(mem))
    got = {}

    async def run(ctx, name):
        await _csr_write(ctx, dut, "PROG_BASE", starts[name])
        await _csr_write(ctx, dut, "CTRL", 1)
        for _ in range(20000):
            await ctx.tick()
            if ctx.get(dut.done):
                break
        status = await _csr_read(ctx, dut, "STATUS")
        err = await _csr_read(ctx, dut, "ERROR")
        got[name] = (status, err, await _csr_read(ctx, dut, "DESCRIPTORS"))
        got[name + "_bytes_written"] = await _csr_read(ctx, dut, "BYTES_WRITTEN")
        await _csr_write(ctx, dut, "CTRL", 2)           # clear done / error

    async def bench(ctx):
        assert await _csr_read(ctx, dut, "ID") == CSR_ID
        for reg, val in (("TASK", 1), ("WEIGHT_BASE", 0x40), ("IMAGE_BASE", data_at),
                         ("OUT_BASE", out_at)):
            await _csr_write(ctx, dut, reg, val)
            assert await _csr_read(ctx, dut, reg) == val
        for name in progs:
            await run(ctx, name)
        await _csr_write(ctx, dut, "TASK", md.tasks)       # no such task: refused
        await run(ctx, "end")
        got["bad_task"] = got["end"]
        await _csr_write(ctx, dut, "TASK", 0)
        half_beat = cfg.hw.mem_bytes_per_cycle // 2
        for reg in ("WEIGHT_BASE", "IMAGE_BASE", "OUT_BASE"):     # not a multiple of the beat
            good = await _csr_read(ctx, dut, reg)
            await _csr_write(ctx, dut, reg, good + half_beat)
            await run(ctx, "end")
            got[f"bad_base_{reg}"] = got["end"]
            await _csr_write(ctx, dut, reg, good)
        starts["bad_prog"] = starts["end"] + half_beat
        await run(ctx, "bad_prog")
        await run(ctx, "end")
        got["status_after_clear"] = await _csr_read(ctx, dut, "STATUS")
        ctx.set(dut.host_mode, 1)
        await ctx.tick()
        got["out"] = await _host_read(ctx, dut, cfg, out_at, rows.size * vb)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    msg = f"seed={seed}: {got}"
    assert got["magic"][:2] == (0b110, 1), msg          # done | error, code 1 at descriptor 0
    assert got["check"][:2] == (0b110, 2), msg
    assert got["opcode"][:2] == (0b110, 3), msg
    assert got["field"][:2] == (0b110, 4), msg
    assert got["end"] == (0b010, 0, 1), msg
    assert got["bad_task"] == (0b110, 7, 0), msg
    for name in ("bad_prog", "bad_base_WEIGHT_BASE", "bad_base_IMAGE_BASE", "bad_base_OUT_BASE"):
        assert got[name] == (0b110, 8, 0), (name, msg)
    assert ErrorCode(8) is ErrorCode.BAD_BASE
    assert [ErrorCode(c) for c in (1, 2, 3, 4, 7)] == [
        ErrorCode.BAD_MAGIC, ErrorCode.BAD_CHECK, ErrorCode.BAD_OPCODE, ErrorCode.BAD_FIELD,
        ErrorCode.BAD_TASK]
    assert got["copy"] == (0b010, 0, 4), msg
    assert got["status_after_clear"] == 0, msg
    assert got["copy_bytes_written"] == rows.size * vb, msg
    out = np.frombuffer(got["out"], dtype=dt).reshape(rows.shape)
    np.testing.assert_array_equal(out, rows, err_msg=msg)


def _limit_cases():
    """(name, descriptor) with one field one past its limit (or 0 for a size), for tiny:
    17 tokens (buffer rows), dim 32 (qkv N 96), 2 heads, 4 experts, expert MLP 48, patch_dim
    3 * 8 * 8 = 192 (the largest K and LOAD row), buffer ids 0..3, bases 0..3, LOAD modes 0..1,
    epilogue modes 0..2."""
    valid = {
        HwOp.LOAD: Desc(HwOp.LOAD, dst=Buf.X, mode=LoadMode.LINEAR, base=Base.IMAGE, m=1, n=4),
        HwOp.STORE: Desc(HwOp.STORE, src=Buf.X, base=Base.OUT, m=1, n=4),
        HwOp.GEMM: Desc(HwOp.GEMM, src=Buf.X, dst=Buf.XN, m=1, k=4, n=4),
        HwOp.LAYERNORM: Desc(HwOp.LAYERNORM, src=Buf.X, dst=Buf.XN, m=1),
        HwOp.ATTENTION: Desc(HwOp.ATTENTION, dst=Buf.XN, head0=0, nheads=1),
        HwOp.ROUTE: Desc(HwOp.ROUTE, src=Buf.XN, m=1, k=4, n=4),
        HwOp.EXPERTS: Desc(HwOp.EXPERTS, src=Buf.XN, dst=Buf.X, k=4, n=4),
    }
    bad = {
        HwOp.LOAD: dict(dst=4, mode=2, base=4, m=[0, 18], n=[0, 193], row0d=17),
        HwOp.STORE: dict(src=4, base=4, m=[0, 18], n=[0, 33]),
        HwOp.GEMM: dict(src=4, dst=4, epi=3, m=[0, 18], k=[0, 193], n=[0, 97], row0s=17,
                        row0d=17),
        HwOp.LAYERNORM: dict(src=4, dst=4, m=[0, 18]),
        HwOp.ATTENTION: dict(dst=4, nheads=[0, 3], head0=2),
        HwOp.ROUTE: dict(src=4, m=[0, 18], k=[0, 193], n=[0, 5]),
        HwOp.EXPERTS: dict(src=4, dst=4, k=[0, 33], n=[0, 49]),
    }
    cases = []
    for op, fields in bad.items():
        for f, values in fields.items():
            for v in values if isinstance(values, list) else [values]:
                cases.append((f"{op.name}.{f}={v}", valid[op], replace(valid[op], **{f: v})))
    # col0d places columns in QKV only (3 dim = 96 columns there)
    g = valid[HwOp.GEMM]
    cases.append(("GEMM.col0d=4 (into XN)", g, replace(g, col0d=4)))
    cases.append(("GEMM.col0d=93 (into QKV)", replace(g, dst=Buf.QKV, col0d=92),
                  replace(g, dst=Buf.QKV, col0d=93)))
    # patch0: a PATCHIFY tile is whole rows of 4 patches inside the 16; LINEAR has patch0 = 0
    ld = valid[HwOp.LOAD]
    cases.append(("LOAD.patch0=1 (LINEAR)", ld, replace(ld, patch0=1)))
    pt = Desc(HwOp.LOAD, dst=Buf.H, mode=LoadMode.PATCHIFY, base=Base.IMAGE, m=4, n=192,
              patch0=12)
    for name, change in [("patch0=2", dict(patch0=2)), ("m=3", dict(m=3)),
                         ("patch0=16", dict(patch0=16))]:
        cases.append((f"LOAD PATCHIFY.{name}", pt, replace(pt, **change)))
    return cases


def _tiled_limit_cases():
    """A 5-row H (hw.hidden_rows): GEMM / LOAD rows past H's 5 rows."""
    g = Desc(HwOp.GEMM, src=Buf.XN, dst=Buf.H, m=5, k=4, n=4)
    ld = Desc(HwOp.LOAD, dst=Buf.H, mode=LoadMode.LINEAR, base=Base.IMAGE, m=5, n=4)
    return [("GEMM.row0d=1 (into H)", g, replace(g, row0d=1)),
            ("GEMM.m=6 (from H)", replace(g, src=Buf.H, dst=Buf.X),
             replace(g, src=Buf.H, dst=Buf.X, m=6)),
            ("LOAD.row0d=1 (into H)", ld, replace(ld, row0d=1))]


def _kv_limit_cases():
    """K / V of one head (hw.kv_heads = 1, head_dim 16): a GEMM into K or V past their 16
    columns, an ATTENTION of two heads."""
    g = Desc(HwOp.GEMM, src=Buf.XN, dst=Buf.QKV, m=1, k=4, n=16, col0d=32)
    at = Desc(HwOp.ATTENTION, dst=Buf.QKV, head0=1, nheads=1)
    return [("GEMM.col0d=36 (into K)", g, replace(g, col0d=36)),
            ("GEMM.n=20 (into V)", replace(g, col0d=64), replace(g, col0d=64, n=20)),
            ("ATTENTION.nheads=2", at, replace(at, head0=0, nheads=2))]


def wired_config():
    """tiny with the bank wired for its own program only (``hw.buffer_wiring="program"``)."""
    return with_changes(get_config("tiny"), name="tiny-wired", hw=dict(buffer_wiring="program"))


def _wired_cases():
    """(name, valid, bad) for :func:`wired_config`: each buffer field naming a buffer that
    tiny's frame program never uses there (the wiring: LOAD -> X / H, STORE <- XN, GEMM
    XN / H -> X / QKV / H with the residual read from X only, LAYERNORM X -> XN, ATTENTION -> H,
    ROUTE <- XN, EXPERTS XN -> X)."""
    g = Desc(HwOp.GEMM, src=Buf.XN, dst=Buf.X, m=1, k=4, n=4)
    ln = Desc(HwOp.LAYERNORM, src=Buf.X, dst=Buf.XN, m=1)
    ex = Desc(HwOp.EXPERTS, src=Buf.XN, dst=Buf.X, k=4, n=4)
    ld = Desc(HwOp.LOAD, dst=Buf.X, mode=LoadMode.LINEAR, base=Base.IMAGE, m=1, n=4)
    st = Desc(HwOp.STORE, src=Buf.XN, base=Base.OUT, m=1, n=4)
    at = Desc(HwOp.ATTENTION, dst=Buf.H, head0=0, nheads=1)
    rt = Desc(HwOp.ROUTE, src=Buf.XN, m=1, k=4, n=4)
    return [("LOAD.dst=XN", ld, replace(ld, dst=Buf.XN)),
            ("STORE.src=X", st, replace(st, src=Buf.X)),
            ("GEMM.src=X", g, replace(g, src=Buf.X)),
            ("GEMM.dst=XN", g, replace(g, dst=Buf.XN)),
            ("GEMM.res=H", replace(g, dst=Buf.H),
             replace(g, dst=Buf.H, epi=EpiMode.RESIDUAL)),
            ("LAYERNORM.src=XN", ln, replace(ln, src=Buf.XN)),
            ("LAYERNORM.dst=X", ln, replace(ln, dst=Buf.X)),
            ("ATTENTION.dst=XN", at, replace(at, dst=Buf.XN)),
            ("ROUTE.src=H", rt, replace(rt, src=Buf.H)),
            ("EXPERTS.src=H", ex, replace(ex, src=Buf.H)),
            ("EXPERTS.dst=H", ex, replace(ex, dst=Buf.H))]


@pytest.mark.parametrize("variant", ["tiny", "tiled", "kv", "wired"])
def test_descriptor_fields_out_of_range_are_rejected(variant, seed):
    """Every range-checked field of every op, one past its limit, after one valid descriptor:
    the frame ends at it with BAD_FIELD and its index (no job is started, nothing hangs).
    ``wired``: buffers outside a program-wired bank's wiring (``hw.buffer_wiring``)."""
    cfg, cases = {"tiny": (get_config("tiny"), _limit_cases),
                  "tiled": (tiled_config(5), _tiled_limit_cases),
                  "kv": (kv_config(1, hidden_rows=None), _kv_limit_cases),
                  "wired": (wired_config(), _wired_cases)}[variant]
    cases = cases()
    for name, ok, bad in cases:          # the programs' valid descriptors are accepted
        check_desc(cfg, ok)
        if variant in ("kv", "wired"):    # (the other lists also hold fields check_desc skips)
            with pytest.raises(ValueError):
                check_desc(cfg, bad)
    lead = Desc(HwOp.STORE, src=Buf.XN if variant == "wired" else Buf.X, base=Base.OUT, m=1,
                n=4)
    mem = bytearray(0x4000)
    starts = {}
    for i, (name, _, d) in enumerate(cases):
        starts[name] = 3 * DESC_BYTES * i
        prog = b"".join(encode_desc(x) for x in (lead, d, Desc(HwOp.END)))
        mem[starts[name]:starts[name] + len(prog)] = prog
    assert 3 * DESC_BYTES * len(cases) <= 0x3000
    dut = TopWithMemory(cfg, image=bytes(mem))
    got = {}

    async def bench(ctx):
        await _csr_write(ctx, dut, "OUT_BASE", 0x3000)
        for name, _, _ in cases:
            await _csr_write(ctx, dut, "PROG_BASE", starts[name])
            await _csr_write(ctx, dut, "CTRL", 1)
            for _ in range(500):
                await ctx.tick()
                if ctx.get(dut.done):
                    break
            got[name] = (await _csr_read(ctx, dut, "STATUS"), await _csr_read(ctx, dut, "ERROR"),
                         await _csr_read(ctx, dut, "DESCRIPTORS"))
            await _csr_write(ctx, dut, "CTRL", 2)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = (0b110, (1 << 16) | ErrorCode.BAD_FIELD, 2)   # done | error, descriptor 1, 2 fetched
    wrong = {name: g for name, g in got.items() if g != want}
    assert not wrong, f"seed={seed}: expected {want}, got {wrong}"
