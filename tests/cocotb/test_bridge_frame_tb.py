# amaranth: UnusedElaboratable=no
"""cocotb: a whole frame through the host driver, the bridge protocol and the top level on Verilog.

Run by tests/hw/test_host_bridge_verilator.py on ``BridgedSystem(TopWithMemory(cfg), cfg,
divisor=None)``; params: ``config`` (Config.to_dict()), ``seed``, ``task``, ``valid_prob``,
``ready_prob``. The driver (host/driver.py, the one a board uses over pyserial) runs in a
cocotb bridge thread over :class:`host.cocotb_transport.CocotbByteLink`: it loads the weights,
program and image through the bridge, starts the frame with the task id, polls STATUS, reads the
output tokens and the counters. The tokens must equal the golden model's
(``sim.golden.forward``) bit for bit.
"""
from __future__ import annotations

import random
import time

import cocotb
import numpy as np
from cocotb.task import bridge

from host.cocotb_transport import CocotbByteLink
from host.driver import BridgeTransport, EdgeMoeDriver
from tests.harness.cocotb_tb import setup_dut, tb_params
from tests.system.frames import frame_case


@cocotb.test()
async def frame_through_driver(dut):
    p, cfg = tb_params()
    seed, task = p["seed"], p["task"]
    case = frame_case(cfg, seed, task)
    await setup_dut(dut, inputs={"rx": None}, outputs={"tx": None})
    link = CocotbByteLink(dut, rng=random.Random(seed), valid_prob=p["valid_prob"],
                          ready_prob=p["ready_prob"])

    log = dut._log
    poll = p.get("poll_cycles", 2048)

    def host():
        t0 = time.monotonic()
        drv = EdgeMoeDriver(BridgeTransport(link), cfg, poll_cycles=poll)
        layout = drv.load_frame(case["qparams"], case["image_q"], task)
        log.info("loaded %d bytes through the bridge: %d link cycles, %.1f s", layout.size,
                 link.cycles, time.monotonic() - t0)

        def progress(i):
            if i % 64 == 0:
                log.info("poll %d: STATUS %#x, CYCLES %d, %.1f s", i, drv.status(),
                         drv.t.read_reg(drv.regs["CYCLES"]), time.monotonic() - t0)

        res = drv.run_frame(task, max_polls=p["max_cycles"] // poll, progress=progress)
        log.info("frame done after %.1f s", time.monotonic() - t0)
        return res

    res = await bridge(host)()
    dut._log.info("frame: %d cycles, %d link cycles, counters %s", res.cycles, link.cycles,
                  res.counters)
    want = case["want"]
    bad = np.argwhere(res.tokens != want)
    assert not len(bad), (f"{len(bad)} output values differ from the golden model, first at "
                          f"{tuple(bad[0])}: got {res.tokens[tuple(bad[0])]}, want "
                          f"{want[tuple(bad[0])]} (seed={seed}, task={task})")
    assert res.counters["cycles"] > 0 and res.counters["bytes_written"] >= cfg.model.tokens * \
        cfg.model.dim * cfg.num.act.storage_bytes
