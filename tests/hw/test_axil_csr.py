"""AxiLiteCsr (hw/link/axil_csr.py) on pysim: an AXI4-Lite master model against a register-file
model on the ``csr`` port (``CSR_READ_LATENCY`` cycles of read latency, as hw/top/csr.py: the
model's ``rdata`` is the word addressed that many cycles before, so a slave that captured it a
cycle early or late reads the wrong word).

Random writes and reads of every mapped word, of ``BUS_ERROR`` and of unmapped words, with AW
and W arriving in either order and random BREADY / RREADY back-pressure: each write reaches the
register file once with its word address and data (unmapped words never strobe ``we``), each
read returns the register file's value (``BUS_ERROR``: the ``bus_error`` input; unmapped: 0),
responses are OKAY. ``clear_error`` pulses on CTRL writes with bit 0 or 1; ``irq`` follows
``~busy & (done | error | bus_error)``.
"""
from __future__ import annotations

import random

from hw.link.axil_csr import AXIL_REGISTERS, AxiLiteCsr
from hw.top.csr import CSR_READ_LATENCY, REGISTERS
from host.pysim import run_pysim
from sim.config import get_config
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)

N_WORDS = max(REGISTERS.values()) + 1


async def _ticks(ctx, n):
    for _ in range(n):
        await ctx.tick()


def test_axil_register_access(seed):
    rng = random.Random(seed)
    dut = AxiLiteCsr(get_config("tiny"))
    regs = [rng.getrandbits(32) for _ in range(N_WORDS)]
    log = {"writes": [], "clears": 0, "errors": []}
    ops = []
    for _ in range(120):
        word = rng.choice([*range(N_WORDS), AXIL_REGISTERS["BUS_ERROR"], 40, 1000])
        ops.append(("w" if rng.random() < 0.5 else "r", word, rng.getrandbits(32)))

    async def regfile(ctx):
        """The csr port's model: rdata is the word addressed CSR_READ_LATENCY cycles before."""
        history = [0] * (CSR_READ_LATENCY - 1)
        while True:
            _, _, addr, we, wdata, bus_error = await ctx.tick().sample(
                dut.csr.addr, dut.csr.we, dut.csr.wdata, dut.bus_error)
            clear = ctx.get(dut.clear_error)
            if we:
                log["writes"].append((addr, wdata))
                regs[addr] = wdata
            log["clears"] += clear
            history.append(regs[addr] if addr < N_WORDS else 0)
            ctx.set(dut.csr.rdata, history.pop(0))

    async def host(ctx):
        want_writes, want_clears = [], 0
        for kind, word, value in ops:
            bus_error = rng.random() < 0.5
            ctx.set(dut.bus_error, bus_error)
            await _ticks(ctx, rng.randint(0, 2))
            if kind == "w":
                aw_first = rng.random() < 0.5
                if aw_first:
                    ctx.set(dut.s_axil_awaddr, 4 * word)
                    ctx.set(dut.s_axil_awvalid, 1)
                    await _ticks(ctx, rng.randint(0, 3))
                ctx.set(dut.s_axil_awaddr, 4 * word)
                ctx.set(dut.s_axil_awvalid, 1)
                ctx.set(dut.s_axil_wdata, value)
                ctx.set(dut.s_axil_wstrb, 0xF)
                ctx.set(dut.s_axil_wvalid, 1)
                while True:
                    _, _, awr, wr = await ctx.tick().sample(dut.s_axil_awready,
                                                            dut.s_axil_wready)
                    if awr and wr:
                        break
                    if awr != wr:
                        log["errors"].append("AWREADY and WREADY apart")
                ctx.set(dut.s_axil_awvalid, 0)
                ctx.set(dut.s_axil_wvalid, 0)
                ctx.set(dut.s_axil_bready, rng.random() < 0.5)
                while True:
                    _, _, bv, br, bresp = await ctx.tick().sample(
                        dut.s_axil_bvalid, dut.s_axil_bready, dut.s_axil_bresp)
                    if bv and br:
                        assert bresp == 0
                        break
                    ctx.set(dut.s_axil_bready, rng.random() < 0.5)
                ctx.set(dut.s_axil_bready, 0)
                if word < N_WORDS:
                    want_writes.append((word, value))
                if word == REGISTERS["CTRL"] and value & 3:
                    want_clears += 1
            else:
                ctx.set(dut.s_axil_araddr, 4 * word)
                ctx.set(dut.s_axil_arvalid, 1)
                while True:
                    _, _, arr = await ctx.tick().sample(dut.s_axil_arready)
                    if arr:
                        break
                ctx.set(dut.s_axil_arvalid, 0)
                want = (int(bus_error) if word == AXIL_REGISTERS["BUS_ERROR"] else
                        regs[word] if word < N_WORDS else 0)
                ctx.set(dut.s_axil_rready, rng.random() < 0.5)
                while True:
                    _, _, rv, rr, rdata, rresp = await ctx.tick().sample(
                        dut.s_axil_rvalid, dut.s_axil_rready, dut.s_axil_rdata, dut.s_axil_rresp)
                    if rv and rr:
                        break
                    ctx.set(dut.s_axil_rready, rng.random() < 0.5)
                ctx.set(dut.s_axil_rready, 0)
                assert rresp == 0
                assert rdata == want, f"read word {word}: {rdata:#x} != {want:#x} (seed={seed})"
        assert log["writes"] == want_writes, f"(seed={seed})"
        assert log["clears"] == want_clears, f"(seed={seed})"
        assert not log["errors"], log["errors"]
        # irq: ~busy & (done | error | bus_error)
        for busy in (0, 1):
            for done in (0, 1):
                for err in (0, 1):
                    for be in (0, 1):
                        ctx.set(dut.busy, busy)
                        ctx.set(dut.done, done)
                        ctx.set(dut.error, err)
                        ctx.set(dut.bus_error, be)
                        assert ctx.get(dut.irq) == int(not busy and (done or err or be))

    run_pysim(dut, [host], background=[regfile], deadline_cycles=20_000)
