"""cocotb tests of the read DMA + DRAM model on their Verilog (``DmaDram`` of tests/hw/test_mem.py;
run by tests/hw/test_mem_verilator.py).

Params: ``config``, ``seed``, ``base``, ``image_bytes``. The image is rebuilt from the seed.
Checks: data of random DMA commands (split into bursts) equals the image bytes, with random
command gaps and read-data back-pressure; the byte counter; exact first-beat latency and one
beat per cycle with an always-ready reader.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from hw.mem.bus import rdata_layout
from hw.mem.dma import dma_cmd_layout
from host.cocotb_streams import stream_recv, stream_send
from tests.harness.cocotb_tb import setup_dut, tb_params


async def _setup(dut):
    p, cfg = tb_params()
    rng = random.Random(p["seed"])
    image = bytes(rng.randrange(256) for _ in range(p["image_bytes"]))
    ports = await setup_dut(dut, inputs={"cmd": dma_cmd_layout(cfg, 16)},
                            outputs={"rd_data": rdata_layout(cfg)})
    return p, cfg, rng, image, ports["cmd"], ports["rd_data"]


def _beat(image, base, addr, w):
    return int.from_bytes(image[addr - base: addr - base + w], "little")


@cocotb.test()
async def dma_random_commands(dut):
    p, cfg, rng, image, cmd, data = await _setup(dut)
    W, B, base = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst, p["base"]
    cmds = []
    for _ in range(30):
        beats = rng.randint(1, 3 * B + 1)
        word = rng.randrange(len(image) // W - beats + 1)
        cmds.append({"addr": base + word * W, "beats": beats})
    want = [_beat(image, base, c["addr"] + b * W, W) for c in cmds for b in range(c["beats"])]
    send = cocotb.start_soon(stream_send(dut.clk, cmd, cmds, rng=rng, valid_prob=0.4))
    got = await stream_recv(dut.clk, data, len(want), rng=random.Random(p["seed"] + 1),
                            ready_prob=0.6)
    await send
    assert [g["data"] for g in got] == want, f"DMA data differs (seed={p['seed']})"
    await FallingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.bytes_read.value) == len(want) * W


@cocotb.test()
async def dma_latency_bandwidth(dut):
    p, cfg, rng, image, cmd, data = await _setup(dut)
    W, B, base = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst, p["base"]
    n = min(len(image) // W, 4 * B)
    acc, tr = [], []
    send = cocotb.start_soon(stream_send(dut.clk, cmd, [{"addr": base, "beats": n}],
                                         accepted_cycles=acc))
    got = await stream_recv(dut.clk, data, n, transfer_cycles=tr)
    await send
    assert [g["data"] for g in got] == [_beat(image, base, base + b * W, W) for b in range(n)]
    # Command edge -> first burst request edge (1) -> first beat (max(latency, 2)).
    assert tr[0] - acc[0] == 1 + p["latency"], (tr[0] - acc[0], p["latency"])
    assert tr == list(range(tr[0], tr[0] + n)), "beats not back to back"
