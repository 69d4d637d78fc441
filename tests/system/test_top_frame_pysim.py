"""Whole frames on the top level in pysim (TopWithMemory: EdgeMoeTop + bus throttle + DRAM model),
bit-exact vs sim.golden.forward for the tiny config, both tasks, seeded random weights and image,
with seeded random gaps and back-pressure on every memory-bus channel (hw/mem/bus_throttle.py).

A full tiny frame is ~31k cycles, about a minute of pysim per task. The CSR / error test runs
several small programs from one memory image (PROG_BASE selects one): bad magic, bad check
word, bad opcode, bad field, a bare END, an out-of-range TASK, and LOAD + STORE round trips.
"""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.top.csr import CSR_ID
from hw.top.top_with_memory import TopWithMemory
from host.run import _csr_read, _csr_write, _host_read, run_frame
from sim.config import get_config
from sim.memory_image import (DESC_BYTES, Base, Buf, Desc, HwOp, LoadMode, encode_desc)
from tests.harness.seeds import seed  # noqa: F401
from tests.system.frames import frame_case, tiny


@pytest.mark.parametrize("task", [0, 1])
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
    assert c["descriptors"] == 20
    assert c["mac_active_cycles"] <= c["busy_cycles"]["gemm"] < c["cycles"]
    assert ticks and ticks == sorted(ticks)


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
    assert got["copy"] == (0b010, 0, 4), msg
    assert got["status_after_clear"] == 0, msg
    assert got["copy_bytes_written"] == rows.size * vb, msg
    out = np.frombuffer(got["out"], dtype=dt).reshape(rows.shape)
    np.testing.assert_array_equal(out, rows, err_msg=msg)
