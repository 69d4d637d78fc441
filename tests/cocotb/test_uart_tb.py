"""cocotb tests of hw/link/uart.py on Verilog (run by tests/hw/test_uart_verilator.py).

params: ``divisor``, ``count``, ``valid_prob``, ``ready_prob``, ``seed``.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from host.cocotb_streams import stream_recv, stream_send
from tests.harness.cocotb_tb import setup_dut, tb_params


async def _setup(dut):
    """The params and the byte streams ``i`` (to tx) and ``o`` (from rx), rx idle high."""
    p, _ = tb_params()
    ports = await setup_dut(dut, inputs={"i": None}, outputs={"o": None},
                            pins={"rx": 1, "clear": 0})
    return p, ports["i"], ports["o"]


async def _decode_tx(dut, count, div):
    """Bytes seen on the tx pin, sampled in the middle of each bit; checks the stop bit."""
    out = []
    while len(out) < count:
        await FallingEdge(dut.clk)
        await ReadOnly()
        if int(dut.tx.value):
            continue
        # falling edge of a start bit seen within the last cycle: go to the middle of bit 0
        levels = []
        for k in range(10):
            for _ in range(div // 2 if k == 0 else div):
                await FallingEdge(dut.clk)
            await ReadOnly()
            levels.append(int(dut.tx.value))
        assert levels[0] == 0, f"start bit not held for half a bit: {levels}"
        assert levels[9] == 1, f"stop bit low: {levels}"
        out.append(sum(b << i for i, b in enumerate(levels[1:9])))
    return out


async def _drive_rx(dut, data, bit_cycles, rng, stop_bits=None):
    """Drive bytes on the rx pin; ``bit_cycles`` may be fractional (baud mismatch)."""
    t = 0.0
    cycle = 0
    for k, b in enumerate(data):
        for _ in range(rng.randrange(0, 3 * int(bit_cycles))):   # random idle time
            dut.rx.value = 1
            await RisingEdge(dut.clk)
            cycle += 1
        t = cycle
        stop = 1 if stop_bits is None else stop_bits[k]
        bits = [0] + [(b >> i) & 1 for i in range(8)] + [stop]
        for i, level in enumerate(bits):
            while cycle < t + (i + 1) * bit_cycles:
                dut.rx.value = level
                await RisingEdge(dut.clk)
                cycle += 1
    dut.rx.value = 1


@cocotb.test()
async def uart_tx_bit_level(dut):
    """Random bytes with random valid gaps leave on tx as correct 8N1 frames."""
    p, i, _ = await _setup(dut)
    rng = random.Random(p["seed"])
    data = [rng.randrange(256) for _ in range(p["count"])]
    send = cocotb.start_soon(stream_send(dut.clk, i, data, rng=rng, valid_prob=p["valid_prob"]))
    got = await _decode_tx(dut, len(data), p["divisor"])
    await send
    assert got == data, f"seed={p['seed']}"


@cocotb.test()
async def uart_rx_bit_level(dut):
    """Bytes at 0.98x, 1x and 1.02x the nominal bit time, then a framing error."""
    p, _, o = await _setup(dut)
    rng = random.Random(p["seed"] + 1)
    div = p["divisor"]
    for ratio in (0.98, 1.0, 1.02):
        data = [rng.randrange(256) for _ in range(p["count"] // 3)]
        drive = cocotb.start_soon(_drive_rx(dut, data, div * ratio, rng))
        got = await stream_recv(dut.clk, o, len(data), rng=rng, ready_prob=p["ready_prob"],
                                timeout_cycles=40 * div)
        await drive
        assert got == data, f"ratio {ratio} (seed={p['seed']})"
    assert not int(dut.framing_error.value) and not int(dut.overrun.value)
    await _drive_rx(dut, [0xA5], div, rng, stop_bits=[0])
    for _ in range(2 * div):
        await RisingEdge(dut.clk)
    assert int(dut.framing_error.value) == 1
    assert not int(dut.o__valid.value), "a byte with a low stop bit must be dropped"
