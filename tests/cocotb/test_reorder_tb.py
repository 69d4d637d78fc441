"""cocotb tests of hw.moe.patch_reorder.PatchReorder on its Verilog
(run by tests/hw/test_patch_reorder_verilator.py).

Params: ``config``, ``frames``, ``seed``, ``valid_prob``, ``ready_prob``. Routings come from the
shared generator in tests/hw/test_patch_reorder.py (skewed choices, unused experts, routings of
the golden router on tied logits); expectations from sim.golden.router.expert_queues.
"""
from __future__ import annotations

import random

import cocotb

from hw.moe.patch_reorder import expert_list_layout, queue_entry_layout, queue_request_layout
from hw.moe.router import routing_layout
from host.cocotb_streams import stream_recv, stream_send
from tests.harness.cocotb_tb import setup_dut, tb_params
from tests.hw.test_patch_reorder import golden_list, golden_queue, random_routing, routing_beats


@cocotb.test()
async def reorder_frames(dut):
    """Several frames: expert list and every queue (random order, some twice) vs golden."""
    p, cfg = tb_params()
    seed = p["seed"]
    rng = random.Random(seed)
    vp, rp = p["valid_prob"], p["ready_prob"]
    ports = await setup_dut(dut, inputs={"i": routing_layout(cfg),
                                         "q_req": queue_request_layout(cfg)},
                            outputs={"experts": expert_list_layout(cfg),
                                     "q": queue_entry_layout(cfg)})
    i, ex_port, qr, q = (ports[n] for n in ("i", "experts", "q_req", "q"))
    for f in range(p["frames"]):
        T = rng.choice([cfg.model.tokens, rng.randint(1, cfg.model.tokens)])
        ex, w = random_routing(cfg, rng, tokens=T)
        await stream_send(dut.clk, i, routing_beats(ex, w), rng=rng, valid_prob=vp)
        want = golden_list(cfg, ex, w)
        got = await stream_recv(dut.clk, ex_port, len(want), rng=rng, ready_prob=rp)
        assert got == want, f"frame {f}: list {got} != {want} (seed={seed})"
        order = [x["expert"] for x in want]
        order += rng.sample(order, min(2, len(order)))
        rng.shuffle(order)
        for e in order:
            await stream_send(dut.clk, qr, [{"expert": e}], rng=rng, valid_prob=vp)
            qw = golden_queue(cfg, ex, w, e)
            qg = await stream_recv(dut.clk, q, len(qw), rng=rng, ready_prob=rp)
            assert qg == qw, f"frame {f} expert {e}: {qg} != {qw} (seed={seed})"
        assert int(dut.overflow.value) == 0
