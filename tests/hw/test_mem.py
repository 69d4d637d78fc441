"""Memory bus, DRAM model and read DMA (hw/mem/) in pysim.

- random read bursts with random request gaps and read-data back-pressure: data equals the image
  bytes, ``last`` marks burst ends, the byte counter counts every beat;
- exact latency (first beat ``max(mem_latency, 2)`` edges after the request) and full bandwidth
  (one beat per cycle once enough bursts are in flight) for several latencies, also for a
  memory one cycle shorter behind a read-data register slice (TopWithMemory's read side);
- the same with the words in small banks (the bank stage on at ``mem_latency >= 5``), a
  partial last bank included;
- write bursts read back, byte-written counter, the error flag on bad addresses;
- the DMA splits long commands into bursts of at most ``mem_max_burst`` beats and the data of a
  command sequence arrives complete and in order.
"""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mem.bus import rdata_layout, req_layout
from hw.mem.dma import ReadDma, dma_cmd_layout
from hw.mem.onchip_memory import BANK_WORDS, OnChipMemory
from hw.mem.stream_slice import StreamSlice
from sim.config import Config, with_changes
from host.pysim import run_pysim, stream_recv, stream_send
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


def _cfg(latency=8, beat=8, burst=4, outstanding=4):
    return with_changes(Config.tiny(), hw=dict(mem_latency=latency, mem_bytes_per_cycle=beat,
                                               mem_max_burst=burst,
                                               mem_max_outstanding=outstanding))


def _image(rng: random.Random, nbytes: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(nbytes))


def _beat(image: bytes, addr: int, base: int, w: int) -> int:
    return int.from_bytes(image[addr - base: addr - base + w], "little")


@pytest.mark.parametrize("latency,bank_words,outstanding,nbytes", [
    (0, BANK_WORDS, 4, 1000), (3, BANK_WORDS, 4, 1000), (8, BANK_WORDS, 4, 1000),
    (5, 16, 4, 1000), (8, 16, 4, 1000), (4, 16, 4, 1000), (8, 16, 1, 1000), (6, 16, 2, 1000),
    (5, 16, 4, 1240)])
def test_dram_random_reads(latency, bank_words, outstanding, nbytes, seed):
    """1000 bytes: 125 words, with 16-word banks 8 banks (two groups of the bank select, the
    last bank holding 13 words); 1240 bytes: 10 banks (the last group of two)."""
    rng = random.Random(seed)
    cfg = _cfg(latency=latency, outstanding=outstanding)
    W, B = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst
    base = 0x1000
    image = _image(rng, nbytes)
    dut = OnChipMemory(cfg, image, base=base, bank_words=bank_words)
    assert dut.bank_reg == (bank_words == 16 and latency >= 5)
    assert dut.banks == (-(-nbytes // (W * bank_words)) if dut.bank_reg else 1)
    assert dut.queue_reg == (latency >= 6)
    nwords = len(image) // W
    reqs = []
    for _ in range(60):
        beats = rng.randint(1, B)
        word = rng.randrange(nwords - beats + 1)
        reqs.append({"addr": base + word * W, "beats": beats})
    want = [{"data": _beat(image, r["addr"] + b * W, base, W), "last": int(b == r["beats"] - 1)}
            for r in reqs for b in range(r["beats"])]
    got = []

    async def send(ctx):
        await stream_send(ctx, dut.rd.rd_req, reqs, rng=random.Random(seed + 1), valid_prob=0.5)

    async def recv(ctx):
        await stream_recv(ctx, dut.rd.rd_data, len(want), rng=random.Random(seed + 2),
                          ready_prob=0.6, received=got)
        await ctx.tick()
        assert ctx.get(dut.bytes_read) == len(want) * W
        assert not ctx.get(dut.error)

    run_pysim(dut, [send, recv], deadline_cycles=20 * len(want) + 500)
    assert got == want, f"read data differs [seed={seed}]"


@pytest.mark.parametrize("latency,bank_words", [(0, BANK_WORDS), (1, BANK_WORDS),
                                                (2, BANK_WORDS), (3, BANK_WORDS),
                                                (4, BANK_WORDS), (5, BANK_WORDS),
                                                (16, BANK_WORDS), (5, 16), (6, 16), (16, 16)])
def test_dram_latency_and_bandwidth(latency, bank_words, seed):
    rng = random.Random(seed)
    # Outstanding bursts cover the latency: full bandwidth after the first beat.
    cfg = _cfg(latency=latency, burst=4, outstanding=latency // 4 + 2)
    W = cfg.hw.mem_bytes_per_cycle
    image = _image(rng, 512)
    dut = OnChipMemory(cfg, image, bank_words=bank_words)
    assert dut.bank_reg == (bank_words == 16)
    # bursts that cross bank boundaries (16-word banks, 4-beat bursts at 6-word steps)
    reqs = [{"addr": 6 * W * i % 496, "beats": 4} for i in range(12)]
    nbeats = sum(r["beats"] for r in reqs)
    want = [{"data": _beat(image, r["addr"] + b * W, 0, W), "last": int(b == 3)}
            for r in reqs for b in range(4)]
    acc, tr, got = [], [], []

    async def send(ctx):
        await stream_send(ctx, dut.rd.rd_req, reqs, accepted_cycles=acc)

    async def recv(ctx):
        await stream_recv(ctx, dut.rd.rd_data, nbeats, transfer_cycles=tr, received=got)

    run_pysim(dut, [send, recv], deadline_cycles=2000)
    assert got == want, f"read data differs [seed={seed}]"
    assert tr[0] - acc[0] == max(latency, OnChipMemory.MIN_LATENCY) == dut.latency
    assert tr == list(range(tr[0], tr[0] + nbeats)), "data beats are not back to back"


class _SlicedMemory(wiring.Component):
    """OnChipMemory one cycle shorter plus a StreamSlice on its read data, as TopWithMemory
    builds the accelerator's side."""

    def __init__(self, cfg, image, bank_words=BANK_WORDS):
        self.mem = OnChipMemory(cfg, image, latency=cfg.hw.mem_latency - 1, retire_port=True,
                                bank_words=bank_words, ready_copies=True)
        # the banks' enables from the slice's copies of its ready, as TopWithMemory does
        self.rd_slice = StreamSlice(rdata_layout(cfg),
                                    ready_copies=self.mem.banks if self.mem.ready_copies else 0)
        super().__init__({"rd_req": In(stream.Signature(req_layout(cfg))),
                          "rd_data": Out(stream.Signature(rdata_layout(cfg)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem, m.submodules.rd_slice = self.mem, self.rd_slice
        wiring.connect(m, wiring.flipped(self.rd_req), self.mem.rd.rd_req)
        wiring.connect(m, self.mem.rd.rd_data, self.rd_slice.i)
        wiring.connect(m, self.rd_slice.o, wiring.flipped(self.rd_data))
        o = self.rd_slice.o
        m.d.comb += self.mem.rd_retire.eq(o.valid & o.ready & o.payload.last)
        if self.mem.ready_copies:
            m.d.comb += self.mem.rd_ready_copies.eq(self.rd_slice.i_ready_copies)
        return m


@pytest.mark.parametrize("latency,bank_words", [(3, BANK_WORDS), (4, BANK_WORDS),
                                                (16, BANK_WORDS), (7, 16), (7, 8), (6, 4)])
def test_dram_latency_override_plus_read_slice_keeps_latency_and_bandwidth(latency, bank_words,
                                                                          seed):
    """The latency argument overrides cfg.hw.mem_latency; a memory one cycle shorter behind a
    read-data slice (TopWithMemory's accelerator side) delivers the first beat exactly
    ``mem_latency`` edges after the request, back to back, and under random back-pressure the
    image's bytes in order."""
    rng = random.Random(seed)
    cfg = _cfg(latency=latency, burst=4, outstanding=latency // 4 + 2)
    W = cfg.hw.mem_bytes_per_cycle
    image = _image(rng, 512)
    reqs = [{"addr": 16 * W * i % 512, "beats": 4} for i in range(12)]
    nbeats = sum(r["beats"] for r in reqs)
    want = [{"data": _beat(image, r["addr"] + b * W, 0, W), "last": int(b == 3)}
            for r in reqs for b in range(4)]
    for ready_prob in (1.0, 0.5):
        dut = _SlicedMemory(cfg, image, bank_words)
        assert dut.mem.latency == latency - 1
        assert dut.mem.bank_reg == dut.mem.ready_copies == (bank_words < BANK_WORDS)
        acc, tr, got = [], [], []

        async def send(ctx):
            await stream_send(ctx, dut.rd_req, reqs, accepted_cycles=acc)

        async def recv(ctx):
            await stream_recv(ctx, dut.rd_data, nbeats, transfer_cycles=tr, received=got,
                              rng=random.Random(seed + 1), ready_prob=ready_prob)

        run_pysim(dut, [send, recv], deadline_cycles=4000)
        assert got == want, f"read data differs [seed={seed}]"
        if ready_prob == 1.0:
            assert tr[0] - acc[0] == latency
            assert tr == list(range(tr[0], tr[0] + nbeats)), "data beats are not back to back"


@pytest.mark.parametrize("latency,bank_words", [(4, BANK_WORDS), (6, 16)])
def test_dram_writes_then_reads(latency, bank_words, seed):
    rng = random.Random(seed)
    cfg = _cfg(latency=latency)
    W, B = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst
    image = _image(rng, 256)
    dut = OnChipMemory(cfg, image, base=0, size=512, bank_words=bank_words)
    assert dut.size == 512
    assert dut.banks == (4 if bank_words == 16 else 1)
    shadow = bytearray(image) + bytearray(512 - len(image))
    writes = []
    for _ in range(20):
        beats = rng.randint(1, B)
        word = rng.randrange(512 // W - beats + 1)
        data = [rng.getrandbits(8 * W) for _ in range(beats)]
        writes.append((word * W, data))
        for k, d in enumerate(data):
            shadow[word * W + k * W: word * W + (k + 1) * W] = d.to_bytes(W, "little")

    async def bench(ctx):
        for addr, data in writes:
            await stream_send(ctx, dut.wr.wr_req, [{"addr": addr, "beats": len(data)}], rng=rng,
                              valid_prob=0.5)
            await stream_send(ctx, dut.wr.wr_data, [{"data": d} for d in data], rng=rng,
                              valid_prob=0.7)
            resp = await stream_recv(ctx, dut.wr.wr_resp, 1, rng=rng, ready_prob=0.5)
            assert resp == [0]
        total = sum(len(d) for _, d in writes) * W
        assert ctx.get(dut.bytes_written) == total
        got = []
        for a in range(0, 512, B * W):       # one burst at a time: nobody else drains rd_data
            await stream_send(ctx, dut.rd.rd_req, [{"addr": a, "beats": B}])
            got += await stream_recv(ctx, dut.rd.rd_data, B, rng=rng, ready_prob=0.7)
        assert [g["data"] for g in got] == [_beat(bytes(shadow), a, 0, W)
                                            for a in range(0, 512, W)], f"[seed={seed}]"
        assert not ctx.get(dut.error)
        # A write outside the memory: error response, error flag, nothing written.
        await stream_send(ctx, dut.wr.wr_req, [{"addr": 512, "beats": 1}])
        await stream_send(ctx, dut.wr.wr_data, [{"data": 1}])
        assert await stream_recv(ctx, dut.wr.wr_resp, 1) == [1]
        assert ctx.get(dut.error)

    run_pysim(dut, [bench], deadline_cycles=20_000)


def test_dram_error_flag():
    cfg = _cfg()
    dut = OnChipMemory(cfg, bytes(64), base=64)

    async def bench(ctx):
        assert not ctx.get(dut.error)
        await stream_send(ctx, dut.rd.rd_req, [{"addr": 64 + 3, "beats": 1}])    # misaligned
        await stream_recv(ctx, dut.rd.rd_data, 1)
        assert ctx.get(dut.error)

    run_pysim(dut, [bench], deadline_cycles=200)


class DmaDram(wiring.Component):
    """ReadDma feeding a OnChipMemory: ``cmd`` in, ``rd_data`` out, the request channel mirrored out
    (``req_fire``, ``req``), and the DRAM's byte counter."""

    def __init__(self, cfg, image, base=0, **dram_args):
        self.dma = ReadDma(cfg, len_bits=16)
        self.dram = OnChipMemory(cfg, image, base=base, **dram_args)
        super().__init__({"cmd": In(stream.Signature(dma_cmd_layout(cfg, 16))),
                          "rd_data": Out(stream.Signature(rdata_layout(cfg))),
                          "req_fire": Out(1), "req": Out(req_layout(cfg)),
                          "bytes_read": Out(cfg.hw.moe_counter_bits)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma, m.submodules.dram = self.dma, self.dram
        wiring.connect(m, wiring.flipped(self.cmd), self.dma.cmd)
        # The request channel goes through the DMA, the data straight to the port.
        wiring.connect(m, self.dma.rd_req, self.dram.rd.rd_req)
        wiring.connect(m, self.dram.rd.rd_data, wiring.flipped(self.rd_data))
        m.d.comb += [self.req_fire.eq(self.dma.rd_req.valid & self.dram.rd.rd_req.ready),
                     self.req.eq(self.dma.rd_req.payload),
                     self.bytes_read.eq(self.dram.bytes_read),
                     self.dram.wr.wr_req.valid.eq(0), self.dram.wr.wr_data.valid.eq(0)]
        return m


def test_dma_splits_commands(seed):
    rng = random.Random(seed)
    cfg = _cfg(latency=6, burst=4, outstanding=3)
    W, B = cfg.hw.mem_bytes_per_cycle, cfg.hw.mem_max_burst
    image = _image(rng, 2048)
    base = 0x400
    dut = DmaDram(cfg, image, base)
    cmds = []
    for _ in range(12):
        beats = rng.randint(1, 3 * B + 1)
        word = rng.randrange(len(image) // W - beats + 1)
        cmds.append({"addr": base + word * W, "beats": beats})
    want = [_beat(image, c["addr"] + b * W, base, W) for c in cmds for b in range(c["beats"])]
    bursts = []

    async def send(ctx):
        await stream_send(ctx, dut.cmd, cmds, rng=rng, valid_prob=0.4)

    async def watch(ctx):
        async for _, _, fire, p in ctx.tick().sample(dut.req_fire, dut.req):
            if fire:
                bursts.append((p.addr, p.beats))

    async def recv(ctx):
        got = await stream_recv(ctx, dut.rd_data, len(want), rng=rng, ready_prob=0.7,
                                check_protocol=True)
        assert [g["data"] for g in got] == want, f"DMA data differs [seed={seed}]"

    run_pysim(dut, [send, recv], background=[watch], deadline_cycles=10_000)
    expect = []
    for c in cmds:
        a, left = c["addr"], c["beats"]
        while left:
            n = min(B, left)
            expect.append((a, n))
            a, left = a + n * W, left - n
    assert bursts == expect


@pytest.mark.parametrize("beat,values,rows", [(8, 4, 12), (2, 4, 6), (32, 4, 5), (16, 2, 7)],
                         ids=["1:1", "gather4", "split4-drop", "split4-int32-drop"])
def test_beat_unpacker(beat, values, rows, seed):
    """W-byte beats -> rows of `values` numbers (int16, or int32 for the bias format)."""
    from hw.mem.unpack import BeatUnpacker
    rng = random.Random(seed)
    cfg = _cfg(beat=beat)
    fmt = cfg.num.weight if values == 4 else cfg.num.bias
    sb = fmt.storage_bytes
    dut = BeatUnpacker(cfg, values, fmt, lanes=values + 1, rows=rows)
    transfers = []
    for _ in range(3):        # three transfers back to back: leftovers must be dropped
        vals = [[rng.randrange(fmt.min_int, fmt.max_int + 1) for _ in range(values)]
                for _ in range(rows)]
        raw = b"".join(v.to_bytes(sb, "little", signed=True) for row in vals for v in row)
        raw += bytes(rng.randrange(256) for _ in range(-len(raw) % beat))   # garbage tail
        transfers.append((vals, raw))
    beats = [{"data": int.from_bytes(raw[i:i + beat], "little"), "last": 0}
             for _, raw in transfers for i in range(0, len(raw), beat)]
    want = [row + [0] for vals, _ in transfers for row in vals]
    got = []

    async def send(ctx):
        await stream_send(ctx, dut.i, beats, rng=rng, valid_prob=0.6)

    async def recv(ctx):
        await stream_recv(ctx, dut.o, len(want), rng=random.Random(seed + 1), ready_prob=0.5,
                          received=got)

    run_pysim(dut, [send, recv], deadline_cycles=5000)
    assert got == want, f"[seed={seed}]"
