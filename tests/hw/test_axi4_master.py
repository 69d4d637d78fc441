# amaranth: UnusedElaboratable=no
"""Axi4Master (hw/link/axi4_master.py) on pysim against an AXI slave model written here.

Random read and write bursts (many placed just before a 4 KiB boundary) go in on the burst bus
with random gaps; the slave model answers with random AR / AW / W ready, random R / B gaps,
and SLVERR for one address range (the end of a page, so a split burst has its error in the
first piece only). Checked independently of the RTL: every AXI request is an
INCR burst of the beat size, beat aligned, within a 4 KiB page, AxLEN <= 255; W beats count and
WLAST match AWLEN, strobes full; the read data equals the memory with ``last`` exactly at the
end of each *requested* burst; the memory after the writes equals a Python model; one
``wr_resp`` per requested burst, 1 iff it touched the error range; ``bus_error`` is set iff an
error answer was given, and ``clear_error`` clears it. Data widths 64, 128 and 256 bits.

Wide AXI (``axi_data_width`` 2x / 4x the memory beat: 8 -> 16 and 4 -> 16 bytes, the ECPIX-5
LiteDRAM port under ``tiny-ecp5`` / ``m3vit-ecp5-85f``): the same traffic, with starts anywhere
in the AXI beat. The AR / AW sequence must equal the requests split at 4 KiB and widened to whole
AXI beats (computed here from the requests alone), every byte the writes cover is strobed
exactly once and no other byte is, and read data and memory are compared byte by byte as above.
"""
from __future__ import annotations

import random
from collections import deque

import pytest

from hw.link.axi4_master import Axi4Master
from host.pysim import run_pysim, stream_recv, stream_send
from sim.config import ConfigError, get_config, with_changes
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)

MEM = 1 << 16
ERR = (0x8FC0, 0x9000)          # the slave answers SLVERR here: the end of a 4 KiB page


def _cfg(width_bytes):
    return with_changes(get_config("tiny"), hw=dict(mem_bytes_per_cycle=width_bytes))


def _axi_bursts(reqs, W, WW):
    """The AXI bursts (addr, len) the requests must become: split at 4 KiB, then each piece
    widened to whole ``WW``-byte beats."""
    out = []
    for r in reqs:
        start, end = r["addr"], r["addr"] + r["beats"] * W
        while start < end:
            stop = min(end, (start // 4096 + 1) * 4096)
            lo, hi = start // WW * WW, -(-stop // WW) * WW
            out.append((lo, (hi - lo) // WW - 1))
            start = stop
    return out


def _bursts(rng, W, B, n):
    out = []
    for _ in range(n):
        beats = rng.randint(1, B)
        if rng.random() < 0.5:       # end just past a 4 KiB boundary
            page = rng.randrange(1, MEM // 4096 - 1)
            addr = page * 4096 - W * rng.randint(1, beats)
        else:
            addr = W * rng.randrange(0, (MEM - B * W) // W)
        out.append({"addr": addr, "beats": beats})
    return out


def _hits_error(addr, n_bytes):
    return addr < ERR[1] and addr + n_bytes > ERR[0]


class SlaveModel:
    """AXI4 slave on the DUT's m_axi_* signals; records protocol errors in ``errors``."""

    def __init__(self, dut, W, rng, mem):
        self.dut, self.W, self.rng, self.mem = dut, W, rng, mem    # W: the AXI beat here
        self.ar_seen, self.aw_seen = [], []
        self.strobed = {}                         # byte address -> times written
        self.r_beats, self.w_bursts, self.b_queue = deque(), deque(), deque()
        self.errors, self.error_answers = [], 0
        self.w_beat = 0
        self.w_data = deque()                     # W beats not yet matched with an AW
        self.aw_count = self.w_started = self.w_in_burst = 0
        self.full_strobes = True

    def _write_beats(self):
        """Apply the buffered W beats to the bursts whose AW has been accepted (a slave may take
        W before AW)."""
        W = self.W
        while self.w_bursts and self.w_data:
            wdata, wlast, wstrb = self.w_data.popleft()
            burst = self.w_bursts[0]
            addr = burst[0] + self.w_beat * W
            if ERR[0] <= addr < ERR[1]:
                burst[2] = True
            else:
                for b in range(W):
                    if wstrb >> b & 1:
                        self.mem[addr + b] = wdata >> 8 * b & 0xFF
                        self.strobed[addr + b] = self.strobed.get(addr + b, 0) + 1
            self.w_beat += 1
            if bool(wlast) != (self.w_beat == burst[1]):
                self.errors.append(f"WLAST {wlast} on beat {self.w_beat} of {burst[1]}")
            if self.w_beat == burst[1]:
                self.w_beat = 0
                self.b_queue.append(burst[2])
                self.error_answers += burst[2]
                self.w_bursts.popleft()

    def _check(self, ch, addr, length, size, burst):
        n = length + 1
        if burst != 1 or (1 << size) != self.W or addr % self.W or \
                addr % 4096 + n * self.W > 4096:
            self.errors.append(f"{ch} addr {addr:#x} len {length} size {size} burst {burst}")

    async def run(self, ctx):
        d, rng, W = self.dut, self.rng, self.W
        r_offer = b_offer = None
        while True:
            ctx.set(d.m_axi_arready, rng.random() < 0.6)
            ctx.set(d.m_axi_awready, rng.random() < 0.6)
            ctx.set(d.m_axi_wready, rng.random() < 0.7)
            if r_offer is None and self.r_beats and rng.random() < 0.7:
                r_offer = self.r_beats.popleft()
            if r_offer is not None:
                addr, last = r_offer
                ctx.set(d.m_axi_rdata, int.from_bytes(self.mem[addr:addr + W], "little"))
                ctx.set(d.m_axi_rlast, last)
                ctx.set(d.m_axi_rresp, 2 if ERR[0] <= addr < ERR[1] else 0)
            ctx.set(d.m_axi_rvalid, r_offer is not None)
            if b_offer is None and self.b_queue and rng.random() < 0.7:
                b_offer = self.b_queue.popleft()
            if b_offer is not None:
                ctx.set(d.m_axi_bresp, 2 if b_offer else 0)
            ctx.set(d.m_axi_bvalid, b_offer is not None)
            s = await ctx.tick().sample(
                d.m_axi_arvalid, d.m_axi_arready, d.m_axi_araddr, d.m_axi_arlen, d.m_axi_arsize,
                d.m_axi_arburst, d.m_axi_rvalid, d.m_axi_rready,
                d.m_axi_awvalid, d.m_axi_awready, d.m_axi_awaddr, d.m_axi_awlen, d.m_axi_awsize,
                d.m_axi_awburst, d.m_axi_wvalid, d.m_axi_wready, d.m_axi_wdata, d.m_axi_wstrb,
                d.m_axi_wlast, d.m_axi_bvalid, d.m_axi_bready)
            (arv, arr, araddr, arlen, arsize, arburst, rv, rr, awv, awr, awaddr, awlen, awsize,
             awburst, wv, wr, wdata, wstrb, wlast, bv, br) = s[2:]
            if arv and arr:
                self._check("AR", araddr, arlen, arsize, arburst)
                self.ar_seen.append((araddr, arlen))
                for i in range(arlen + 1):
                    self.r_beats.append((araddr + i * W, i == arlen))
            if rv and rr:
                if ERR[0] <= r_offer[0] < ERR[1]:
                    self.error_answers += 1
                r_offer = None
            if awv and awr:
                self._check("AW", awaddr, awlen, awsize, awburst)
                self.aw_seen.append((awaddr, awlen))
                self.w_bursts.append([awaddr, awlen + 1, False])
                self.aw_count += 1
            if wv and wr:
                if self.w_in_burst == 0:
                    self.w_started += 1
                    if self.w_started > self.aw_count + awv:
                        self.errors.append(f"W burst {self.w_started} before its AW was valid")
                self.w_in_burst = 0 if wlast else self.w_in_burst + 1
                if self.full_strobes and wstrb != (1 << W) - 1:
                    self.errors.append(f"WSTRB {wstrb:#x}")
                self.w_data.append((wdata, wlast, wstrb))
            self._write_beats()
            if bv and br:
                b_offer = None


@pytest.mark.parametrize("width_bytes,axi_bytes", [(8, 8), (16, 16), (32, 32), (8, 16), (4, 16)])
def test_axi4_master_against_slave_model(width_bytes, axi_bytes, seed):
    cfg = _cfg(width_bytes)
    W, B, WW = width_bytes, cfg.hw.mem_max_burst, axi_bytes
    rng = random.Random(seed)
    dut = Axi4Master(cfg, axi_data_width=8 * WW) if WW != W else Axi4Master(cfg)
    mem = bytearray(rng.getrandbits(8) for _ in range(MEM))
    want_mem = bytearray(mem)
    reads, writes = _bursts(rng, W, B, 30), _bursts(rng, W, B, 30)
    # one burst each way split across ERR's page end: the error is in the first piece only
    reads.insert(10, {"addr": ERR[1] - 2 * W, "beats": B})
    writes.insert(10, {"addr": ERR[1] - 2 * W, "beats": B})
    # reads first, from the initial contents; writes go to a separate half-open run afterwards
    want_rd = []
    for r in reads:
        for i in range(r["beats"]):
            a = r["addr"] + i * W
            want_rd.append({"data": int.from_bytes(mem[a:a + W], "little"),
                            "last": int(i == r["beats"] - 1)})
    wdata, want_resp = [], []
    for w in writes:
        err = _hits_error(w["addr"], w["beats"] * W)
        want_resp.append(int(err))
        for i in range(w["beats"]):
            a = w["addr"] + i * W
            word = rng.getrandbits(8 * W)
            wdata.append({"data": word})
            if not ERR[0] <= a < ERR[1]:
                want_mem[a:a + W] = word.to_bytes(W, "little")
    slave = SlaveModel(dut, WW, random.Random(seed + 1), mem)
    slave.full_strobes = WW == W
    got_rd, got_resp, seen = [], [], {}

    async def read_side(ctx):
        await stream_send(ctx, dut.rd.rd_req, reads, rng=random.Random(seed + 2), valid_prob=0.5)

    async def read_data(ctx):
        await stream_recv(ctx, dut.rd.rd_data, len(want_rd), rng=random.Random(seed + 3),
                          ready_prob=0.7, received=got_rd)
        seen["bus_error_after_reads"] = ctx.get(dut.bus_error)

    async def write_side(ctx):
        await ctx.tick().repeat(50)
        while len(got_rd) < len(want_rd):           # writes after the reads: no RAW hazards
            await ctx.tick()
        ctx.set(dut.clear_error, 1)
        await ctx.tick()
        ctx.set(dut.clear_error, 0)
        seen["bus_error_cleared"] = ctx.get(dut.bus_error)
        await stream_send(ctx, dut.wr.wr_req, writes, rng=random.Random(seed + 4), valid_prob=0.6)

    async def write_data(ctx):
        while len(got_rd) < len(want_rd):
            await ctx.tick()
        await ctx.tick().repeat(2)
        await stream_send(ctx, dut.wr.wr_data, wdata, rng=random.Random(seed + 5), valid_prob=0.7)

    async def write_resp(ctx):
        await stream_recv(ctx, dut.wr.wr_resp, len(writes), rng=random.Random(seed + 6),
                          ready_prob=0.7, received=got_resp)
        seen["bus_error_after_writes"] = ctx.get(dut.bus_error)

    run_pysim(dut, [read_side, read_data, write_side, write_data, write_resp],
              background=[slave.run], deadline_cycles=40_000)
    msg = f"(W={W}, AXI {WW}, seed={seed})"
    assert not slave.errors, f"AXI protocol {msg}: {slave.errors[:5]}"
    assert slave.ar_seen == _axi_bursts(reads, W, WW), f"AR bursts {msg}"
    assert slave.aw_seen == _axi_bursts(writes, W, WW), f"AW bursts {msg}"
    want_strobed = {}
    for w in writes:
        for a in range(w["addr"], w["addr"] + w["beats"] * W):
            if not ERR[0] <= a < ERR[1]:
                want_strobed[a] = want_strobed.get(a, 0) + 1
    assert slave.strobed == want_strobed, f"bytes strobed {msg}"
    assert got_rd == want_rd, f"read data or last wrong {msg}"
    assert got_resp == want_resp, f"write responses {got_resp} != {want_resp} {msg}"
    assert mem == want_mem, f"memory after the writes differs {msg}"
    read_errors = any(_hits_error(r["addr"], r["beats"] * W) for r in reads)
    assert seen["bus_error_after_reads"] == read_errors, msg
    assert seen["bus_error_cleared"] == 0, msg
    assert seen["bus_error_after_writes"] == any(want_resp), msg


def test_axi4_master_rejects_long_bursts():
    cfg = with_changes(get_config("tiny"), hw=dict(mem_bytes_per_cycle=32, mem_max_burst=256))
    with pytest.raises(ConfigError, match=r"Axi4Master: a burst .* must be <= 4096 bytes, "
                                          r"got 8192"):
        Axi4Master(cfg)


@pytest.mark.parametrize("axi_bits", [32, 96, 8])
def test_axi4_master_rejects_bad_widths(axi_bits):
    with pytest.raises(ConfigError, match=rf"AXI data width \({axi_bits} bits\) must be a "
                                          r"power-of-two multiple of the memory beat \(64 bits"):
        Axi4Master(_cfg(8), axi_data_width=axi_bits)
