# amaranth: UnusedElaboratable=no
"""AxiSwitch2to1 (hw/link/axi_switch.py) on pysim: two AXI masters and a memory written here.

Two master models (the accelerator's port and the host's) issue random read and write bursts
(1..16 beats, up to two of each kind in flight, random gaps, some long enough to drain, random
R / B back-pressure, W beats sent alongside their AW or, for some bursts, before it) into
disjoint address ranges; ``host_mode`` flips at random. A memory model on ``m_*`` answers with
random AR / AW / W ready and random R / B gaps; read data is a hash of the address, write beats
carry (master, burst, beat) tags. Checked independently of the RTL, every cycle:

- transactions never mix: every R beat a master gets is the hash of its own burst's address,
  with RLAST exactly on its last beat; every write burst the memory sees has the beats of one
  burst of the master its AW came from, in order, with WLAST on the last; every master gets
  exactly its own B responses and R beats, and all its bursts complete;
- the port that does not own the switch sees AWREADY, WREADY, ARREADY, RVALID, BVALID low;
- the owner changes only on a cycle where nothing is in flight on ``m_*`` (the model's own
  counts of AR / RLAST, AW / B, W bursts) and no AR / AW / W valid is up; cycles where
  ``host_mode`` asked for a change in the middle of a read burst and in the middle of a W burst
  must both occur (so the refusal is exercised);
- AXI's handshake rule on every ``m_*`` channel: a valid not yet accepted stays up, with the
  same payload, on the next cycle.
"""
from __future__ import annotations

import random
from collections import deque

import pytest

from hw.link.axi_switch import AxiSwitch2to1
from host.pysim import run_pysim
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)

ADDR, DATA, ID = 16, 32, 1
W = DATA // 8
MAX_LEN = 16
REGION = {0: 0x0000, 1: 0x8000}         # master 0 = accelerator, 1 = host
PREFIX = {0: "s_acc", 1: "s_host"}
PAYLOAD = {"ar": ("arid", "araddr", "arlen", "arsize", "arburst"),
           "aw": ("awid", "awaddr", "awlen", "awsize", "awburst"),
           "w": ("wdata", "wstrb", "wlast"), "r": ("rid", "rdata", "rresp", "rlast"),
           "b": ("bid", "bresp")}


def pattern(addr: int) -> int:
    return (addr * 2654435761 + 0x1234567) & ((1 << DATA) - 1)


def tag(master: int, burst: int, beat: int) -> int:
    return (master << (DATA - 4)) | (burst << 8) | beat


class Master:
    """One AXI master on ``s_acc_*`` or ``s_host_*``; checks what it gets back."""

    def __init__(self, dut, who, rng, n_bursts):
        self.dut, self.who, self.rng = dut, who, rng
        base = REGION[who]
        self.reads = deque((base + W * rng.randrange(256), rng.randint(1, MAX_LEN))
                           for _ in range(n_bursts))
        self.writes = deque((base + 0x4000 + W * rng.randrange(256), rng.randint(1, MAX_LEN), i)
                            for i in range(n_bursts))
        self.ar = self.aw = None
        self.aw_delay, self.aw_shown = 0, False
        self.gap = 0
        self.r_expect = deque()             # [addr, len, beat] per burst in flight
        self.w_beats = deque()              # (data, last) of bursts whose AW is out
        self.w_hold = False
        self.b_expect = 0
        self.ready = {}

    def sig(self, name):
        return getattr(self.dut, f"{PREFIX[self.who]}_{name}")

    def done(self):
        return not (self.reads or self.writes or self.ar or self.aw or self.r_expect
                    or self.w_beats or self.b_expect)

    def drive(self, ctx):
        rng = self.rng
        if self.gap:
            self.gap -= 1
        elif self.ar is None and self.reads and len(self.r_expect) < 2 and rng.random() < 0.5:
            self.ar = self.reads.popleft()
        elif self.aw is None and self.writes and self.b_expect < 2 and rng.random() < 0.5:
            self.aw = self.writes.popleft()
            addr, n, i = self.aw
            self.w_beats.extend((tag(self.who, i, b), b == n - 1) for b in range(n))
            # sometimes the W beats go first and the AW follows (AXI allows it)
            self.aw_delay = rng.randrange(1, 40) if rng.random() < 0.5 else 0
        if self.aw_delay:
            self.aw_delay -= 1
        aw = self.aw if not self.aw_delay else None
        self.aw_shown = aw is not None
        for ch, req in (("ar", self.ar), ("aw", aw)):
            ctx.set(self.sig(f"{ch}valid"), req is not None)
            if req is not None:
                ctx.set(self.sig(f"{ch}addr"), req[0])
                ctx.set(self.sig(f"{ch}len"), req[1] - 1)
                ctx.set(self.sig(f"{ch}size"), W.bit_length() - 1)
                ctx.set(self.sig(f"{ch}burst"), 1)
                ctx.set(self.sig(f"{ch}id"), self.who)
        self.w_hold = bool(self.w_beats) and (self.w_hold or rng.random() < 0.7)
        ctx.set(self.sig("wvalid"), self.w_hold)
        if self.w_hold:
            data, last = self.w_beats[0]
            ctx.set(self.sig("wdata"), data)
            ctx.set(self.sig("wlast"), last)
            ctx.set(self.sig("wstrb"), (1 << W) - 1)
        self.ready = {"r": rng.random() < 0.7, "b": rng.random() < 0.7}
        ctx.set(self.sig("rready"), self.ready["r"])
        ctx.set(self.sig("bready"), self.ready["b"])

    def _pause(self):
        # now and then a pause long enough for the bursts in flight to drain: the switch can
        # only hand the port over then
        long = self.rng.random() < 0.15
        self.gap = self.rng.randrange(40, 100) if long else self.rng.randrange(4)

    def observe(self, ctx, seed):
        g = lambda n: ctx.get(self.sig(n))          # noqa: E731
        if self.ar is not None and g("arready"):
            self.r_expect.append([self.ar[0], self.ar[1], 0])
            self.ar = None
            self._pause()
        if self.aw_shown and g("awready"):
            self.b_expect += 1
            self.aw = None
            self._pause()
        if self.w_hold and g("wready"):
            self.w_beats.popleft()
            self.w_hold = False
        if g("rvalid") and self.ready["r"]:
            assert self.r_expect, f"master {self.who}: R beat with no read in flight [seed={seed}]"
            burst = self.r_expect[0]
            addr, n, b = burst
            assert g("rdata") == pattern(addr + W * b) and g("rlast") == (b == n - 1), (
                f"master {self.who}: R beat {b} of {addr:#x} x {n} is someone else's "
                f"(data {g('rdata'):#x}, last {g('rlast')}) [seed={seed}]")
            assert g("rid") == self.who, f"master {self.who}: RID {g('rid')} [seed={seed}]"
            burst[2] += 1
            if burst[2] == n:
                self.r_expect.popleft()
        if g("bvalid") and self.ready["b"]:
            assert self.b_expect, f"master {self.who}: B with no write in flight [seed={seed}]"
            assert g("bid") == self.who, f"master {self.who}: BID {g('bid')} [seed={seed}]"
            self.b_expect -= 1


class Memory:
    """The AXI slave on ``m_*``: reads return ``pattern``, write bursts are checked."""

    def __init__(self, dut, rng):
        self.dut, self.rng = dut, rng
        self.r_queue = deque()          # [id, addr, len, beat]
        self.aws = deque()              # (id, addr, len) not yet paired with a W burst
        self.w_bursts = deque()         # completed W bursts (list of data) not yet paired
        self.w_cur = []
        self.b_queue = deque()
        self.r_hold = self.b_hold = False
        self.ready = {}
        self.writes_seen = {0: 0, 1: 0}

    def sig(self, name):
        return getattr(self.dut, f"m_{name}")

    def drive(self, ctx):
        rng = self.rng
        self.ready = {ch: rng.random() < 0.6 for ch in ("ar", "aw", "w")}
        for ch, r in self.ready.items():
            ctx.set(self.sig(f"{ch}ready"), r)
        self.r_hold = bool(self.r_queue) and (self.r_hold or rng.random() < 0.6)
        ctx.set(self.sig("rvalid"), self.r_hold)
        if self.r_hold:
            i, addr, n, b = self.r_queue[0]
            ctx.set(self.sig("rid"), i)
            ctx.set(self.sig("rdata"), pattern(addr + W * b))
            ctx.set(self.sig("rlast"), b == n - 1)
        self.b_hold = bool(self.b_queue) and (self.b_hold or rng.random() < 0.6)
        ctx.set(self.sig("bvalid"), self.b_hold)
        if self.b_hold:
            ctx.set(self.sig("bid"), self.b_queue[0])

    def observe(self, ctx, seed):
        g = lambda n: ctx.get(self.sig(n))          # noqa: E731
        fired = {ch: bool(g(f"{ch}valid")) and self.ready[ch] for ch in ("ar", "aw", "w")}
        if fired["ar"]:
            self.r_queue.append([g("arid"), g("araddr"), g("arlen") + 1, 0])
        if fired["aw"]:
            self.aws.append((g("awid"), g("awaddr"), g("awlen") + 1))
        if fired["w"]:
            self.w_cur.append((g("wdata"), g("wlast")))
            if g("wlast"):
                self.w_bursts.append(self.w_cur)
                self.w_cur = []
        while self.aws and self.w_bursts:
            self._pair(self.aws.popleft(), self.w_bursts.popleft(), seed)
        if self.r_hold and g("rready"):
            self.r_queue[0][3] += 1
            if self.r_queue[0][3] == self.r_queue[0][2]:
                self.r_queue.popleft()
            self.r_hold = False
        if self.b_hold and g("bready"):
            self.b_queue.popleft()
            self.b_hold = False
        return fired

    def _pair(self, aw, beats, seed):
        i, addr, n = aw
        who = 1 if addr >= REGION[1] else 0
        burst = (beats[0][0] >> 8) & 0xFF
        want = [(tag(who, burst, b), b == n - 1) for b in range(n)]
        assert beats == want, (f"write {addr:#x} x {n} from master {who} got W beats "
                               f"{[(hex(d), l) for d, l in beats]} [seed={seed}]")
        self.writes_seen[who] += 1
        self.b_queue.append(i)


def _check_stable(ctx, dut, prev, seed):
    """AXI handshake rule on m_*: a valid that was not accepted stays, payload unchanged."""
    now = {}
    for ch, names in PAYLOAD.items():
        valid = ctx.get(getattr(dut, f"m_{ch}valid"))
        ready = ctx.get(getattr(dut, f"m_{ch}ready"))
        payload = tuple(ctx.get(getattr(dut, f"m_{n}")) for n in names)
        if ch in prev and prev[ch][0] and not prev[ch][1]:
            assert valid and payload == prev[ch][2], (
                f"m_{ch}: valid dropped or payload changed before the handshake "
                f"({prev[ch][2]} -> {valid}, {payload}) [seed={seed}]")
        now[ch] = (valid, ready, payload)
    return now


@pytest.mark.parametrize("n_bursts", [40])
def test_switch_random(seed, n_bursts):
    rng = random.Random(seed)
    dut = AxiSwitch2to1(addr_bits=ADDR, data_bits=DATA, id_bits=ID)
    masters = [Master(dut, who, random.Random(rng.random()), n_bursts) for who in (0, 1)]
    memory = Memory(dut, random.Random(rng.random()))
    stats = {"switches": 0, "refused_read": 0, "refused_write": 0, "refused_w_first": 0}

    async def tb(ctx):
        inflight = {"reads": 0, "writes": 0, "w_ahead": 0, "w_open": False}
        host_mode, prev, cycle = 0, {}, 0
        while not all(mm.done() for mm in masters):
            cycle += 1
            if rng.random() < 0.08:
                host_mode ^= 1
            ctx.set(dut.host_mode, host_mode)
            for mm in masters:
                mm.drive(ctx)
            memory.drive(ctx)
            owner = ctx.get(dut.owner)
            other = masters[1 - owner]
            for name in ("awready", "wready", "arready", "rvalid", "bvalid"):
                assert not ctx.get(other.sig(name)), (
                    f"cycle {cycle}: {name} high on the port that does not own the switch "
                    f"(owner {owner}) [seed={seed}]")
            prev = _check_stable(ctx, dut, prev, seed)
            busy = inflight["reads"] or inflight["writes"] or inflight["w_ahead"] \
                or inflight["w_open"]
            raised = any(prev[ch][0] for ch in ("ar", "aw", "w"))
            if host_mode != owner:
                stats["refused_read"] += inflight["reads"] > 0
                stats["refused_write"] += inflight["w_open"]
                # only W beats out, their AW not yet: the W bookkeeping alone must hold it
                stats["refused_w_first"] += (not inflight["reads"] and not inflight["writes"]
                                             and (inflight["w_open"] or inflight["w_ahead"] > 0))
            for mm in masters:
                mm.observe(ctx, seed)
            fired = memory.observe(ctx, seed)
            g = lambda n: ctx.get(getattr(dut, f"m_{n}"))     # noqa: E731
            inflight["reads"] += fired["ar"] - (prev["r"][0] and prev["r"][1] and g("rlast"))
            inflight["writes"] += fired["aw"] - (prev["b"][0] and prev["b"][1])
            inflight["w_ahead"] += (fired["w"] and g("wlast")) - fired["aw"]
            if fired["w"]:
                inflight["w_open"] = not g("wlast")
            await ctx.tick()
            if ctx.get(dut.owner) != owner:
                stats["switches"] += 1
                assert not busy and not raised, (
                    f"cycle {cycle}: owner {owner} -> {1 - owner} with bursts in flight "
                    f"{inflight} or a valid up [seed={seed}]")

    run_pysim(dut, [tb], deadline_cycles=40_000)
    assert memory.writes_seen == {0: n_bursts, 1: n_bursts}, memory.writes_seen
    assert stats["switches"] >= 4, f"too few owner changes to mean anything: {stats}"
    assert stats["refused_read"] and stats["refused_write"] and stats["refused_w_first"], (
        f"no change was requested mid-burst, the refusal was not exercised: {stats} "
        f"[seed={seed}]")


def test_switch_width_error():
    with pytest.raises(ValueError, match=r"AxiSwitch2to1: data_bits must be a positive "
                                         r"multiple of 8, got 12"):
        AxiSwitch2to1(addr_bits=ADDR, data_bits=12, id_bits=ID)


def test_switch_waits_directed():
    """Scripted: host_mode goes to 1 while the accelerator (a) has a W beat up with no AW yet,
    (b) has a 4-beat read in flight; the owner stays 0 until the W burst, its AW and B are
    through and the R burst's RLAST is taken, then changes on the next cycle; the host's
    requests wait (ARREADY low) meanwhile."""
    dut = AxiSwitch2to1(addr_bits=ADDR, data_bits=DATA, id_bits=ID)
    log = []

    async def tb(ctx):
        async def cycle(**sets):
            for name, value in sets.items():
                ctx.set(getattr(dut, name), value)
            await ctx.tick()
            log.append(ctx.get(dut.owner))

        ctx.set(dut.s_host_arvalid, 1)          # the host wants to read from the start
        ctx.set(dut.s_acc_wvalid, 1)            # a lone W beat, its AW not up, WREADY low
        ctx.set(dut.s_acc_wlast, 1)
        await cycle(host_mode=1)
        assert ctx.get(dut.owner) == 0 and ctx.get(dut.s_host_arready) == 0
        await cycle(m_wready=1)                 # W taken: a W burst ahead of its AW
        await cycle(m_wready=0, s_acc_wvalid=0)
        assert log == [0, 0, 0], log
        await cycle(s_acc_awvalid=1, m_awready=1)             # AW taken: B outstanding
        await cycle(s_acc_awvalid=0, m_awready=0, s_acc_arvalid=1, s_acc_arlen=3,
                    m_arready=1)                              # and a 4-beat read
        await cycle(s_acc_arvalid=0, m_arready=0, m_bvalid=1, s_acc_bready=1)    # B back
        await cycle(m_bvalid=0, m_rvalid=1, s_acc_rready=1)                     # beat 0
        await cycle()                                                           # beat 1
        await cycle()                                                           # beat 2
        assert log == [0] * 9, log
        ctx.set(dut.m_rlast, 1)
        assert ctx.get(dut.s_host_rvalid) == 0 and ctx.get(dut.s_acc_rvalid) == 1
        await cycle()                                                           # beat 3, RLAST
        await cycle(m_rvalid=0, m_rlast=0)
        assert log[-1] == 1, f"owner did not change once idle: {log}"
        ctx.set(dut.m_arready, 1)
        assert ctx.get(dut.s_host_arready) == 1 and ctx.get(dut.s_acc_arready) == 0

    run_pysim(dut, [tb], deadline_cycles=100)
