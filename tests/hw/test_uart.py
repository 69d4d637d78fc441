"""UartRx / UartTx (hw/link/uart.py) in pysim.

- loopback TX -> RX with random valid gaps on the input and random back-pressure on the output:
  every byte arrives, in order, with no framing error / overrun (several divisors, odd ones too);
- the transmitter's waveform: start bit, 8 data bits LSB first, stop bit, each exactly
  ``divisor`` cycles, checked bit by bit in the middle of each bit time;
- the receiver against a bit-level line model with a +-2 % baud-rate mismatch;
- a low stop bit sets ``framing_error`` and drops the byte; a glitch shorter than half a bit
  is not a start bit; a byte that arrives while the previous one is still offered sets
  ``overrun`` and the offered byte stays unchanged.
"""
from __future__ import annotations

import pytest
from amaranth.hdl import Elaboratable, Module

from hw.link.uart import UartRx, UartTx, uart_divisor
from tests.harness import StreamDriver, StreamMonitor, run_pysim
from tests.harness.seeds import rng, seed  # noqa: F401  (pytest fixtures)


class _Loopback(Elaboratable):
    def __init__(self, divisor):
        self.tx = UartTx(divisor)
        self.rx = UartRx(divisor)

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        m.d.comb += self.rx.rx.eq(self.tx.tx)
        return m


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_uart_loopback(divisor, rng, seed):
    dut = _Loopback(divisor)
    data = [rng.randrange(256) for _ in range(40)] + [0x00, 0xFF, 0x55, 0xAA]
    drv = StreamDriver(dut.tx.i, data, rng=rng, valid_prob=0.3)
    mon = StreamMonitor(dut.rx.o, len(data), rng=rng, ready_prob=0.5)
    run_pysim(dut, [drv, mon], deadline_cycles=len(data) * (12 * divisor + 40))
    assert mon.received == data, f"seed={seed}"


def _line_bits(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


async def _drive_line(ctx, pin, levels_per_cycle):
    for level in levels_per_cycle:
        ctx.set(pin, level)
        await ctx.tick()


def _waveform(bytes_, bit_cycles, stop_bits=None, idle=3):
    """Line levels, one per cycle; ``bit_cycles`` may be fractional (baud mismatch)."""
    out = [1] * idle
    for k, b in enumerate(bytes_):
        stop = 1 if stop_bits is None else stop_bits[k]
        bits = _line_bits(b, stop)
        t0 = len(out)
        n = round(len(bits) * bit_cycles)
        out += [bits[min(int(i / bit_cycles), 9)] for i in range(n)]
        out += [1] * idle
        assert len(out) > t0
    return out


@pytest.mark.parametrize("ratio", [0.98, 1.0, 1.02])
def test_uart_rx_baud_tolerance(ratio, rng, seed):
    div = 16
    dut = UartRx(div)
    data = [rng.randrange(256) for _ in range(12)]
    wave = _waveform(data, div * ratio)
    mon = StreamMonitor(dut.o, len(data), rng=rng, ready_prob=0.7)

    async def line(ctx):
        await _drive_line(ctx, dut.rx, wave)

    run_pysim(dut, [line, mon], deadline_cycles=len(wave) + 100)
    assert mon.received == data, f"ratio {ratio}, seed={seed}"


def test_uart_rx_framing_glitch_overrun():
    div = 8
    dut = UartRx(div)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        # a glitch of div/2 - 1 cycles: not a start bit
        await _drive_line(ctx, dut.rx, [1] * 4 + [0] * (div // 2 - 1) + [1] * (3 * div))
        assert not ctx.get(dut.o.valid)
        # a byte with a low stop bit (then the line returns high): dropped, framing_error
        await _drive_line(ctx, dut.rx, _waveform([0x5A], div, stop_bits=[0]) + [1] * (2 * div))
        seen["framing"] = ctx.get(dut.framing_error)
        assert not ctx.get(dut.o.valid)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        assert not ctx.get(dut.framing_error)
        # two bytes while nobody reads: the first stays offered unchanged, overrun is set
        ctx.set(dut.o.ready, 0)
        await _drive_line(ctx, dut.rx, _waveform([0x3C, 0xC3], div) + [1] * div)
        seen["overrun"] = ctx.get(dut.overrun)
        seen["held"] = (ctx.get(dut.o.valid), ctx.get(dut.o.payload))
        ctx.set(dut.o.ready, 1)
        await ctx.tick()
        assert not ctx.get(dut.o.valid)

    run_pysim(dut, [bench], deadline_cycles=2000)
    assert seen == {"framing": 1, "overrun": 1, "held": (1, 0x3C)}


@pytest.mark.parametrize("divisor", [4, 9])
def test_uart_tx_waveform(divisor, rng, seed):
    dut = UartTx(divisor)
    data = [rng.randrange(256) for _ in range(6)]
    levels = []
    busy = []

    async def sample(ctx):
        async for _, _, tx, b in ctx.tick().sample(dut.tx, dut.busy):
            levels.append(tx)
            busy.append(b)

    drv = StreamDriver(dut.i, data)   # back to back: frames follow each other

    async def send(ctx):
        await drv(ctx)
        await ctx.tick().repeat(11 * divisor)     # let the last frame leave

    run_pysim(dut, [send], background=[sample], deadline_cycles=len(data) * 12 * divisor + 50)
    # find each frame: a falling edge, then the bit levels in the middle of each bit time
    got, t = [], 0
    while len(got) < len(data):
        while levels[t] == 1:
            t += 1
        bits = [levels[t + i * divisor + divisor // 2] for i in range(10)]
        assert all(levels[t + j] == 0 for j in range(divisor)), "start bit not divisor cycles"
        assert bits[0] == 0 and bits[9] == 1, f"bad framing {bits} (seed={seed})"
        got.append(sum(b << i for i, b in enumerate(bits[1:9])))
        t += 10 * divisor
    assert got == data, f"seed={seed}"
    assert drv.accepted_cycles[1] - drv.accepted_cycles[0] == 10 * divisor + 1


def test_uart_divisor():
    assert uart_divisor(25e6, 115200) == 217
    assert uart_divisor(100e6, 1_000_000) == 100
    with pytest.raises(ValueError):
        uart_divisor(1e6, 500_000)
    with pytest.raises(ValueError):
        uart_divisor(1e6, 300_000)     # 3.33 -> 3 cycles, below the minimum / 10 % off
