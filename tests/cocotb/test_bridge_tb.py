# amaranth: UnusedElaboratable=no
"""cocotb: the demo board design over its UART pins, driven by the host driver (Verilator).

Run by tests/hw/test_host_bridge_verilator.py on ``BridgedSystem(DemoDevice(cfg), cfg,
divisor)``; params: ``config``, ``divisor``, ``seed``, ``rounds``, ``mem_bytes``, ``gap_prob``.
:class:`host.driver.DemoDriver` over :class:`host.driver.BridgeTransport` over
:class:`host.cocotb_transport.CocotbUartLink` (8N1 bit level, random idle bit times between
bytes): requantize random accumulators (rounding / saturation corners) on the device, bit-exact
vs ``sim.fixed.requantize``; write random bytes to the scratch memory in bursts and read them
back; an unknown command byte answers ``?``; the link never saw a framing error.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.task import bridge

from host.cocotb_transport import CocotbUartLink
from host.driver import BridgeTransport, DemoDriver
from hw.link.host_bridge import UNKNOWN
from sim.fixed import requantize
from tests.harness.cocotb_tb import setup_dut, tb_params
from tests.hw.test_requantize import random_accumulator_beats


@cocotb.test()
async def demo_over_uart(dut):
    p, cfg = tb_params()
    seed = p["seed"]
    rng = random.Random(seed)
    await setup_dut(dut, pins={"uart_rx": 1})
    link = CocotbUartLink(dut, p["divisor"], rng=random.Random(seed + 1), gap_prob=p["gap_prob"])

    def host():
        t = BridgeTransport(link)
        drv = DemoDriver(t, cfg)
        checked = 0
        for beat in random_accumulator_beats(cfg, drv.lanes, rng, p["rounds"]):
            got = drv.requantize(beat)
            want = [int(requantize(a, cfg.num.acc_frac, cfg.num.act)) for a in beat]
            assert got == want, f"requantize {beat}: got {got}, want {want} (seed={seed})"
            checked += 1
        data = bytes(rng.randrange(256) for _ in range(p["mem_bytes"]))
        addr = t.beat_bytes * rng.randrange(4)
        drv.scratch_write(addr, data)
        back = drv.scratch_read(addr, len(data))
        assert back == data, f"scratch memory read back differs (seed={seed})"
        link.write(b"\xfe")                      # not a command
        assert link.read(1) == bytes([UNKNOWN])
        return checked

    n = await bridge(host)()
    assert n == p["rounds"]
    assert link.framing_errors == 0
    assert int(dut.link_error.value) == 0, "the device's UART saw a framing error or overrun"
