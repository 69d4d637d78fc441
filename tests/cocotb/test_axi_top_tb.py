"""cocotb: a whole frame on EdgeMoeAxiTop's Verilog, with cocotbext-axi as the DDR and the host.

Run by tests/system/test_axi_top.py through ``host.cocotb_run.run_cocotb``. Params: ``config``,
``seed``, ``task``, ``base`` (byte address of the frame image in the RAM), ``pause`` (the
probability of a pause cycle on every channel of the RAM), ``error_range`` (``[lo, hi)``: reads
there answer SLVERR; None for a clean frame), ``driver`` (run the frame through
host/driver.py's EdgeMoeDriver over host/axi_transport.py instead of the register sequence
written out here, with ``base`` as the transport's ``mem_base``), ``result`` (JSON path for
the counters).

The testbench: a cocotbext-axi ``AxiRam`` on ``m_axi_*`` with random pause generators on AR, R,
AW, W and B (gaps and back-pressure), an ``AxiLiteMaster`` on ``s_axil_*`` as the host. The
frame image (sim.memory_image.build_memory_image) goes into the RAM at ``base``; the host
programs the base registers, TASK and CTRL.start over AXI-Lite (or the driver does, and polls
STATUS), waits for ``irq``, reads STATUS, ERROR, BUS_ERROR and the counters, and the output
tokens are read from the RAM and compared with the golden model
(tests/system/frames.frame_case) bit for bit. With ``error_range`` the frame must end with
done + error, code 5 and BUS_ERROR, and CTRL.clear must drop them and ``irq``.

A monitor checks the AXI master's protocol on every transfer, independently of the RTL: INCR
bursts of the beat size, addresses aligned to the beat, AxLEN <= 255, no burst crossing 4 KiB,
R and W beats per burst equal to AxLEN + 1 with xLAST exactly on the last, full strobes, no W
beat of a burst before its AW is valid, and one B per AW and all R bursts back at the end.
"""
from __future__ import annotations

import json
import logging
import random
import warnings
from collections import deque
from pathlib import Path

import cocotb
import numpy as np
from cocotb.task import bridge
from cocotb.triggers import First, RisingEdge, Timer

# cocotbext-axi 0.1.28 still uses cocotb 1.x handle APIs (setimmediatevalue) that cocotb 2
# deprecates; the tests run with PYTHONWARNINGS=error, so only its own warnings are silenced.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam  # noqa: E402

from hw.link.axil_csr import AXIL_REGISTERS  # noqa: E402
from hw.top.csr import COUNTERS, REGISTERS  # noqa: E402
from host.axi_transport import AxiTransport  # noqa: E402
from host.cocotb_streams import start  # noqa: E402
from host.driver import EdgeMoeDriver  # noqa: E402
from host.run import FrameError  # noqa: E402
from sim.memory_image import build_memory_image, memory_size  # noqa: E402
from tests.harness.cocotb_tb import tb_params  # noqa: E402
from tests.system.frames import frame_case  # noqa: E402


def _pauses(rng: random.Random, prob: float):
    while True:
        yield rng.random() < prob


class AxiMonitor:
    """Protocol checks on every handshake of the ``m_axi`` master (see the module docstring)."""

    def __init__(self, dut, beat_bytes: int):
        self.dut, self.W = dut, beat_bytes
        self.size = beat_bytes.bit_length() - 1
        self.r_expect, self.w_expect = deque(), deque()
        self.r_beat = self.w_beat = self.w_ahead = 0
        self.n = dict(ar=0, aw=0, r=0, w=0, b=0, r_bursts=0, w_bursts=0, on_boundary=0)
        self.errors = []

    def _fail(self, msg):
        if len(self.errors) < 10:
            self.errors.append(msg)

    def _request(self, ch, queue):
        d = self.dut
        addr = int(getattr(d, f"m_axi_{ch}addr").value)
        length = int(getattr(d, f"m_axi_{ch}len").value)
        size = int(getattr(d, f"m_axi_{ch}size").value)
        burst = int(getattr(d, f"m_axi_{ch}burst").value)
        n = length + 1
        if burst != 1 or size != self.size:
            self._fail(f"{ch}: burst {burst} size {size}, want INCR (1) size {self.size}")
        if addr % self.W:
            self._fail(f"{ch}: address {addr:#x} not aligned to the {self.W}-byte beat")
        if length > 255:
            self._fail(f"{ch}: AxLEN {length} > 255")
        if addr % 4096 + n * self.W > 4096:
            self._fail(f"{ch}: burst {addr:#x} + {n} beats crosses a 4 KiB boundary")
        if (addr + n * self.W) % 4096 == 0:
            self.n["on_boundary"] += 1
        queue.append(n)
        self.n[ch] += 1

    async def run(self):
        d = self.dut
        while True:
            await RisingEdge(d.clk)          # values of the cycle that ends at this edge
            if int(d.rst.value):
                continue
            if int(d.m_axi_arvalid.value) and int(d.m_axi_arready.value):
                self._request("ar", self.r_expect)
            if int(d.m_axi_awvalid.value) and int(d.m_axi_awready.value):
                if self.w_ahead:             # its W beats all went before this handshake
                    self.w_ahead -= 1
                    self.n["aw"] += 1
                else:
                    self._request("aw", self.w_expect)
            if int(d.m_axi_wvalid.value) and int(d.m_axi_wready.value):
                if int(d.m_axi_wstrb.value) != (1 << self.W) - 1:
                    self._fail(f"WSTRB {int(d.m_axi_wstrb.value):#x} is not full")
                self._beat("w", int(d.m_axi_wlast.value))
            if int(d.m_axi_rvalid.value) and int(d.m_axi_rready.value):
                self._beat("r", int(d.m_axi_rlast.value))
            if int(d.m_axi_bvalid.value) and int(d.m_axi_bready.value):
                self.n["b"] += 1
                if self.n["b"] > self.n["w_bursts"]:
                    self._fail(f"B {self.n['b']} before the last W of its burst")

    def _beat(self, ch, last):
        queue = self.r_expect if ch == "r" else self.w_expect
        pos = self.r_beat if ch == "r" else self.w_beat
        if queue:
            want = queue[0]
        elif ch == "w" and int(self.dut.m_axi_awvalid.value):
            want = int(self.dut.m_axi_awlen.value) + 1     # W ahead of its AW's handshake
        else:
            self._fail(f"{ch.upper()} beat with no {'AR' if ch == 'r' else 'valid AW'}")
            return
        self.n[ch] += 1
        pos += 1
        if bool(last) != (pos == want):
            self._fail(f"{ch.upper()}LAST={last} on beat {pos} of a {want}-beat burst")
        if pos == want:
            pos = 0
            self.n[f"{ch}_bursts"] += 1
            if queue:
                queue.popleft()
            else:
                self.w_ahead += 1
        if ch == "r":
            self.r_beat = pos
        else:
            self.w_beat = pos

    def final_check(self):
        w_done = self.n["w_bursts"]
        if self.n["aw"] != w_done or self.n["b"] != w_done:
            self._fail(f"{self.n['aw']} AW, {w_done} W bursts, {self.n['b']} B responses")
        if self.n["ar"] != self.n["r_bursts"] or self.r_expect:
            self._fail(f"{self.n['ar']} AR, {self.n['r_bursts']} R bursts returned")
        assert not self.errors, "AXI protocol: " + "; ".join(self.errors)


async def _wait_irq(dut, max_cycles):
    waited = 0
    while not int(dut.irq.value):
        await First(RisingEdge(dut.irq), Timer(100_000, unit="ns"))
        waited += 10_000
        assert waited < max_cycles, "frame did not raise irq"


async def _frame_by_registers(dut, host, lay, base, task, max_cycles):
    """The host sequence written out: base registers, TASK, CTRL.start, wait for irq."""
    for name, val in (("PROG_BASE", lay.program), ("WEIGHT_BASE", lay.weights),
                      ("IMAGE_BASE", lay.image), ("OUT_BASE", lay.out)):
        await host.write_dword(4 * REGISTERS[name], base + val)
    await host.write_dword(4 * REGISTERS["TASK"], task)
    assert await host.read_dword(4 * REGISTERS["TASK"]) == task, "TASK reads back wrong"
    await host.write_dword(4 * REGISTERS["CTRL"], 1)
    await _wait_irq(dut, max_cycles)


async def _frame_by_driver(dut, host, ram, cfg, mem, lay, base, task, max_cycles):
    """host/driver.py's EdgeMoeDriver over AxiTransport (image at RAM address ``base``, the
    transport's ``mem_base``). Returns the driver's FrameError message, or None."""
    t = AxiTransport(host, ram, dut.clk, cfg, mem_base=base)

    def run():
        drv = EdgeMoeDriver(t, cfg, poll_cycles=1024)
        drv.load_image_bytes(mem, lay)
        try:
            drv.run_frame(task, max_polls=max_cycles // 1024)
        except FrameError as e:
            return str(e)
        return None

    err = await bridge(run)()
    await _wait_irq(dut, max_cycles)      # an error is flagged before the frame ends
    return err


@cocotb.test()
async def axi_frame(dut):
    p, cfg = tb_params()
    seed, task, base = p["seed"], p["task"], p["base"]
    max_cycles = p.get("max_cycles", 2_000_000)
    case = frame_case(cfg, seed, task)
    mem, lay = build_memory_image(cfg, case["qparams"], case["image_q"], task)
    size = -(-(base + memory_size(lay, cfg)) // 4096) * 4096
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=size)
    host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    for model in (ram.read_if, ram.write_if, host.read_if, host.write_if):
        model.log.setLevel(logging.WARNING)        # one INFO line per burst is most of the time
    rng = random.Random(seed)
    for ch in (ram.read_if.ar_channel, ram.read_if.r_channel, ram.write_if.aw_channel,
               ram.write_if.w_channel, ram.write_if.b_channel):
        ch.set_pause_generator(_pauses(random.Random(rng.random()), p["pause"]))
    if p.get("error_range"):
        lo, hi = p["error_range"]
        inner = ram.read_if._read

        async def failing_read(address, length):
            if lo <= address < hi:
                raise IOError(f"test: SLVERR at {address:#x}")
            return await inner(address, length)
        ram.read_if._read = failing_read
    mon = AxiMonitor(dut, cfg.hw.mem_bytes_per_cycle)
    cocotb.start_soon(mon.run())
    await start(dut, reset_cycles=4)
    assert int(dut.irq.value) == 0, "irq high after reset"

    async def reg(name):
        word = REGISTERS.get(name, AXIL_REGISTERS.get(name))
        return await host.read_dword(4 * word)

    driver_error = None
    if p.get("driver"):
        driver_error = await _frame_by_driver(dut, host, ram, cfg, mem, lay, base, task,
                                              max_cycles)
    else:
        ram.write(base, mem)
        await _frame_by_registers(dut, host, lay, base, task, max_cycles)
    status, error, bus_error = await reg("STATUS"), await reg("ERROR"), await reg("BUS_ERROR")
    regs = {n: await reg(n) for n in COUNTERS}
    mon.final_check()
    dut._log.info("frame: STATUS %#x ERROR %#x BUS_ERROR %d, %d cycles, AXI %s, driver: %s",
                  status, error, bus_error, regs["CYCLES"], mon.n, driver_error)
    Path(p["result"]).write_text(json.dumps({"status": status, "error": error,
                                             "bus_error": bus_error, "regs": regs,
                                             "axi": mon.n, "driver_error": driver_error}))
    if p.get("error_range"):
        assert status & 0b111 == 0b110, f"want done + error after SLVERR, STATUS {status:#x}"
        assert error & 0xFF == 5, f"want error code 5 (memory error), ERROR {error:#x}"
        assert bus_error == 1, "BUS_ERROR not set after SLVERR"
        if p.get("driver"):
            assert driver_error and "MEM_ERROR" in driver_error, driver_error
        await host.write_dword(4 * REGISTERS["CTRL"], 2)
        await RisingEdge(dut.clk)
        assert int(dut.irq.value) == 0, "irq still high after CTRL.clear"
        assert await reg("STATUS") & 0b110 == 0 and await reg("BUS_ERROR") == 0, \
            "CTRL.clear left done / error / BUS_ERROR set"
        return
    assert driver_error is None, driver_error
    assert status & 0b111 == 0b010, f"want done without error, STATUS {status:#x} ERROR {error:#x}"
    assert bus_error == 0
    m = cfg.model
    out = ram.read(base + lay.out, lay.out_bytes)
    got = np.frombuffer(out, dtype=cfg.num.act.numpy_dtype).astype(np.int64).reshape(m.tokens,
                                                                                    m.dim)
    want = case["want"]
    bad = np.argwhere(got != want)
    assert not len(bad), (f"{len(bad)} output values differ from the golden model, first at "
                          f"{tuple(bad[0])}: got {got[tuple(bad[0])]}, want {want[tuple(bad[0])]}"
                          f" (seed={seed}, task={task})")
    assert regs["BYTES_WRITTEN"] == lay.out_bytes
