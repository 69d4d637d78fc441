"""cocotb tests of the expert-weight prefetcher + DRAM model on their Verilog
(``PrefetchSystem`` of tests/hw/test_prefetcher.py; run by tests/hw/test_prefetcher_verilator.py).

Params: ``config``, ``seed``, ``pseed`` (parameter seed of the weight image). The image, the
address table and the routing are rebuilt here from the seeds exactly as the pytest side did.
Checks grant order, every weight / bias group of every granted buffer vs the golden integer
parameters, the stall counter vs the consumer's own count, the byte counter (only chosen experts)
and that no read request touches an unchosen expert.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.moe.prefetcher import expert_address_table, prefetch_geometry
from host.cocotb_streams import stream_send
from host.streams import from_bits
from tests.harness.cocotb_tb import setup_dut, tb_params
from tests.hw.test_patch_reorder import golden_list, random_routing
from tests.hw.test_prefetcher import PrefetchSystem, expected_groups, expert_ranges, weight_image


async def _settle(dut):
    await FallingEdge(dut.clk)
    await ReadOnly()


@cocotb.test()
async def prefetch_frame(dut):
    p, cfg = tb_params()
    seed = p["seed"]
    rng = random.Random(seed)
    block = cfg.model.moe_blocks[0]
    qp, image, base, entries = weight_image(cfg, p["pseed"])
    model = PrefetchSystem(cfg, image, base, expert_address_table(cfg, entries))
    g = prefetch_geometry(cfg)
    ex, w = random_routing(cfg, rng)
    elist = golden_list(cfg, ex, w)
    chosen = [x["expert"] for x in elist]
    dut._log.info("seed=%d chosen experts %s", seed, chosen)

    ports = await setup_dut(dut, inputs={"experts": model.experts.payload.shape()},
                            outputs={"grant": model.grant.payload.shape()},
                            pins={"release": 0, "w_en": 0, "b_en": 0, "layer": 0})

    reqs = []
    req_shape = model.req.shape()

    async def watch():
        while True:
            await _settle(dut)
            if int(dut.req_fire.value):
                r = from_bits(req_shape, dut.req.value.to_unsigned())
                reqs.append((r["addr"], r["beats"]))
            await RisingEdge(dut.clk)

    cocotb.start_soon(watch())
    port = ports["experts"]
    await stream_send(dut.clk, port, elist[:1], rng=rng, valid_prob=0.5)
    feed = cocotb.start_soon(stream_send(dut.clk, port, elist[1:], rng=rng, valid_prob=0.5))
    waited = 0
    gshape = model.grant.payload.shape()
    for x in elist:
        for mt in (0, 1):
            want = {"expert": x["expert"], "count": x["count"], "matrix": mt,
                    "last": int(x["last"] and mt == 1)}
            dut.grant__ready.value = 1
            while True:
                await _settle(dut)
                valid = int(dut.grant__valid.value)
                payload = dut.grant__payload.value.to_unsigned()
                await RisingEdge(dut.clk)
                if valid:
                    break
                waited += 1
            dut.grant__ready.value = 0
            got = from_bits(gshape, payload)
            assert got == want, f"grant {got} != {want} (seed={seed})"
            wg, bg = expected_groups(cfg, qp, block, x["expert"], mt)
            for addr_sig, en_sig, data_sig, groups, what in (
                    (dut.w_addr, dut.w_en, dut.w_data, wg, "weight"),
                    (dut.b_addr, dut.b_en, dut.b_data, bg, "bias")):
                shape = (model.w_data if what == "weight" else model.b_data).shape()
                order = list(range(len(groups)))
                rng.shuffle(order)
                for grp in order:
                    addr_sig.value = grp
                    en_sig.value = 1
                    await RisingEdge(dut.clk)
                    en_sig.value = 0
                    await _settle(dut)
                    val = from_bits(shape, data_sig.value.to_unsigned())
                    assert val == groups[grp].tolist(), \
                        f"expert {x['expert']} fc{mt + 1} {what} group {grp} (seed={seed})"
                    await RisingEdge(dut.clk)
            for _ in range(rng.choice([1, 5, 60, 300])):
                await RisingEdge(dut.clk)
            dut.release.value = 1
            await RisingEdge(dut.clk)
            dut.release.value = 0
    await feed
    for _ in range(3):
        await RisingEdge(dut.clk)
    await _settle(dut)
    assert int(dut.stall_cycles.value) == waited, (int(dut.stall_cycles.value), waited)
    assert int(dut.bytes_read.value) == sum(g["bytes"]) * len(chosen)
    assert int(dut.error.value) == 0
    W = cfg.hw.mem_bytes_per_cycle
    for e in range(cfg.model.experts):
        for lo, hi in expert_ranges(cfg, entries, block, e):
            hit = sum(max(0, min(hi, a + n * W) - max(lo, a)) for a, n in reqs)
            assert hit == ((hi - lo) if e in chosen else 0), f"expert {e}: {hit} bytes read"
