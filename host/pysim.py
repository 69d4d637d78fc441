"""Amaranth pysim helpers: stream drivers / monitors with random gaps and back-pressure.

All helpers are ``async`` testbench code for :meth:`amaranth.sim.Simulator.add_testbench`
(``ctx.set`` / ``ctx.get`` / ``ctx.tick``), nothing from the pre-0.5 process API.

Stream rules (``amaranth.lib.stream``) the helpers obey and check:

- a beat transfers on a clock edge where ``valid & ready`` (both sampled at that edge);
- the driver never waits for ``ready`` before raising ``valid``, and keeps ``payload`` stable while
  ``valid`` is high and the beat has not transferred;
- the monitor checks the same of the DUT: once ``valid`` is high it must stay high with the same
  payload until the beat transfers.

Typical test::

    drv = StreamDriver(dut.i, beats, rng=rng, valid_prob=0.7)
    mon = StreamMonitor(dut.o, len(beats), rng=rng, ready_prob=0.6)
    run_pysim(dut, [drv, mon], deadline_cycles=10 * len(beats) + 100)
    assert_beats_equal(mon.received, expected, inputs=beats, seed=seed)

``drv.accepted_cycles`` / ``mon.transfer_cycles`` hold the clock edge index (1 = first edge) of
each transfer, for latency and throughput checks.
"""
from __future__ import annotations

import inspect
import os
import random
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from amaranth.hdl import ClockDomain, Module, Value
from amaranth.sim import Simulator

from host.streams import plain, to_py

__all__ = ["DeadlineExceeded", "StreamProtocolError", "stream_send", "stream_recv",
           "StreamDriver", "StreamMonitor", "run_pysim", "default_vcd_path"]

VCD_ENV = "EDGE_MOE_VCD"


class DeadlineExceeded(AssertionError):
    """The simulation ran longer than ``deadline_cycles`` (a hang or a lost beat)."""


class StreamProtocolError(AssertionError):
    """The DUT broke a stream rule (valid dropped or payload changed before the transfer)."""


def _want(rng: random.Random | None, prob: float) -> bool:
    """True with probability ``prob`` (always True without an rng or with prob >= 1)."""
    return rng is None or prob >= 1.0 or rng.random() < prob


async def stream_send(ctx, port, payloads: Iterable, *, rng: random.Random | None = None,
                      valid_prob: float = 1.0, garbage: bool = True, domain: str = "sync",
                      accepted_cycles: list | None = None):
    """Send ``payloads`` in order on ``port`` (a ``stream.Interface`` the DUT consumes).

    Before each beat, idle cycles are inserted while ``rng.random() >= valid_prob``; during idle
    cycles the payload is filled with random bits if ``garbage`` (the DUT must ignore it).
    Returns when the last beat has transferred, with ``valid`` low.
    """
    bits = Value.cast(port.payload)
    edges = 0
    ctx.set(port.valid, 0)
    for p in payloads:
        while not _want(rng, valid_prob):
            ctx.set(port.valid, 0)
            if garbage and rng is not None:
                ctx.set(bits, rng.getrandbits(len(bits)))
            await ctx.tick(domain)
            edges += 1
        ctx.set(port.payload, plain(p))
        ctx.set(port.valid, 1)
        while True:
            _, _, ready = await ctx.tick(domain).sample(port.ready)
            edges += 1
            if ready:
                break
        if accepted_cycles is not None:
            accepted_cycles.append(edges)
    ctx.set(port.valid, 0)


async def stream_recv(ctx, port, count: int, *, rng: random.Random | None = None,
                      ready_prob: float = 1.0, domain: str = "sync", check_protocol: bool = True,
                      received: list | None = None, transfer_cycles: list | None = None) -> list:
    """Receive ``count`` beats from ``port`` (a ``stream.Interface`` the DUT produces).

    Each cycle ``ready`` is raised with probability ``ready_prob`` (random back-pressure).
    Payloads are converted to plain Python (``to_py``). With ``check_protocol`` a beat that is
    offered (``valid``) but not taken must stay offered, unchanged, until it transfers; a
    violation raises :class:`StreamProtocolError`. Returns the list of received payloads.
    """
    out = [] if received is None else received
    bits = Value.cast(port.payload)
    pending = None   # raw payload bits of a beat offered but not taken at the previous edge
    edges = 0
    while len(out) < count:
        take = _want(rng, ready_prob)
        ctx.set(port.ready, int(take))
        _, _, valid, raw, payload = await ctx.tick(domain).sample(port.valid, bits, port.payload)
        edges += 1
        if check_protocol and pending is not None:
            if not valid:
                raise StreamProtocolError(
                    f"{port.valid.name}: valid dropped before beat {len(out)} transferred "
                    f"(edge {edges})")
            if raw != pending:
                raise StreamProtocolError(
                    f"{port.valid.name}: payload of beat {len(out)} changed while waiting for "
                    f"ready (edge {edges}): {pending:#x} -> {raw:#x}")
        if valid and take:
            out.append(to_py(payload))
            if transfer_cycles is not None:
                transfer_cycles.append(edges)
            pending = None
        else:
            pending = raw if valid else None
    ctx.set(port.ready, 0)
    return out


class StreamDriver:
    """Testbench (callable ``async (ctx)``) that sends ``payloads`` on ``port``; see
    :func:`stream_send`. ``accepted_cycles[k]`` is the edge index at which beat ``k`` transferred.
    """

    def __init__(self, port, payloads: Sequence, *, rng: random.Random | None = None,
                 valid_prob: float = 1.0, garbage: bool = True, domain: str = "sync"):
        self.port = port
        self.payloads = list(payloads)
        self.rng = rng
        self.valid_prob = valid_prob
        self.garbage = garbage
        self.domain = domain
        self.accepted_cycles: list[int] = []

    async def __call__(self, ctx):
        self.accepted_cycles.clear()
        await stream_send(ctx, self.port, self.payloads, rng=self.rng, valid_prob=self.valid_prob,
                          garbage=self.garbage, domain=self.domain,
                          accepted_cycles=self.accepted_cycles)


class StreamMonitor:
    """Testbench (callable ``async (ctx)``) that receives ``count`` beats from ``port``; see
    :func:`stream_recv`. Results in ``received``; ``transfer_cycles[k]`` is the edge index of
    beat ``k``.
    """

    def __init__(self, port, count: int, *, rng: random.Random | None = None,
                 ready_prob: float = 1.0, domain: str = "sync", check_protocol: bool = True):
        self.port = port
        self.count = count
        self.rng = rng
        self.ready_prob = ready_prob
        self.domain = domain
        self.check_protocol = check_protocol
        self.received: list[Any] = []
        self.transfer_cycles: list[int] = []

    async def __call__(self, ctx):
        self.received.clear()
        self.transfer_cycles.clear()
        await stream_recv(ctx, self.port, self.count, rng=self.rng, ready_prob=self.ready_prob,
                          domain=self.domain, check_protocol=self.check_protocol,
                          received=self.received, transfer_cycles=self.transfer_cycles)


def default_vcd_path() -> Path:
    """``build/vcd/<current pytest test>.vcd`` (used when ``$EDGE_MOE_VCD`` is set)."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "sim").split(" ")[0]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test).strip("_") or "sim"
    return Path(__file__).resolve().parents[2] / "build" / "vcd" / f"{name}.vcd"


def _as_async(tb: Callable) -> Callable:
    """Amaranth wants an ``async def`` function; wrap callable objects (StreamDriver, ...)."""
    if inspect.iscoroutinefunction(tb):
        return tb

    async def testbench(ctx):
        await tb(ctx)
    testbench.__qualname__ = testbench.__name__ = type(tb).__name__
    return testbench


def run_pysim(dut, testbenches: Sequence[Callable], *, vcd: str | os.PathLike | None = None,
              traces=(), deadline_cycles: int = 100_000, clock_period: float = 1e-8,
              domain: str = "sync", background: Sequence[Callable] = (),
              clock: bool = True) -> int:
    """Simulate ``dut`` with a clock on ``domain`` until every testbench in ``testbenches`` returns.

    ``testbenches`` / ``background`` are ``async def tb(ctx)`` callables (e.g. StreamDriver /
    StreamMonitor objects); background ones may run forever. Raises :class:`DeadlineExceeded`
    after ``deadline_cycles`` clock edges. Writes a VCD to ``vcd`` (or to
    :func:`default_vcd_path` if ``$EDGE_MOE_VCD`` is set). Exceptions raised in a testbench
    propagate. Returns the number of clock edges simulated.

    ``clock=False`` simulates a purely combinational design (no clock, no watchdog; testbenches
    use ``ctx.set`` / ``ctx.get`` / ``ctx.delay``).
    """
    testbenches = [_as_async(tb) for tb in testbenches]
    background = [_as_async(tb) for tb in background]
    sim = Simulator(dut)
    if clock:
        try:
            sim.add_clock(clock_period, domain=domain)
        except NameError:   # no such domain (e.g. a combinational DUT): provide one
            top = Module()
            top.domains += ClockDomain(domain)
            top.submodules.dut = dut
            sim = Simulator(top)
            sim.add_clock(clock_period, domain=domain)
    edges = 0

    async def watchdog(ctx):
        nonlocal edges
        async for _ in ctx.tick(domain):
            edges += 1
            if edges > deadline_cycles:
                raise DeadlineExceeded(
                    f"simulation still running after {deadline_cycles} cycles "
                    f"(a hang, or a monitor waiting for beats that never come)")

    if clock:
        sim.add_testbench(watchdog, background=True)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)

    if vcd is None and os.environ.get(VCD_ENV):
        vcd = default_vcd_path()
    if vcd is not None:
        Path(vcd).parent.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(vcd), traces=traces):
            sim.run()
    else:
        sim.run()
    return edges
