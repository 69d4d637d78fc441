# amaranth: UnusedElaboratable=no
"""hw/link/host_link.py (host bridge + CsrWindow + AxiLiteMaster + WishboneMaster), Amaranth pysim.

``test_register_windows``: host/driver.py's ``BridgeTransport`` over
:class:`host.sim_transport.PysimByteLink` (random gaps and back-pressure on the byte streams)
sends random register writes and reads to both windows of a :class:`HostLink`; behind it an
AXI4-Lite slave model (AWREADY / WREADY in either order, random delays on every channel) and a
Wishbone classic slave model (random ack delay), each with its own register dict. Every read
must return what the independent Python model of both windows says, every bus access must land
on the right bus at the right address (AXI-Lite byte ``4 * i`` for bridge word ``i`` < 0x8000,
Wishbone word ``i - 0x8000`` above), and no access may reach the other bus.

``test_wishbone_err_sets_bus_error``: a Wishbone ``err`` ends the cycle (the bridge answers)
and sets the sticky ``bus_error``.

``test_handshake_bridge_ident``: a bridge with a handshake register port reports 16 register
address bits in IDENT.
"""
from __future__ import annotations

import random

from host.driver import BridgeTransport
from host.sim_transport import PysimByteLink, PysimRunner
from hw.link.host_link import WINDOW_BASE, HostLink
from sim.config import get_config
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


def _slaves(runner, dut, rng, axil_regs, wb_regs, log, wb_err=False):
    a, wb = dut.axil, dut.wb

    async def delay(ctx, n):
        for _ in range(n):
            await ctx.tick()

    async def axil_slave(ctx):
        while True:
            _, _, awv, wv, arv, awaddr, wdata, araddr = await ctx.tick().sample(
                a.awvalid, a.wvalid, a.arvalid, a.awaddr, a.wdata, a.araddr)
            if awv or wv:
                # take AW and W in a random order, each after a random delay
                order = ["aw", "w"] if rng.random() < 0.5 else ["w", "aw"]
                for ch in order:
                    await delay(ctx, rng.randrange(3))
                    ready = a.awready if ch == "aw" else a.wready
                    valid = a.awvalid if ch == "aw" else a.wvalid
                    ctx.set(ready, 1)
                    while not (await ctx.tick().sample(valid))[2]:
                        pass
                    ctx.set(ready, 0)
                axil_regs[awaddr] = wdata
                log.append(("axil", "w", awaddr, wdata))
                await delay(ctx, rng.randrange(3))
                ctx.set(a.bvalid, 1)
                ctx.set(a.bresp, 0)
                while not (await ctx.tick().sample(a.bready))[2]:
                    pass
                ctx.set(a.bvalid, 0)
            elif arv:
                await delay(ctx, rng.randrange(3))
                ctx.set(a.arready, 1)
                await ctx.tick()
                ctx.set(a.arready, 0)
                log.append(("axil", "r", araddr))
                await delay(ctx, rng.randrange(3))
                ctx.set(a.rvalid, 1)
                ctx.set(a.rdata, axil_regs.get(araddr, 0))
                while not (await ctx.tick().sample(a.rready))[2]:
                    pass
                ctx.set(a.rvalid, 0)

    async def wb_slave(ctx):
        while True:
            _, _, cyc, stb, we, adr, dat_w, sel = await ctx.tick().sample(
                wb.cyc, wb.stb, wb.we, wb.adr, wb.dat_w, wb.sel)
            if cyc and stb:
                assert sel == 0xF
                await delay(ctx, rng.randrange(3))
                if we:
                    wb_regs[adr] = dat_w
                    log.append(("wb", "w", adr, dat_w))
                else:
                    ctx.set(wb.dat_r, wb_regs.get(adr, 0))
                    log.append(("wb", "r", adr))
                ctx.set(wb.err if wb_err else wb.ack, 1)
                await ctx.tick()
                ctx.set(wb.err if wb_err else wb.ack, 0)

    runner.sim.add_testbench(axil_slave, background=True)
    runner.sim.add_testbench(wb_slave, background=True)


def _link(seed, **kw):
    rng = random.Random(seed)
    dut = HostLink(get_config("tiny"), None)
    runner = PysimRunner(dut)
    axil_regs, wb_regs, log = {}, {}, []
    _slaves(runner, dut, random.Random(seed + 1), axil_regs, wb_regs, log, **kw)
    link = PysimByteLink(runner, dut.rx, dut.tx, rng=rng, valid_prob=0.7, ready_prob=0.6)
    return rng, dut, runner, BridgeTransport(link), log


def test_register_windows(seed):
    rng, dut, runner, t, log = _link(seed)
    model = {}
    for i in range(60):
        high = rng.random() < 0.5
        addr = (WINDOW_BASE + rng.randrange(0x1100 // 4)) if high else rng.randrange(1024)
        if rng.random() < 0.5 or addr not in model:
            value = rng.getrandbits(32)
            t.write_reg(addr, value)
            model[addr] = value
            want_log = (("wb", "w", addr - WINDOW_BASE, value) if high
                        else ("axil", "w", 4 * addr, value))
        else:
            got = t.read_reg(addr)
            assert got == model[addr], (f"read {addr:#x}: got {got:#x}, want "
                                        f"{model[addr]:#x} (seed={seed})")
            want_log = ("wb", "r", addr - WINDOW_BASE) if high else ("axil", "r", 4 * addr)
        assert log[-1] == want_log, (i, log[-1], want_log, seed)
    assert len(log) == 60, f"{len(log)} bus accesses for 60 register commands (seed={seed})"
    assert runner.call(lambda ctx: _get(ctx, dut.bus_error)) == 0


async def _get(ctx, sig):
    return ctx.get(sig)


def test_wishbone_err_sets_bus_error(seed):
    rng, dut, runner, t, log = _link(seed, wb_err=True)
    assert runner.call(lambda ctx: _get(ctx, dut.bus_error)) == 0
    t.write_reg(WINDOW_BASE + 3, 7)                 # answered although the slave said err
    assert log == [("wb", "w", 3, 7)]
    assert runner.call(lambda ctx: _get(ctx, dut.bus_error)) == 1


def test_handshake_bridge_ident(seed):
    _, _, _, t, _ = _link(seed)
    assert (t.reg_addr_bits, t.reg_bytes) == (16, 4)
