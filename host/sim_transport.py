"""Simulator transports for the host driver (Amaranth pysim): the same driver code as on a board.

- :class:`PysimRunner` owns an ``amaranth.sim.Simulator`` of a device and runs *jobs* (async
  testbench functions) on demand: a synchronous driver call queues a job and advances the
  simulation until the job is done, so simulated time only passes while the driver waits for
  the device, as it would on hardware.
- :class:`PysimTransport`: the device's own ports (``csr``, ``host_mode``, ``host_rd``,
  ``host_wr`` of :class:`hw.top.top_with_memory.TopWithMemory` or :class:`boards.demo_device.DemoDevice`),
  no bridge. Memory bursts are driven with random valid gaps and back-pressure when given an
  ``rng``.
- :class:`PysimByteLink`: a byte link into the ``rx`` / ``tx`` streams of
  :class:`boards.system.BridgedSystem` (``divisor=None``), for
  :class:`host.driver.BridgeTransport` -- the bridge's protocol end to end without the UART
  bit level (hw/link/uart.py has its own tests).

The cocotb (Verilator) counterparts are in host/cocotb_transport.py.
"""
from __future__ import annotations

import collections
import random
from typing import Awaitable, Callable

from amaranth.hdl import Shape
from amaranth.sim import Simulator

from host.driver import LinkError, Transport

__all__ = ["PysimRunner", "PysimTransport", "PysimByteLink"]


class _Job:
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn):
        self.fn, self.done, self.result, self.error = fn, False, None, None


class PysimRunner:
    """A simulator that runs queued jobs (see the module docstring). ``cycles``: clock edges so
    far. ``vcd``: write a waveform file (closed by :meth:`close`)."""

    def __init__(self, dut, *, period: float = 1e-8, vcd: str | None = None,
                 max_job_cycles: int = 50_000_000):
        self.dut = dut
        self.sim = Simulator(dut)
        self.sim.add_clock(period)
        self.cycles = 0
        self.max_job_cycles = max_job_cycles
        self._jobs: collections.deque[_Job] = collections.deque()
        self.sim.add_testbench(self._server, background=True)
        self._vcd = None
        if vcd:
            self._vcd = self.sim.write_vcd(vcd)
            self._vcd.__enter__()

    async def _server(self, ctx):
        # Between jobs this idles with ``ctx.tick()``; such idle edges also happen at the start
        # of the next ``call`` before its job begins, so every job must leave the device's inputs
        # in a state where extra clock edges are harmless (valid / we / ready low).
        while True:
            if self._jobs:
                job = self._jobs[0]
                try:
                    job.result = await job.fn(ctx)
                except Exception as e:       # handed to the caller, the server lives on
                    job.error = e
                job.done = True
                self._jobs.popleft()
            else:
                await ctx.tick()

    async def tick(self, ctx, n: int = 1):
        """``ctx.tick()`` that counts cycles (use it in jobs)."""
        if n > 1:
            await ctx.tick().repeat(n)
        else:
            await ctx.tick()
        self.cycles += n

    def call(self, fn: Callable[..., Awaitable]):
        """Run ``fn(ctx)`` in the simulation; returns its result (or raises its exception)."""
        job = _Job(fn)
        self._jobs.append(job)
        start = self.cycles
        while not job.done:
            self.sim.advance()
            if self.cycles - start > self.max_job_cycles:
                raise LinkError(f"simulation job ran over {self.max_job_cycles} cycles")
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None


def _want(rng, prob):
    return rng is None or prob >= 1 or rng.random() < prob


class PysimTransport(Transport):
    """The device's ports driven directly (see the module docstring).

    ``csr_read_latency``: cycles from address to ``rdata`` (default: the device's
    ``csr_read_latency``, :data:`hw.top.csr.CSR_READ_LATENCY` for the top level; else 1).
    ``rng`` / ``valid_prob`` / ``ready_prob``: random gaps on the memory streams (None: none).
    """

    def __init__(self, runner: PysimRunner, dut, cfg, *, csr_read_latency: int | None = None,
                 rng: random.Random | None = None, valid_prob: float = 1.0,
                 ready_prob: float = 1.0):
        self.r, self.dut, self.cfg = runner, dut, cfg
        self.lat = (getattr(dut, "csr_read_latency", 1) if csr_read_latency is None
                    else csr_read_latency)
        self.rng, self.valid_prob, self.ready_prob = rng, valid_prob, ready_prob
        self.reg_bytes = Shape.cast(dut.csr.rdata.shape()).width // 8
        self.beat_bytes = cfg.hw.mem_bytes_per_cycle
        self.max_burst = cfg.hw.mem_max_burst
        self.reg_addr_bits = Shape.cast(dut.csr.addr.shape()).width

    def write_reg(self, addr, value):
        csr = self.dut.csr

        async def job(ctx):
            ctx.set(csr.addr, addr)
            ctx.set(csr.wdata, value % (1 << 8 * self.reg_bytes))
            ctx.set(csr.we, 1)
            await self.r.tick(ctx)
            ctx.set(csr.we, 0)
        self.r.call(job)

    def read_reg(self, addr):
        csr = self.dut.csr

        async def job(ctx):
            ctx.set(csr.addr, addr)
            await self.r.tick(ctx, self.lat)
            return ctx.get(csr.rdata)
        return self.r.call(job)

    def set_host_mode(self, on):
        async def job(ctx):
            ctx.set(self.dut.host_mode, int(bool(on)))
            await self.r.tick(ctx)
        self.r.call(job)

    async def _send(self, ctx, port, payload):
        """One beat on a stream the device consumes, after a random gap."""
        while not _want(self.rng, self.valid_prob):
            ctx.set(port.valid, 0)
            await self.r.tick(ctx)
        ctx.set(port.payload, payload)
        ctx.set(port.valid, 1)
        while True:
            _, _, ready = await ctx.tick().sample(port.ready)
            self.r.cycles += 1
            if ready:
                break
        ctx.set(port.valid, 0)

    async def _recv(self, ctx, port):
        """One beat from a stream the device produces, with random back-pressure."""
        while True:
            take = _want(self.rng, self.ready_prob)
            ctx.set(port.ready, int(take))
            _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
            self.r.cycles += 1
            if valid and take:
                ctx.set(port.ready, 0)
                return payload

    def write_bursts(self, bursts):
        wr, W = self.dut.host_wr, self.beat_bytes

        async def job(ctx):
            for addr, data in bursts:
                beats = len(data) // W
                await self._send(ctx, wr.wr_req, {"addr": addr, "beats": beats})
                for b in range(beats):
                    await self._send(ctx, wr.wr_data,
                                     {"data": int.from_bytes(data[b * W:(b + 1) * W], "little")})
                if await self._recv(ctx, wr.wr_resp):
                    raise LinkError(f"memory write at {addr:#x}: the memory flagged an error")
        self.r.call(job)

    def read_burst(self, addr, beats):
        rd, W = self.dut.host_rd, self.beat_bytes

        async def job(ctx):
            await self._send(ctx, rd.rd_req, {"addr": addr, "beats": beats})
            out = bytearray()
            for _ in range(beats):
                pl = await self._recv(ctx, rd.rd_data)
                out += int(pl.data).to_bytes(W, "little")
            return bytes(out)
        return self.r.call(job)

    def wait(self, cycles):
        async def job(ctx):
            await self.r.tick(ctx, cycles)
        self.r.call(job)


class PysimByteLink:
    """A byte link (``write`` / ``read`` / ``wait``) into a device's ``rx`` / ``tx`` byte streams.

    Bytes written are queued and fed to ``rx`` while the simulation runs (random valid gaps
    with ``rng``); bytes from ``tx`` are collected with random back-pressure into an inbox
    that ``read(n)`` drains, advancing the simulation until ``n`` bytes are there (or
    ``timeout_cycles`` pass: then it returns what it has, like a serial port's timeout).
    """

    def __init__(self, runner: PysimRunner, rx, tx, *, rng: random.Random | None = None,
                 valid_prob: float = 1.0, ready_prob: float = 1.0,
                 timeout_cycles: int = 200_000):
        self.r, self.rx, self.tx = runner, rx, tx
        self.rng, self.valid_prob, self.ready_prob = rng, valid_prob, ready_prob
        self.timeout_cycles = timeout_cycles
        self._out: collections.deque[int] = collections.deque()
        self._cur = None
        self._inbox = bytearray()
        self.bytes_sent = self.bytes_received = 0

    async def _pump(self, ctx, done: Callable[[int], bool]):
        # A byte offered on rx stays offered until taken (stream rule), so the pump only stops
        # with no byte pending: the runner's idle cycles between jobs then see valid low.
        n = 0
        while not done(n) or self._cur is not None:
            if self._cur is None and self._out and _want(self.rng, self.valid_prob):
                self._cur = self._out.popleft()
            ctx.set(self.rx.valid, int(self._cur is not None))
            if self._cur is not None:
                ctx.set(self.rx.payload, self._cur)
            take = _want(self.rng, self.ready_prob)
            ctx.set(self.tx.ready, int(take))
            _, _, rx_ready, tx_valid, tx_data = await ctx.tick().sample(
                self.rx.ready, self.tx.valid, self.tx.payload)
            self.r.cycles += 1
            n += 1
            if self._cur is not None and rx_ready:
                self._cur = None
                self.bytes_sent += 1
            if tx_valid and take:
                self._inbox.append(tx_data)
                self.bytes_received += 1
        ctx.set(self.rx.valid, 0)
        ctx.set(self.tx.ready, 0)

    def write(self, data: bytes) -> int:
        self._out.extend(bytes(data))
        return len(data)

    def read(self, n: int) -> bytes:
        async def job(ctx):
            await self._pump(ctx, lambda c: len(self._inbox) >= n or c >= self.timeout_cycles)
        self.r.call(job)
        got = bytes(self._inbox[:n])
        del self._inbox[:n]
        return got

    def wait(self, cycles: int) -> None:
        async def job(ctx):
            await self._pump(ctx, lambda c: c >= cycles)
        self.r.call(job)
