"""cocotb-side helpers (imported inside the simulator process): clock/reset, valid/ready streams.

Amaranth flattens a stream port ``i`` of a ``wiring.Component`` to the Verilog ports
``i__valid``, ``i__ready`` and ``i__payload`` (a flat vector; ``ArrayLayout`` element ``k`` at
bits ``[k * w, (k + 1) * w)``). The sync domain becomes ``clk`` and ``rst`` (active high,
synchronous).

Timing discipline (identical for every helper, so drivers and monitors compose):

- inputs are written right after a rising edge;
- handshakes are sampled at the following falling edge (in the ReadOnly phase), when every
  combinational path (e.g. ``i.ready = o.ready | ~o.valid``) has settled; nothing changes
  between that sample and the next rising edge, so "valid & ready at the falling edge" is exactly
  "transfer on the next rising edge". This avoids the Verilator/cocotb question of whether a
  value read just after ``RisingEdge`` is pre- or post-edge.

Usage in a cocotb test::

    params = load_params()
    await start(dut)                      # clock + reset
    i = StreamPort(dut, "i", layout_in)   # layout from the same Amaranth component
    o = StreamPort(dut, "o", layout_out)
    rng = random.Random(params["seed"])
    send = cocotb.start_soon(stream_send(dut.clk, i, beats, rng=rng, valid_prob=0.7))
    got = await stream_recv(dut.clk, o, len(beats), rng=rng, ready_prob=0.6)
    await send
"""
from __future__ import annotations

import json
import os
import random
from typing import Any, Iterable

from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from host.streams import from_bits, shape_width, to_bits

__all__ = ["PARAMS_ENV", "load_params", "start", "StreamPort", "stream_send", "stream_recv",
           "StreamProtocolError", "StreamTimeout"]

PARAMS_ENV = "EDGE_MOE_COCOTB_PARAMS"


class StreamProtocolError(AssertionError):
    """The DUT broke a stream rule (valid dropped or payload changed before the transfer)."""


class StreamTimeout(AssertionError):
    """No beat arrived for ``timeout_cycles`` cycles."""


def load_params() -> dict[str, Any]:
    """The ``params`` dict given to ``run_cocotb`` (plus ``seed`` and ``toplevel``)."""
    path = os.environ.get(PARAMS_ENV)
    if not path:
        raise RuntimeError(f"${PARAMS_ENV} is not set: run this module through "
                           f"host.cocotb_run.run_cocotb")
    with open(path) as f:
        return json.load(f)


async def start(dut, *, period_ns: int = 10, reset_cycles: int = 2, clk: str = "clk",
                rst: str | None = "rst") -> None:
    """Start a clock on ``dut.<clk>`` and hold ``dut.<rst>`` high for ``reset_cycles`` cycles.

    Returns just after a rising edge with reset released. Set the DUT's ``*__valid`` /
    ``*__ready`` inputs low before calling it.
    """
    Clock(getattr(dut, clk), period_ns, unit="ns").start()
    clock = getattr(dut, clk)
    if rst is not None and hasattr(dut, rst):
        getattr(dut, rst).value = 1
        for _ in range(reset_cycles):
            await RisingEdge(clock)
        getattr(dut, rst).value = 0
    await RisingEdge(clock)


class StreamPort:
    """The three Verilog ports of a flattened Amaranth stream ``name`` on ``dut``.

    ``shape`` is the payload's Amaranth shape (a ``lib.data`` layout or ``signed(n)`` etc.),
    used to convert payload values to and from bits; without it payloads are raw ints.
    ``sep`` is the separator Amaranth puts between the port and member names (``"__"``).
    """

    def __init__(self, dut, name: str, shape=None, *, sep: str = "__"):
        self.name = name
        self.valid = getattr(dut, f"{name}{sep}valid")
        self.ready = getattr(dut, f"{name}{sep}ready")
        self.payload = getattr(dut, f"{name}{sep}payload")
        self.shape = shape
        self.width = len(self.payload)
        if shape is not None and shape_width(shape) != self.width:
            raise ValueError(f"{name}: payload shape is {shape_width(shape)} bits, the Verilog "
                             f"port {self.width}")

    def encode(self, value) -> int:
        return int(value) if self.shape is None else to_bits(self.shape, value)

    def decode(self, bits: int):
        return bits if self.shape is None else from_bits(self.shape, bits)


async def _settled(clk) -> None:
    await FallingEdge(clk)
    await ReadOnly()


async def stream_send(clk, port: StreamPort, payloads: Iterable, *,
                      rng: random.Random | None = None, valid_prob: float = 1.0,
                      garbage: bool = True, accepted_cycles: list | None = None) -> None:
    """Drive ``payloads`` into the DUT through ``port`` (call right after a rising edge).

    Idle cycles (valid low, random payload bits if ``garbage``) are inserted before each beat
    while ``rng.random() >= valid_prob``. Returns right after the last beat's transfer edge, with
    ``valid`` low.
    """
    cycle = 0
    port.valid.value = 0
    for p in payloads:
        bits = port.encode(p)
        while rng is not None and valid_prob < 1.0 and rng.random() >= valid_prob:
            port.valid.value = 0
            if garbage:
                port.payload.value = rng.getrandbits(port.width)
            await RisingEdge(clk)
            cycle += 1
        port.valid.value = 1
        port.payload.value = bits
        while True:
            await _settled(clk)
            ready = bool(port.ready.value)
            await RisingEdge(clk)
            cycle += 1
            if ready:
                break
        if accepted_cycles is not None:
            accepted_cycles.append(cycle)
    port.valid.value = 0


def _unsigned(value) -> int:
    """A sampled payload as an unsigned integer: a ``LogicArray``, or the ``Logic`` a one-bit
    port gives on some simulators (Icarus)."""
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


async def stream_recv(clk, port: StreamPort, count: int, *, rng: random.Random | None = None,
                      ready_prob: float = 1.0, timeout_cycles: int = 10_000,
                      check_protocol: bool = True, transfer_cycles: list | None = None) -> list:
    """Collect ``count`` beats the DUT offers on ``port`` (call right after a rising edge).

    ``ready`` is raised each cycle with probability ``ready_prob``. Checks that an offered beat
    stays offered and unchanged until taken (``StreamProtocolError``); raises ``StreamTimeout``
    if ``timeout_cycles`` pass without a transfer. Returns decoded payloads; leaves ready low.
    """
    out = []
    pending = None
    idle = 0
    cycle = 0
    while len(out) < count:
        take = rng is None or ready_prob >= 1.0 or rng.random() < ready_prob
        port.ready.value = int(take)
        await _settled(clk)
        valid = bool(port.valid.value)
        raw = _unsigned(port.payload.value) if valid else None
        await RisingEdge(clk)
        cycle += 1
        if check_protocol and pending is not None:
            if not valid:
                raise StreamProtocolError(f"{port.name}: valid dropped before beat {len(out)} "
                                          f"transferred (cycle {cycle})")
            if raw != pending:
                raise StreamProtocolError(f"{port.name}: payload of beat {len(out)} changed while "
                                          f"waiting for ready (cycle {cycle}): {pending:#x} -> "
                                          f"{raw:#x}")
        if valid and take:
            out.append(port.decode(raw))
            if transfer_cycles is not None:
                transfer_cycles.append(cycle)
            pending = None
            idle = 0
        else:
            pending = raw if valid else None
            idle += 1
            if idle > timeout_cycles:
                raise StreamTimeout(f"{port.name}: no beat for {timeout_cycles} cycles after "
                                    f"{len(out)} of {count} beats")
    port.ready.value = 0
    return out
