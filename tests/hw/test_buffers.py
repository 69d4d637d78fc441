"""hw/top/buffers.py: BufferBank + ReadPipe return the words a numpy copy of the memories
holds, in request order, ``ReadPipe.latency`` cycles after the accept edge at full rate, and
keep one beat per cycle with the default FIFO depth (the credit rule counts every read in
flight); random request gaps and random output back-pressure in a second run. Both with the
GELU lanes (``gelu=True``, hw.gelu_site "act") too, each request's bit choosing GELU or bypass.

Writes go through a second client port before the reads (masked, random lanes), so the read
data is checked lane by lane against numpy, not against the RTL's own memory.
"""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from hw.top.buffers import BufferBank, ReadPipe
from hw.top.geometry import N_MEMS, TopGeometry
from sim.config import generic_config, get_config, with_changes
from sim.cycles.frame import BUFFER_READ_LATENCY
from sim.golden.gelu import gelu_pwl
from tests.harness.seeds import seed, seed_msg  # noqa: F401  (pytest fixture)


class _Bench:
    """A ReadPipe (``lanes`` = G / 2) on read client 0 of a BufferBank, writes on client 0."""

    def __init__(self, geo, gelu=False):
        self.geo = geo
        self.bank = BufferBank(geo, n_read=1, n_write=1)
        self.pipe = ReadPipe(geo, geo.G // 2, tag_shape=8, gelu=gelu)
        self.m = Module()
        self.m.submodules.bank, self.m.submodules.pipe = self.bank, self.pipe
        p, r = self.pipe.port[0], self.bank.rd[0]
        self.m.d.comb += [r.mem.eq(p.mem), r.addr.eq(p.addr), r.en.eq(p.en), p.data.eq(r.data)]


def _run(seed, gaps, gelu=False):
    geo = TopGeometry.of(get_config("tiny"))
    a, G, L = geo.cfg.num.act.bits, geo.G, geo.G // 2
    rng = np.random.default_rng(seed)
    mems = [np.zeros((d, G), dtype=np.int64) for d in geo.depths]
    writes = []
    for _ in range(120):
        mem = int(rng.integers(N_MEMS))
        addr = int(rng.integers(geo.depths[mem]))
        lanes = rng.integers(-(1 << a - 1), 1 << a - 1, G)
        mask = int(rng.integers(1, 1 << G))
        writes.append((mem, addr, lanes, mask))
        for g in range(G):
            if mask >> g & 1:
                mems[mem][addr, g] = lanes[g]
    reqs = [(int(m_), int(rng.integers(geo.depths[m_])), int(rng.integers(2)), i & 0xFF)
            for i, m_ in enumerate(rng.integers(N_MEMS, size=150))]
    on = [int(gelu and rng.integers(2)) for _ in reqs]      # the request's gelu bit
    want = [((gelu_pwl(geo.cfg, mems[m_][ad, off * L:(off + 1) * L]) if g
              else mems[m_][ad, off * L:(off + 1) * L]).tolist(), tag)
            for (m_, ad, off, tag), g in zip(reqs, on)]
    bench = _Bench(geo, gelu)
    wr, pipe = bench.bank.wr[0], bench.pipe
    got, firsts = [], []

    async def writer(ctx):
        for mem, addr, lanes, mask in writes:
            word = sum((int(v) & ((1 << a) - 1)) << (g * a) for g, v in enumerate(lanes))
            ctx.set(wr.mem, mem), ctx.set(wr.addr, addr), ctx.set(wr.data, word)
            ctx.set(wr.mask, mask), ctx.set(wr.en, 1)
            await ctx.tick()
        ctx.set(wr.en, 0)

    async def requester(ctx):
        await ctx.tick().repeat(len(writes) + 1)
        for i, (mem, addr, off, tag) in enumerate(reqs):
            while gaps and rng.random() < 0.3:
                ctx.set(pipe.req.valid, 0)
                await ctx.tick()
            ctx.set(pipe.req.valid, 1)
            ctx.set(pipe.req.payload, {"mem": [mem], "addr": addr, "off": off, "tag": tag,
                                       **({"gelu": on[i]} if gelu else {})})
            await ctx.tick().until(pipe.req.ready)
        ctx.set(pipe.req.valid, 0)

    async def receiver(ctx):
        cycle = 0
        first_req = len(writes) + 1
        while len(got) < len(reqs):
            ready = int(not gaps or rng.random() < 0.6)
            ctx.set(pipe.o.ready, ready)
            await ctx.delay(1e-9)
            if ready and ctx.get(pipe.o.valid):
                beat = ctx.get(pipe.o.payload)
                got.append(([int(v) for v in beat.data], int(beat.tag)))
                firsts.append(cycle - first_req)
            await ctx.tick()
            cycle += 1

    sim = Simulator(bench.m)
    sim.add_clock(1e-6)
    sim.add_testbench(writer)
    sim.add_testbench(requester)
    sim.add_testbench(receiver)
    sim.run()
    return got, want, firsts, pipe.latency


# gelu: every lane through a GELU lane or its bypass (per request, random), against
# sim.golden.gelu_pwl of the numpy word (hw.gelu_site "act")
@pytest.mark.parametrize("gelu", [False, True], ids=["plain", "gelu"])
def test_read_pipe_full_rate_latency(gelu, seed):
    got, want, firsts, latency = _run(seed, gaps=False, gelu=gelu)
    assert got == want, seed_msg(seed)
    assert latency == ReadPipe.latency + 5 * gelu    # GELU lane: 5 register stages
    # the first request is accepted at the edge ending cycle 0 of the read phase; its beat is
    # valid ``latency`` cycles later, and every further beat one cycle after the last
    assert firsts == [latency + i for i in range(len(want))], seed_msg(seed)


@pytest.mark.parametrize("gelu", [False, True], ids=["plain", "gelu"])
def test_read_pipe_random_gaps_and_backpressure(gelu, seed):
    got, want, _, _ = _run(seed, gaps=True, gelu=gelu)
    assert got == want, seed_msg(seed)


def test_bank_latency_matches_cycle_model():
    # address register, block RAM read, output register, word register; the frame model
    # counts the same (the frame tests check the model against the RTL)
    assert BufferBank.latency == BUFFER_READ_LATENCY == 4
    assert ReadPipe.latency == BUFFER_READ_LATENCY + 1


def test_bram_target_validated_and_presets():
    with pytest.raises(ValueError, match=r"hw.bram_target must be one of generic, ecp5, "
                                         r"got 'xilinx'"):
        with_changes(get_config("tiny"), hw=dict(bram_target="xilinx"))
    assert get_config("tiny-ecp5").hw.bram_target == "ecp5"        # the boards' build
    assert get_config("m3vit-ecp5-85f").hw.bram_target == "ecp5"
    assert get_config("tiny").hw.bram_target == "generic"
    # simulators elaborate the generic bank (same latency): no DP16KD instance to simulate
    assert generic_config(get_config("tiny-ecp5")).hw.bram_target == "generic"


def test_kv_heads_geometry():
    """hw.kv_heads: K and V rows hold kv_heads heads' columns (m3vit-ecp5-85f: 64 of 192 values,
    8 words of 8 instead of 24); on the ECP5 bank several heads per job need whole words per
    head (ATT is written into Q beside the next head's Q reads)."""
    geo = TopGeometry.of(get_config("m3vit-ecp5-85f"))
    assert geo.G == 8 and geo.strides == (24, 24, 24, 8, 8, 96)
    assert geo.depths[3] == geo.depths[4] == 129 * 8
    four = with_changes(get_config("tiny"), model=dict(heads=4),       # head_dim 8 < G = 16
                        hw=dict(kv_heads=2, attn_overlap=False, bram_target="ecp5",
                                array_rows=16, attn_dot_width=8))
    with pytest.raises(ValueError, match="head_dim 8 to be a multiple of the 16-value"):
        TopGeometry.of(four)
    assert TopGeometry.of(with_changes(four, hw=dict(kv_heads=1))).strides[3] == 1
    assert TopGeometry.of(with_changes(four, hw=dict(bram_target="generic"))).strides[3] == 1


def test_bank_read_mems_subsets(seed):
    """Read clients limited to some memories (``read_mems``): one with every memory, one with
    a single memory (no mux), one with two; all three read (different memories) in the same
    cycles after random
    masked writes, each word checked against numpy ``BufferBank.latency`` cycles later. Bad
    sets are refused."""
    geo = TopGeometry.of(get_config("tiny"))
    a, G = geo.cfg.num.act.bits, geo.G
    sets = [tuple(range(N_MEMS)), (4,), (1, 5)]
    bank = BufferBank(geo, n_read=3, n_write=1, read_mems=sets)
    rng = np.random.default_rng(seed)
    mems = [np.zeros((d, G), dtype=np.int64) for d in geo.depths]
    writes = []
    for _ in range(200):
        mem = int(rng.integers(N_MEMS))
        addr = int(rng.integers(min(geo.depths[mem], 24)))       # reuse addresses
        lanes = rng.integers(0, 1 << a, G)
        mask = int(rng.integers(1, 1 << G))
        writes.append((mem, addr, lanes, mask))
    reads = []
    for _ in range(80):                  # one read per memory and cycle (the bank's contract)
        two = int(rng.choice(sets[2]))
        zero = int(rng.choice([x for x in sets[0] if x not in (4, two)]))
        reads.append([(m_, int(rng.integers(min(geo.depths[m_], 24)))) for m_ in (zero, 4, two)])
    got = []

    async def bench(ctx):
        wr = bank.wr[0]
        for mem, addr, lanes, mask in writes:
            word = sum(int(v) << (g * a) for g, v in enumerate(lanes))
            ctx.set(wr.mem, mem), ctx.set(wr.addr, addr), ctx.set(wr.data, word)
            ctx.set(wr.mask, mask), ctx.set(wr.en, 1)
            await ctx.tick()
            for g in range(G):
                if mask >> g & 1:
                    mems[mem][addr, g] = lanes[g]
        ctx.set(wr.en, 0)
        await ctx.tick().repeat(2)                 # the write register, then the write
        for t in range(len(reads) + bank.latency):
            if t < len(reads):
                for c, (mem, addr) in zip(bank.rd, reads[t]):
                    ctx.set(c.mem, mem), ctx.set(c.addr, addr), ctx.set(c.en, 1)
            else:
                for c in bank.rd:
                    ctx.set(c.en, 0)
            await ctx.tick()
            if t + 1 >= bank.latency:
                got.append([ctx.get(c.data) for c in bank.rd])

    sim = Simulator(bank)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for t, row in enumerate(reads):
        for j, (mem, addr) in enumerate(row):
            want = sum(int(v) << (g * a) for g, v in enumerate(mems[mem][addr]))
            assert got[t][j] == want, f"read {t} client {j} mem {mem} addr {addr} {seed_msg(seed)}"
    with pytest.raises(ValueError, match="read_mems must give each"):
        BufferBank(geo, n_read=2, n_write=1, read_mems=[(0,)])
    with pytest.raises(ValueError, match="read_mems must give each"):
        BufferBank(geo, n_read=1, n_write=1, read_mems=[(N_MEMS,)])


def test_bank_write_mems_subsets(seed):
    """Write clients limited to some memories (``write_mems``): one with every memory, one with
    a single memory, one with two. Random masked writes, all three clients
    in the same cycles on different memories, some aimed outside a client's set (dropped: the
    memory's write mux does not take that client); then every written word read back and
    checked against numpy. Bad sets are refused."""
    geo = TopGeometry.of(get_config("tiny"))
    a, G = geo.cfg.num.act.bits, geo.G
    sets = [tuple(range(N_MEMS)), (4,), (1, 5)]
    bank = BufferBank(geo, n_read=1, n_write=3, write_mems=sets)
    rng = np.random.default_rng(seed)
    mems = [np.zeros((d, G), dtype=np.int64) for d in geo.depths]
    cycles = []
    for _ in range(150):
        order = rng.permutation(N_MEMS)[:3]          # one client per memory and cycle
        row = []
        for j, mem in enumerate(order):
            mem = int(mem)
            addr = int(rng.integers(min(geo.depths[mem], 24)))
            row.append((mem, addr, rng.integers(0, 1 << a, G), int(rng.integers(1, 1 << G))))
        cycles.append(row)
    dropped = sum(mem not in sets[j] for row in cycles for j, (mem, *_) in enumerate(row))
    assert dropped > 0                               # the test does aim outside the sets
    got = {}

    async def bench(ctx):
        for row in cycles:
            for c, (mem, addr, lanes, mask) in zip(bank.wr, row):
                word = sum(int(v) << (g * a) for g, v in enumerate(lanes))
                ctx.set(c.mem, mem), ctx.set(c.addr, addr), ctx.set(c.data, word)
                ctx.set(c.mask, mask), ctx.set(c.en, 1)
            await ctx.tick()
        for c in bank.wr:
            ctx.set(c.en, 0)
        await ctx.tick().repeat(2)
        rd = bank.rd[0]
        reads = [(m_, addr) for m_ in range(N_MEMS) for addr in range(min(geo.depths[m_], 24))]
        for t in range(len(reads) + bank.latency - 1):
            if t < len(reads):
                ctx.set(rd.mem, reads[t][0]), ctx.set(rd.addr, reads[t][1]), ctx.set(rd.en, 1)
            else:
                ctx.set(rd.en, 0)
            await ctx.tick()
            if t + 1 >= bank.latency:      # the data of the read requested latency - 1 ticks ago
                got[reads[t + 1 - bank.latency]] = ctx.get(rd.data)

    for row in cycles:
        for j, (mem, addr, lanes, mask) in enumerate(row):
            if mem in sets[j]:
                for g in range(G):
                    if mask >> g & 1:
                        mems[mem][addr, g] = lanes[g]
    sim = Simulator(bank)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == sum(min(d, 24) for d in geo.depths)
    for (mem, addr), word in got.items():
        want = sum(int(v) << (g * a) for g, v in enumerate(mems[mem][addr]))
        assert word == want, f"mem {mem} addr {addr} {seed_msg(seed)}"
    with pytest.raises(ValueError, match="write_mems must give each"):
        BufferBank(geo, n_read=1, n_write=2, write_mems=[(0,)])
    with pytest.raises(ValueError, match="write_mems must give each"):
        BufferBank(geo, n_read=1, n_write=1, write_mems=[()])
