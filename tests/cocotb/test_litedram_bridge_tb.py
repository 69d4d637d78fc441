"""cocotb: LiteDRAM's init through the board's host link, on the simulation core (Verilator).

Run by tests/boards/test_litedram_bridge.py on ``BridgedDramSystem(cfg, "ecpix5-85f", sim=True,
accelerator=False)`` (boards/dram_bridge.py: the board's DRAM bring-up design, host link +
DramSystem, with LiteDRAM's simulation core in place of the board core); params:
``config``, ``seed``, ``core`` (the core's Verilog path), ``mem_bytes`` (the DRAM's size),
``result`` (JSON path). The host side is host/driver.py's ``BridgeTransport`` over
:class:`host.cocotb_transport.CocotbByteLink` with random gaps and back-pressure, i.e. the
bytes a host sends over the UART:

1. the register window below 0x8000 reaches DramSystem's register slave (without the
   accelerator: takes writes, reads 0), answered through the AXI4-Lite master;
2. ``init_done`` is 0; :func:`host.litedram_init.initialize` runs through the LiteDRAM window
   (``bridge_csr``): LiteDRAM's init sequence, then (``check_lanes``) the BIOS' test bursts per
   byte lane through the DFII phase injectors (write phase, read phase, big-endian CSR words),
   which must read back without a bit error, hardware control, ``init_done``, and
   ``bridge_memtest``: random beats through the bridge's memory commands into the DRAM model
   and back;
3. random bursts at random beat-aligned addresses written and read back through the bridge,
   compared with a Python byte model.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import cocotb
from cocotb.task import bridge

from host.cocotb_transport import CocotbByteLink  # noqa: E402
from host.driver import BridgeTransport  # noqa: E402
from host.litedram_init import bridge_csr, bridge_memtest, initialize  # noqa: E402
from tests.harness.cocotb_tb import setup_dut, tb_params  # noqa: E402


@cocotb.test()
async def init_through_bridge(dut):
    p, cfg = tb_params()
    seed = p["seed"]
    rng = random.Random(seed)
    await setup_dut(dut, inputs={"rx": None}, outputs={"tx": None})
    link = CocotbByteLink(dut, rng=random.Random(seed + 1), valid_prob=0.8, ready_prob=0.7)
    out = {}

    def host():
        t = BridgeTransport(link)
        reg, value = rng.randrange(1, 1024), rng.getrandbits(32)
        t.write_reg(reg, value)                     # answered by the register slave
        assert t.read_reg(reg) == 0, f"register {reg} of the stub (seed={seed})"
        assert int(dut.init_done.value) == 0, "init_done before init"
        c0 = link.cycles
        csr = bridge_csr(t, p["core"])
        res = initialize(csr, p["core"], check_lanes=True,
                         memtest=bridge_memtest(t, base=0, beats=64, seed=seed))
        out.update(init_link_cycles=link.cycles - c0, csr_accesses=res.accesses,
                   lane_errors=res.lane_errors)
        assert int(dut.init_done.value) == 1 and int(dut.init_error.value) == 0
        model = {}
        W, B = t.beat_bytes, t.max_burst
        t.set_host_mode(True)
        for _ in range(p["bursts"]):
            beats = rng.randrange(1, B + 1)
            addr = W * rng.randrange((p["mem_bytes"] - beats * W) // W)
            data = bytes(rng.randrange(256) for _ in range(beats * W))
            t.write_bursts([(addr, data)])
            model.update({addr + i: b for i, b in enumerate(data)})
            raddr = W * rng.randrange((p["mem_bytes"] - beats * W) // W)
            if rng.random() < 0.5:
                raddr = addr
            back = t.read_burst(raddr, beats)
            for i, b in enumerate(back):
                if raddr + i in model:
                    assert b == model[raddr + i], (
                        f"DRAM byte {raddr + i:#x}: read {b:#04x}, wrote {model[raddr + i]:#04x} "
                        f"(seed={seed})")
        t.set_host_mode(False)
        out["checked_bytes"] = len(model)

    await bridge(host)()
    assert int(dut.bus_error.value) == 0
    Path(p["result"]).write_text(json.dumps(out))
