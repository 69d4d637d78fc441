"""cocotb: ``edge-moe demo --dram``'s host sequence (host/dram_demo.py) on the ECPIX-5 DRAM system.

Run by tests/boards/test_dram_demo.py on ``BridgedDramSystem(cfg, "ecpix5-85f", sim=True)``
(boards/dram_bridge.py: the board top's host link + accelerator + AXI switch, with LiteDRAM's
simulation core in place of the board core, byte streams in place of the UART pins). Params:
``config``, ``seed``, ``tasks``, ``core`` (the simulation core's Verilog path), ``result``.

The host side is what the demo runs on a board, over host/driver.py's ``BridgeTransport`` on a
:class:`host.cocotb_transport.CocotbByteLink` with random gaps and back-pressure:
``check_dram_frame``, ``open_dram_board`` (driver ID check, LiteDRAM init through the bridge's
CSR window, memory test through its memory commands) and, per task, ``run_frame_on_board``
(memory image into the DRAM model, start, poll, read back). The tokens must equal the golden
model's (tests/system/frames.frame_case: sim.golden.forward on the same seeded weights and
image) bit for bit.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.task import bridge

from boards.boards import get_board
from host.cocotb_transport import CocotbByteLink
from host.dram_demo import check_dram_frame, open_dram_board, run_frame_on_board
from host.driver import BridgeTransport
from tests.harness.cocotb_tb import setup_dut, tb_params
from tests.system.frames import frame_case


@cocotb.test()
async def demo_frames_on_dram(dut):
    p, cfg = tb_params()
    seed = p["seed"]
    board = get_board("ecpix5-85f")
    await setup_dut(dut, inputs={"rx": None}, outputs={"tx": None})
    link = CocotbByteLink(dut, rng=random.Random(seed), valid_prob=0.9, ready_prob=0.8)
    cases = [frame_case(cfg, seed, task) for task in p["tasks"]]
    out = {"frames": []}
    lines = []

    def host():
        t = BridgeTransport(link)
        need = check_dram_frame(board, cfg, cases[0]["qparams"], cases[0]["image_q"],
                                p["tasks"])
        c0 = link.cycles
        drv = open_dram_board(t, board, cfg, core=p["core"], memtest_beats=64,
                              poll_cycles=256, log=lines.append)
        out.update(frame_bytes=need, init_link_cycles=link.cycles - c0, log=lines,
                   mem_size=t.mem_size)
        for case in cases:
            c1 = link.cycles
            res = run_frame_on_board(drv, case["qparams"], case["image_q"], case["task"],
                                     max_polls=20_000)
            out["frames"].append({"task": case["task"], "cycles": res.cycles,
                                  "link_cycles": link.cycles - c1})
            bad = np.argwhere(res.tokens != case["want"])
            assert not len(bad), (
                f"task {case['task']}: {len(bad)} output values differ from the golden model, "
                f"first at {tuple(bad[0])}: got {res.tokens[tuple(bad[0])]}, want "
                f"{case['want'][tuple(bad[0])]} (seed={seed})")

    await bridge(host)()
    assert int(dut.init_done.value) == 1 and int(dut.init_error.value) == 0
    assert int(dut.bus_error.value) == 0 and int(dut.link_error.value) == 0
    Path(p["result"]).write_text(json.dumps(out))
