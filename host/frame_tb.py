"""cocotb side of a whole frame on hw.top.top_with_memory.TopWithMemory (Verilator).

Run by ``host.run.run_frame(..., sim="verilator")`` (tests/system/test_top_frame_verilator.py)
through ``host.cocotb_run.run_cocotb``. Params: ``config``, ``memory`` (path of the
memory image), ``layout`` (sim.memory_image.MemoryLayout as a dict), ``task``,
``progress_every``, ``throttle_seed`` (None: no bus throttle), ``preloaded`` (the DRAM model
already holds the image: hw/mem/sim_ram.v read it from a hex file), ``result`` (path of the
JSON result: output bytes as hex and every CSR register).

The testbench is the host: it loads the image through the host write port (all-zero bursts are
skipped: the memory starts zeroed), writes the CSRs, starts the frame, waits for ``done``, reads
the CSRs and the output region back through the host read port.
"""
from __future__ import annotations

import json
from pathlib import Path

import cocotb
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from hw.mem.bus import rdata_layout, req_layout, wdata_layout
from hw.top.csr import CSR_READ_LATENCY, REGISTERS
from sim.config import Config
from host.cocotb_streams import StreamPort, load_params, start


async def _settle(clk):
    await FallingEdge(clk)
    await ReadOnly()


async def _send(clk, port, value):
    """One beat on a host-driven stream (call right after a rising edge)."""
    port.valid.value = 1
    port.payload.value = port.encode(value)
    while True:
        await _settle(clk)
        ok = bool(port.ready.value)
        await RisingEdge(clk)
        if ok:
            break
    port.valid.value = 0


async def _csr_write(dut, name, value):
    dut.csr__addr.value = REGISTERS[name]
    dut.csr__wdata.value = value
    dut.csr__we.value = 1
    await RisingEdge(dut.clk)
    dut.csr__we.value = 0


async def _csr_read(dut, name):
    dut.csr__addr.value = REGISTERS[name]
    for _ in range(CSR_READ_LATENCY):
        await RisingEdge(dut.clk)
    await _settle(dut.clk)
    v = int(dut.csr__rdata.value)
    await RisingEdge(dut.clk)
    return v


async def _host_write(dut, cfg, mem: bytes, skip_from: int):
    W, B = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst
    req = StreamPort(dut, "host_wr__wr_req", req_layout(cfg))
    dat = StreamPort(dut, "host_wr__wr_data", wdata_layout(cfg))
    dut.host_wr__wr_resp__ready.value = 1
    span = W * B
    for a in range(0, min(len(mem), skip_from), span):
        chunk = mem[a:a + span]
        if not any(chunk):
            continue
        beats = -(-len(chunk) // W)
        await _send(dut.clk, req, {"addr": a, "beats": beats})
        for i in range(beats):
            word = int.from_bytes(chunk[i * W:(i + 1) * W].ljust(W, b"\0"), "little")
            await _send(dut.clk, dat, {"data": word})
        while True:                     # the response (one beat per burst)
            await _settle(dut.clk)
            v = bool(dut.host_wr__wr_resp__valid.value)
            err = int(dut.host_wr__wr_resp__payload.value)
            await RisingEdge(dut.clk)
            if v:
                assert not err, f"host write at {a:#x} failed"
                break


async def _host_read(dut, cfg, addr, nbytes) -> bytes:
    W, B = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst
    req = StreamPort(dut, "host_rd__rd_req", req_layout(cfg))
    data = StreamPort(dut, "host_rd__rd_data", rdata_layout(cfg))
    data.ready.value = 1
    out = bytearray()
    left = -(-nbytes // W)
    while left:
        n = min(B, left)
        await _send(dut.clk, req, {"addr": addr, "beats": n})
        got = 0
        while got < n:
            await _settle(dut.clk)
            if int(data.valid.value):
                out += data.decode(data.payload.value.to_unsigned())["data"].to_bytes(W, "little")
                got += 1
            await RisingEdge(dut.clk)
        addr += n * W
        left -= n
    return bytes(out[:nbytes])


async def _trace(dut, stamps, period_ns):
    """Cycle (counted from busy rising, first busy cycle = 1) at which desc_index changes: one
    stamp per decoded descriptor (the same convention as the pysim runner)."""
    await RisingEdge(dut.busy)
    t0 = get_sim_time("ns")
    while True:
        await dut.desc_index.value_change
        if int(dut.busy.value):
            stamps.append(round((get_sim_time("ns") - t0) / period_ns) + 1)


@cocotb.test()
async def frame(dut):
    p = load_params()
    cfg = Config.from_dict(p["config"])
    lay = p["layout"]
    mem = Path(p["memory"]).read_bytes()
    for name in ("host_rd__rd_req", "host_wr__wr_req", "host_wr__wr_data"):
        getattr(dut, f"{name}__valid").value = 0
    dut.host_rd__rd_data__ready.value = 0
    dut.host_wr__wr_resp__ready.value = 0
    dut.csr__we.value = 0
    dut.csr__addr.value = 0
    dut.csr__wdata.value = 0
    dut.throttle_en.value = 0
    dut.throttle_load.value = 0
    dut.throttle_seed.value = 0
    dut.host_mode.value = 1
    await start(dut)
    if not p.get("preloaded"):
        await _host_write(dut, cfg, mem, skip_from=lay["out"])
    dut.host_mode.value = 0
    if p.get("throttle_seed") is not None:
        dut.throttle_seed.value = p["throttle_seed"] & 0xFFFF_FFFF
        dut.throttle_load.value = 1
        await RisingEdge(dut.clk)
        dut.throttle_load.value = 0
        dut.throttle_en.value = 1
    for name, val in (("PROG_BASE", lay["program"]), ("WEIGHT_BASE", lay["weights"]),
                      ("IMAGE_BASE", lay["image"]), ("OUT_BASE", lay["out"]),
                      ("TASK", p["task"])):
        await _csr_write(dut, name, val)
    stamps = []
    tracer = cocotb.start_soon(_trace(dut, stamps, 10))
    await _csr_write(dut, "CTRL", 1)
    every = int(p.get("progress_every") or 100_000)
    cycles = 0
    # A Timer (not ClockCycles, which wakes Python on every edge) lets Verilator run freely.
    while not int(dut.done.value):
        await First(RisingEdge(dut.done), Timer(every * 10, unit="ns"))
        cycles += every
        if not int(dut.done.value):
            dut._log.info("frame running: ~%d cycles", cycles)
        assert cycles < 50_000_000, "frame did not finish"
    await RisingEdge(dut.clk)
    tracer.cancel()
    regs = {name: await _csr_read(dut, name) for name in REGISTERS}
    regs["MEM_ERROR"] = int(dut.mem_error.value)
    regs["TRACE"] = stamps
    dut.throttle_en.value = 0
    dut.host_mode.value = 1
    await RisingEdge(dut.clk)
    out = await _host_read(dut, cfg, lay["out"], lay["out_bytes"])
    dut._log.info("frame done: %d cycles, status %d", regs["CYCLES"], regs["STATUS"])
    Path(p["result"]).write_text(json.dumps({"out": out.hex(), "regs": regs}))
