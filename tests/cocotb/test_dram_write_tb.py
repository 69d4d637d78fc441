"""cocotb test of the DRAM model's write and read channels on its Verilog (OnChipMemory; run by
tests/hw/test_mem_verilator.py with the banks as DP16KD blocks on Icarus).

Params: ``config``, ``seed``, ``image_bytes``. The image is rebuilt from the seed.
Checks: random write bursts (random data gaps, response back-pressure) each answered with an OK
response; a burst past the end answered with an error and the sticky error flag, writing
nothing; then every word read back (random read back-pressure) equals a Python model of the
memory: the initial image with the good bursts written over it.
"""
from __future__ import annotations

import random

import cocotb
from amaranth.hdl import unsigned
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.mem.bus import rdata_layout, req_layout, wdata_layout
from host.cocotb_streams import stream_recv, stream_send
from tests.harness.cocotb_tb import setup_dut, tb_params


@cocotb.test()
async def dram_writes_then_reads(dut):
    p, cfg = tb_params()
    rng = random.Random(p["seed"])
    W, B = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst
    image = bytes(rng.randrange(256) for _ in range(p["image_bytes"]))
    words = len(image) // W
    model = [int.from_bytes(image[i * W:(i + 1) * W], "little") for i in range(words)]
    ports = await setup_dut(dut, inputs={"rd__rd_req": req_layout(cfg),
                                         "wr__wr_req": req_layout(cfg),
                                         "wr__wr_data": wdata_layout(cfg)},
                            outputs={"rd__rd_data": rdata_layout(cfg), "wr__wr_resp": unsigned(1)})
    for n in range(25):
        beats = rng.randint(1, B)
        bad = n == 12                      # one burst running past the end of the memory
        word = words - beats + 1 if bad else rng.randrange(words - beats + 1)
        data = [rng.getrandbits(8 * W) for _ in range(beats)]
        await stream_send(dut.clk, ports["wr__wr_req"], [{"addr": word * W, "beats": beats}])
        await stream_send(dut.clk, ports["wr__wr_data"],
                          [{"data": d} for d in data],
                          rng=rng, valid_prob=0.6)
        resp = await stream_recv(dut.clk, ports["wr__wr_resp"], 1, rng=rng, ready_prob=0.5)
        assert resp == [int(bad)], f"write {n}: response {resp} (seed={p['seed']})"
        if not bad:
            model[word:word + beats] = data
        for _ in range(rng.randrange(3)):
            await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.error.value) == 1, "the bad burst did not raise the error flag"
    await RisingEdge(dut.clk)
    got = []
    for base in range(0, words, B):
        beats = min(B, words - base)
        await stream_send(dut.clk, ports["rd__rd_req"], [{"addr": base * W, "beats": beats}])
        got += [g["data"] for g in await stream_recv(dut.clk, ports["rd__rd_data"], beats,
                                                      rng=rng, ready_prob=0.7)]
    bad = [i for i in range(words) if got[i] != model[i]]
    assert not bad, f"{len(bad)} words differ, first at word {bad[0]} (seed={p['seed']})"
