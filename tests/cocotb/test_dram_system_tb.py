"""cocotb: whole frames on boards/dram_system.py's DramSystem (accelerator + AXI switch + LiteDRAM's
simulation core), driven by host/driver.py's EdgeMoeDriver.

Run by tests/boards/test_dram_system.py. Params: ``config``, ``seed``, ``tasks`` (frames to
run, in order), ``base`` (DRAM address of the image), ``mem_size`` (DRAM bytes), ``csr`` /
``init`` (the core's CSR map and LiteDRAM's init sequence), ``result`` (JSON path).

1. LiteDRAM's init over ``wb_ctrl`` (tests/harness/litedram_tb.py), as the host does on the
   board;
2. per task: the frame image (sim.memory_image.build_memory_image) goes into the DRAM model
   through the host AXI port (cocotbext-axi AxiMaster on ``s_host_*``) in host mode, the driver
   programs the base registers, TASK and CTRL.start over AXI-Lite, polls STATUS, reads the
   output tokens back through the host port and the counters over AXI-Lite
   (host/dram_transport.py); the tokens must equal the golden model's
   (tests/system/frames.frame_case) bit for bit.

Recorded: CYCLES and the other counters, the cycles the image load and the read-back took, the
testbench's own count of cycles from CTRL.start to ``irq``.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import cocotb
import numpy as np
from cocotb.task import bridge
from cocotb.triggers import RisingEdge

# cocotbext-axi 0.1.28 uses cocotb 1.x handle APIs that cocotb 2 deprecates; the tests run with
# PYTHONWARNINGS=error, so only its own warnings are silenced.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster  # noqa: E402

from host.cocotb_streams import start  # noqa: E402
from host.dram_transport import DramAxiTransport  # noqa: E402
from host.driver import EdgeMoeDriver  # noqa: E402
from sim.memory_image import build_memory_image  # noqa: E402
from tests.harness.cocotb_tb import tb_params  # noqa: E402
from tests.harness.litedram_tb import dram_init, idle_wb  # noqa: E402
from tests.system.frames import frame_case  # noqa: E402


class Clock:
    """Cycle count and the cycles ``irq`` was high (to time a frame from outside)."""

    def __init__(self, dut):
        self.dut, self.cycle, self.irq_rise = dut, 0, []
        cocotb.start_soon(self._run())

    async def _run(self):
        irq = 0
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            now = int(self.dut.irq.value)
            if now and not irq:
                self.irq_rise.append(self.cycle)
            irq = now


@cocotb.test()
async def dram_frame(dut):
    p, cfg = tb_params()
    seed = p["seed"]
    idle_wb(dut)
    dut.host_mode.value = 0
    host = AxiMaster(AxiBus.from_prefix(dut, "s_host"), dut.clk, dut.rst)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    for model in (host.read_if, host.write_if, axil.read_if, axil.write_if):
        model.log.setLevel(logging.WARNING)
    await start(dut, reset_cycles=4)
    clock = Clock(dut)
    await dram_init(dut, p["csr"], p["init"])
    init_cycles = clock.cycle
    t = DramAxiTransport(dut, axil, host, cfg, mem_base=p["base"],
                         mem_size=p["mem_size"] - p["base"])
    out = {"init_cycles": init_cycles, "frames": []}
    for task in p["tasks"]:
        case = frame_case(cfg, seed, task)
        mem, lay = build_memory_image(cfg, case["qparams"], case["image_q"], task)
        marks = {}

        def run():
            drv = EdgeMoeDriver(t, cfg, poll_cycles=256)
            marks["load0"] = clock.cycle
            drv.load_image_bytes(mem, lay)
            marks["load1"] = clock.cycle
            drv.start(task)
            marks["start"] = clock.cycle
            status = drv.wait_done(max_polls=20_000)
            marks["done"] = clock.cycle
            got = drv.read_output()
            marks["read"] = clock.cycle
            return status, got, drv.read_counters()

        status, got, counters = await bridge(run)()
        irq = [c for c in clock.irq_rise if c > marks["start"]]
        frame = {"task": task, "status": status, "counters": {
                     k: v for k, v in counters.items() if isinstance(v, int)},
                 "image_bytes": len(mem), "load_cycles": marks["load1"] - marks["load0"],
                 "read_cycles": marks["read"] - marks["done"],
                 "start_to_irq_cycles": irq[0] - marks["start"] if irq else None}
        out["frames"].append(frame)
        dut._log.info("task %d: %s", task, frame)
        want = case["want"]
        bad = np.argwhere(got != want)
        assert not len(bad), (
            f"task {task}: {len(bad)} output values differ from the golden model, first at "
            f"{tuple(bad[0])}: got {got[tuple(bad[0])]}, want {want[tuple(bad[0])]} "
            f"(seed={seed})")
        assert counters["bytes_written"] == lay.out_bytes, counters
    Path(p["result"]).write_text(json.dumps(out, indent=1))
