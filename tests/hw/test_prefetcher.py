"""Expert-weight prefetcher (hw/moe/prefetcher.py) + DRAM model in pysim.

A weight image is built from seeded random parameters (model_io.export.build_image, the real
exporter's layout); the DRAM model holds the MoE block's part of it. A random routing's expert
list drives the prefetcher; a consumer testbench takes each grant, "computes" for a random time,
reads back every weight and bias group of the granted matrix and compares it with the golden
integer parameters, then releases the buffer. Checked: grant order (fc1, fc2 per chosen expert,
ascending), buffer contents bit-exact, bytes read == exactly the chosen experts' tensors, no read
request touches an unchosen expert, and the stall counter equals the consumer's own wait count.
"""
from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mem.bus import req_layout
from hw.mem.onchip_memory import OnChipMemory
from hw.moe.patch_reorder import expert_list_layout
from hw.moe.prefetcher import TENSORS, ExpertPrefetcher, expert_address_table, grant_layout, \
    prefetch_geometry
from sim.weight_image import build_image
from sim.config import Config
from sim.golden import quantize_params
from sim.params import random_params
from host.pysim import run_pysim, stream_send
from tests.harness.configs import prefetch_configs
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.hw.test_patch_reorder import golden_list, random_routing

__all__ = ["PrefetchSystem", "weight_image", "expected_groups", "expert_ranges"]


@lru_cache(maxsize=8)
def _image(cfg: Config, pseed: int):
    qp, _ = quantize_params(cfg, random_params(cfg, pseed))
    blob, entries = build_image(cfg, qp)
    return qp, blob, entries


def weight_image(cfg: Config, pseed: int = 0):
    """(qparams, DRAM slice bytes, slice base address, manifest entries) for the MoE blocks.

    The slice starts at the first MoE gate tensor: the DRAM model holds only the MoE part of the
    image (small memories keep pysim fast), mapped at its real address.
    """
    qp, blob, entries = _image(cfg, pseed)
    first = min(e["offset"] for e in entries if ".mlp.gates." in e["name"]
                or ".mlp.experts." in e["name"])
    last = max(e["offset"] + e["length"] for e in entries if ".mlp.experts." in e["name"])
    W = cfg.hw.mem_bytes_per_cycle
    first -= first % W
    return qp, blob[first:last + (-last % 64)], first, entries


def expert_ranges(cfg: Config, entries, block: int, e: int) -> list[tuple[int, int]]:
    """Byte ranges [lo, hi) of expert e's four tensors."""
    out = []
    for t in TENSORS:
        ent = next(x for x in entries if x["name"] == f"blocks.{block}.mlp.experts.{e}.{t}")
        out.append((ent["offset"], ent["offset"] + ent["length"]))
    return out


def expected_groups(cfg: Config, qp, block: int, e: int, matrix: int):
    """(weight groups (G, C), bias groups (Gb, C)) of a matrix as the read ports return them."""
    C = cfg.hw.array_cols
    fc = f"blocks.{block}.mlp.experts.{e}.fc{matrix + 1}."
    w = np.asarray(qp[fc + "weight"]).T.reshape(-1, C)     # K-major (K, N), C values per group
    b = np.asarray(qp[fc + "bias"]).reshape(-1, C)
    return w, b


class PrefetchSystem(wiring.Component):
    """ExpertPrefetcher + OnChipMemory, with the read-request channel mirrored out for monitors."""

    def __init__(self, cfg: Config, image, base: int, table):
        self.cfg = cfg
        self.pf = ExpertPrefetcher(cfg, table)
        self.dram = OnChipMemory(cfg, image, base=base)
        pf = self.pf
        cb = cfg.hw.moe_counter_bits
        super().__init__({
            "experts": In(stream.Signature(expert_list_layout(cfg))),
            "layer": In(pf.layer.shape()),
            "grant": Out(stream.Signature(grant_layout(cfg))),
            "release": In(1),
            "w_addr": In(pf.w_addr.shape()), "w_en": In(1), "w_data": Out(pf.w_data.shape()),
            "b_addr": In(pf.b_addr.shape()), "b_en": In(1), "b_data": Out(pf.b_data.shape()),
            "req_fire": Out(1), "req": Out(req_layout(cfg)),
            "bytes_read": Out(cb), "stall_cycles": Out(cb), "fill_cycles": Out(cb),
            "error": Out(1), "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.pf, m.submodules.dram = pf, dram = self.pf, self.dram
        wiring.connect(m, pf.bus, dram.rd)
        wiring.connect(m, wiring.flipped(self.experts), pf.experts)
        wiring.connect(m, pf.grant, wiring.flipped(self.grant))
        m.d.comb += [
            pf.layer.eq(self.layer), pf.release.eq(self.release),
            pf.w_addr.eq(self.w_addr), pf.w_en.eq(self.w_en), self.w_data.eq(pf.w_data),
            pf.b_addr.eq(self.b_addr), pf.b_en.eq(self.b_en), self.b_data.eq(pf.b_data),
            self.req_fire.eq(pf.bus.rd_req.valid & pf.bus.rd_req.ready),
            self.req.eq(pf.bus.rd_req.payload),
            self.bytes_read.eq(dram.bytes_read), self.stall_cycles.eq(pf.stall_cycles),
            self.fill_cycles.eq(pf.fill_cycles), self.error.eq(dram.error),
            self.overrun.eq(pf.overrun),
            # The write channel is unused here.
            dram.wr.wr_req.valid.eq(0), dram.wr.wr_data.valid.eq(0),
        ]
        return m


@pytest.mark.parametrize("cfg", prefetch_configs())
def test_prefetcher_frame(cfg, seed):
    rng = random.Random(seed)
    block = cfg.model.moe_blocks[0]
    qp, image, base, entries = weight_image(cfg)
    table = expert_address_table(cfg, entries)
    dut = PrefetchSystem(cfg, image, base, table)
    g = prefetch_geometry(cfg)
    C = cfg.hw.array_cols
    ex, w = random_routing(cfg, rng)
    elist = golden_list(cfg, ex, w)
    chosen = [x["expert"] for x in elist]
    want_grants = [{"expert": x["expert"], "count": x["count"], "matrix": mt,
                    "last": int(x["last"] and mt == 1)} for x in elist for mt in (0, 1)]
    reqs, waited, started = [], [0], []

    async def feed(ctx):
        ctx.set(dut.layer, 0)
        await stream_send(ctx, dut.experts, elist[:1], rng=rng, valid_prob=0.5)
        started.append(True)
        await stream_send(ctx, dut.experts, elist[1:], rng=rng, valid_prob=0.5)

    async def watch(ctx):
        async for _, _, fire, req in ctx.tick().sample(dut.req_fire, dut.req):
            if fire:
                reqs.append((req.addr, req.beats))

    async def consume(ctx):
        # The stall counter runs from the first expert beat on (waiting for the routing to
        # finish is not a prefetch stall), so only start asking for grants then.
        while not started:
            await ctx.tick()
        for k, want in enumerate(want_grants):
            # Wait for the grant, counting the cycles we wait with ready high.
            ctx.set(dut.grant.ready, 1)
            while True:
                _, _, valid, payload = await ctx.tick().sample(dut.grant.valid, dut.grant.payload)
                if valid:
                    break
                waited[0] += 1
            ctx.set(dut.grant.ready, 0)
            got = {f: int(getattr(payload, f)) for f in ("expert", "count", "matrix", "last")}
            assert got == want, f"grant {k}: {got} != {want} [seed={seed}]"
            wg, bg = expected_groups(cfg, qp, block, want["expert"], want["matrix"])
            # Read every group back (in a random order for the weights).
            order = list(range(len(wg)))
            rng.shuffle(order)
            for grp in order:
                ctx.set(dut.w_addr, grp)
                ctx.set(dut.w_en, 1)
                await ctx.tick()
                ctx.set(dut.w_en, 0)
                assert list(ctx.get(dut.w_data)) == wg[grp].tolist(), \
                    f"expert {want['expert']} fc{want['matrix'] + 1} weight group {grp} " \
                    f"[seed={seed}]"
            for grp in range(len(bg)):
                ctx.set(dut.b_addr, grp)
                ctx.set(dut.b_en, 1)
                await ctx.tick()
                ctx.set(dut.b_en, 0)
                assert list(ctx.get(dut.b_data)) == bg[grp].tolist(), \
                    f"expert {want['expert']} fc{want['matrix'] + 1} bias group {grp}"
            await ctx.tick().repeat(rng.choice([1, 5, 50, 300]))    # more "compute"
            ctx.set(dut.release, 1)
            await ctx.tick()
            ctx.set(dut.release, 0)
        await ctx.tick().repeat(3)
        assert ctx.get(dut.stall_cycles) == waited[0]
        per_expert = sum(g["bytes"])
        assert ctx.get(dut.bytes_read) == per_expert * len(chosen), \
            f"read {ctx.get(dut.bytes_read)} bytes, chosen experts hold {per_expert * len(chosen)}"
        assert not ctx.get(dut.error)
        assert not ctx.get(dut.overrun)     # every beat had its load (rd_data always ready)

    run_pysim(dut, [feed, consume], background=[watch], deadline_cycles=200_000)
    # No read touches an expert that no token chose; every chosen tensor is read exactly once.
    W = cfg.hw.mem_bytes_per_cycle
    touched = [(a, a + n * W) for a, n in reqs]
    for e in range(cfg.model.experts):
        for lo, hi in expert_ranges(cfg, entries, block, e):
            hit = sum(max(0, min(hi, b) - max(lo, a)) for a, b in touched)
            want = (hi - lo) if e in chosen else 0
            assert hit == want, f"expert {e} tensor [{lo:#x},{hi:#x}) read {hit} bytes, " \
                                f"expected {want} (chosen: {chosen}) [seed={seed}]"


def test_prefetcher_flags_a_beat_without_a_load():
    """rd_data is always ready; a beat that arrives with no load issued sets ``overrun``."""
    cfg = Config.tiny()
    dut = ExpertPrefetcher(cfg)
    seen = []

    async def tb(ctx):
        await ctx.tick().repeat(2)
        seen.append((ctx.get(dut.bus.rd_data.ready), ctx.get(dut.overrun)))
        ctx.set(dut.bus.rd_data.valid, 1)
        await ctx.tick()
        ctx.set(dut.bus.rd_data.valid, 0)
        await ctx.tick()
        seen.append((ctx.get(dut.bus.rd_data.ready), ctx.get(dut.overrun)))

    run_pysim(dut, [tb], deadline_cycles=100)
    assert seen == [(1, 0), (1, 1)]
