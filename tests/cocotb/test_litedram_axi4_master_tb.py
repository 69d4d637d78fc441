"""cocotb: the project's Axi4Master (hw/link/axi4_master.py) on LiteDRAM's simulation core.

Run by tests/boards/test_litedram_sim.py on tests/boards/litedram_sim.Axi4MasterOnLiteDram.
Params: ``config``, ``seed``, ``csr``, ``init``, ``window`` (bytes), ``bursts`` (random bursts
per phase), ``result`` (JSON path).

The accelerator's burst bus drives the DRAM, with the stream drivers of host/cocotb_streams.py:

1. init over ``wb_ctrl`` (LiteDRAM's init sequence, then SEL and init_done);
2. the window is written with random beats in bursts of ``mem_max_burst`` (random valid gaps);
3. random bursts (1 .. mem_max_burst beats, beat-aligned, some across a 4 KiB boundary, which
   the master splits): reads of one half of the window run concurrently with writes to the other
   half (random gaps and back-pressure), then the halves swap; every read burst is compared
   with the byte model (data and ``last``), every ``wr_resp`` must be 0 (OKAY);
4. full-rate reads: back-to-back bursts with ready always high: bytes per cycle from the first
   to the last beat, and request-to-first-beat latency of a lone burst.
"""
from __future__ import annotations

import json
import random
import statistics

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, gather

from host.cocotb_streams import StreamPort, start, stream_recv, stream_send
from hw.mem.bus import rdata_layout, req_layout, wdata_layout
from tests.harness.cocotb_tb import tb_params
from tests.harness.litedram_tb import dram_init, idle_wb

BOUNDARY = 4096


def _ports(dut, cfg):
    """The master's five memory-bus streams, driven idle (no valid towards it, no ready)."""
    ports = {"rd_req": StreamPort(dut, "rd__rd_req", req_layout(cfg)),
             "rd_data": StreamPort(dut, "rd__rd_data", rdata_layout(cfg)),
             "wr_req": StreamPort(dut, "wr__wr_req", req_layout(cfg)),
             "wr_data": StreamPort(dut, "wr__wr_data", wdata_layout(cfg)),
             "wr_resp": StreamPort(dut, "wr__wr_resp", None)}
    for name in ("rd_req", "wr_req", "wr_data"):
        ports[name].valid.value = 0
    for name in ("rd_data", "wr_resp"):
        ports[name].ready.value = 0
    return ports


def _beat(model: bytearray, addr: int, W: int) -> int:
    return int.from_bytes(model[addr:addr + W], "little")


async def _recv_resp(dut, port, count, rng, ready_prob=0.7, timeout_cycles=20_000):
    """``count`` beats of the 1-bit ``wr_resp`` stream (host/cocotb_streams.stream_recv reads
    payloads as vectors; a 1-bit port is a scalar in cocotb 2)."""
    out, idle = [], 0
    while len(out) < count:
        take = rng.random() < ready_prob
        port.ready.value = int(take)
        await FallingEdge(dut.clk)
        await ReadOnly()
        valid, payload = int(port.valid.value), int(port.payload.value)
        await RisingEdge(dut.clk)
        if valid and take:
            out.append(payload)
            idle = 0
        else:
            idle += 1
            assert idle < timeout_cycles, f"wr_resp: nothing for {timeout_cycles} cycles"
    port.ready.value = 0
    return out


async def _write(dut, ports, model, bursts, W, rng, valid_prob=0.8):
    """Write ``bursts`` [(addr, beats)] of random data; update the model once acknowledged."""
    data = []
    for addr, beats in bursts:
        for b in range(beats):
            data.append((addr + b * W, rng.getrandbits(8 * W)))
    reqs = [{"addr": a, "beats": n} for a, n in bursts]
    _, _, resp = await gather(
        stream_send(dut.clk, ports["wr_req"], reqs, rng=rng, valid_prob=valid_prob),
        stream_send(dut.clk, ports["wr_data"], [{"data": d} for _, d in data], rng=rng,
                    valid_prob=valid_prob),
        _recv_resp(dut, ports["wr_resp"], len(bursts), rng))
    assert resp == [0] * len(bursts), f"wr_resp not OKAY: {resp}"
    for addr, d in data:
        model[addr:addr + W] = d.to_bytes(W, "little")


async def _read(dut, ports, model, bursts, W, rng, seed, *, valid_prob=0.8, ready_prob=0.7,
                transferred=None, accepted=None):
    """Read ``bursts`` and compare every beat (data and last) with the model."""
    reqs = [{"addr": a, "beats": n} for a, n in bursts]
    send = cocotb.start_soon(stream_send(dut.clk, ports["rd_req"], reqs, rng=rng,
                                         valid_prob=valid_prob, accepted_cycles=accepted))
    got = await stream_recv(dut.clk, ports["rd_data"], sum(n for _, n in bursts), rng=rng,
                            ready_prob=ready_prob, timeout_cycles=20_000,
                            transfer_cycles=transferred)
    await send
    i = 0
    for addr, beats in bursts:
        for b in range(beats):
            want = _beat(model, addr + b * W, W)
            assert got[i]["data"] == want and got[i]["last"] == (b == beats - 1), (
                f"read burst {addr:#x} x {beats}, beat {b}: got {got[i]['data']:#x} "
                f"last={got[i]['last']}, want {want:#x} [seed={seed}]")
            i += 1


def _random_bursts(rng, lo, hi, n, W, B):
    """``n`` bursts [(addr, beats)] inside [lo, hi); about a quarter cross a 4 KiB boundary."""
    edges = list(range((lo // BOUNDARY + 1) * BOUNDARY, hi, BOUNDARY))
    out = []
    while len(out) < n:
        beats = rng.randint(1, B)
        if beats > 1 and edges and rng.random() < 0.25:
            start = rng.choice(edges) - W * rng.randint(1, beats - 1)
            if start >= lo and start + beats * W <= hi:
                out.append((start, beats))
            continue
        out.append((lo + W * rng.randrange((hi - lo) // W - beats + 1), beats))
    return out


@cocotb.test()
async def axi4_master_on_litedram(dut):
    p, cfg = tb_params()
    seed, window = p["seed"], p["window"]
    W, B = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst
    rng = random.Random(seed)
    ports = _ports(dut, cfg)
    idle_wb(dut)
    await start(dut)
    await dram_init(dut, p["csr"], p["init"])

    model = bytearray(window)
    await _write(dut, ports, model, [(a, B) for a in range(0, window, B * W)], W, rng)

    half = window // 2
    for rd_lo, wr_lo in ((0, half), (half, 0)):
        rd = _random_bursts(rng, rd_lo, rd_lo + half, p["bursts"], W, B)
        wr = _random_bursts(rng, wr_lo, wr_lo + half, p["bursts"], W, B)
        # reads see only the half nobody writes now: the model is stable for them
        await gather(_read(dut, ports, model, rd, W, rng, seed),
                     _write(dut, ports, model, wr, W, rng))
    await _read(dut, ports, model, [(a, B) for a in range(0, window, B * W)], W, rng, seed)

    # full rate: back-to-back bursts, no gaps, no back-pressure
    cycles = []
    full = [(rng.randrange((window - B * W) // W) * W, B) for _ in range(32)]
    await _read(dut, ports, model, full, W, None, seed, valid_prob=1.0, ready_prob=1.0,
                transferred=cycles)
    res = {"read_bytes_per_cycle": len(cycles) * W / (cycles[-1] - cycles[0] + 1)}
    lat = []
    for addr, beats in full[:16]:
        for _ in range(8):
            await RisingEdge(dut.clk)
        acc, got = [], []
        await _read(dut, ports, model, [(addr, 1)], W, None, seed, valid_prob=1.0,
                    ready_prob=1.0, transferred=got, accepted=acc)
        lat.append(got[0] - acc[0])
    res["rd_req_to_data_cycles"] = {"min": min(lat), "median": statistics.median(lat),
                                    "max": max(lat)}
    with open(p["result"], "w") as f:
        json.dump(res, f, indent=1)
    dut._log.info("Axi4Master on LiteDRAM: %s", res)
