"""cocotb (Verilator) links for the host driver: the same driver code on the generated Verilog.

Imported only inside a cocotb simulation. The driver is synchronous, so it runs in a cocotb
*bridge* thread (``cocotb.task.bridge``); each link operation hops back into the simulator with
``cocotb.task.resume`` and returns when its bytes have moved::

    link = CocotbByteLink(dut, rng=random.Random(seed), valid_prob=0.7, ready_prob=0.5)
    result = await bridge(lambda: my_driver_code(BridgeTransport(link)))()

- :class:`CocotbByteLink`: the ``rx`` / ``tx`` byte streams of
  :class:`boards.system.BridgedSystem` built with ``divisor=None``;
- :class:`CocotbUartLink`: the serial pins ``uart_rx`` / ``uart_tx`` of a ``BridgedSystem``
  with a UART (8N1, ``divisor`` cycles per bit), with random idle time between bytes.

Both follow host/cocotb_streams.py's timing discipline: inputs are written right after
a rising edge, outputs sampled in the ReadOnly phase after the falling edge.
"""
from __future__ import annotations

import collections
import random

from cocotb.task import resume
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

__all__ = ["CocotbByteLink", "CocotbUartLink"]


def _want(rng, prob):
    return rng is None or prob >= 1 or rng.random() < prob


class _LinkBase:
    def __init__(self, dut, clk, timeout_cycles):
        self.dut = dut
        self.clk = getattr(dut, clk)
        self.timeout_cycles = timeout_cycles
        self._out: collections.deque[int] = collections.deque()
        self._inbox = bytearray()
        self.cycles = 0

    def _busy(self) -> bool:
        """A byte is being sent (it must finish before the link may idle)."""
        raise NotImplementedError

    async def _cycle(self) -> None:
        raise NotImplementedError

    async def _idle(self) -> None:
        """Called when a pump stops (drop valid / ready)."""

    async def _pump(self, done) -> None:
        n = 0
        while not done(n) or self._busy():
            await self._cycle()
            n += 1
            self.cycles += 1
        await self._idle()

    def write(self, data: bytes) -> int:
        self._out.extend(bytes(data))
        return len(data)

    async def _read(self, n: int) -> None:
        await self._pump(lambda c: len(self._inbox) >= n or c >= self.timeout_cycles)

    def read(self, n: int) -> bytes:
        resume(self._read)(n)
        got = bytes(self._inbox[:n])
        del self._inbox[:n]
        return got

    async def _wait(self, cycles: int) -> None:
        if self._out or self._busy():
            await self._pump(lambda c: c >= cycles)
        else:                   # nothing to move: let the clock run without per-cycle Python
            await ClockCycles(self.clk, cycles)
            self.cycles += cycles

    def wait(self, cycles: int) -> None:
        resume(self._wait)(cycles)


class CocotbByteLink(_LinkBase):
    """Bytes on the ``<rx>__*`` / ``<tx>__*`` stream ports (see the module docstring)."""

    def __init__(self, dut, *, rx: str = "rx", tx: str = "tx", clk: str = "clk",
                 rng: random.Random | None = None, valid_prob: float = 1.0,
                 ready_prob: float = 1.0, timeout_cycles: int = 200_000):
        super().__init__(dut, clk, timeout_cycles)
        self.rx_valid, self.rx_ready = getattr(dut, f"{rx}__valid"), getattr(dut, f"{rx}__ready")
        self.rx_payload = getattr(dut, f"{rx}__payload")
        self.tx_valid, self.tx_ready = getattr(dut, f"{tx}__valid"), getattr(dut, f"{tx}__ready")
        self.tx_payload = getattr(dut, f"{tx}__payload")
        self.rng, self.valid_prob, self.ready_prob = rng, valid_prob, ready_prob
        self._cur = None

    def _busy(self):
        return self._cur is not None

    async def _cycle(self):
        if self._cur is None and self._out and _want(self.rng, self.valid_prob):
            self._cur = self._out.popleft()
        self.rx_valid.value = int(self._cur is not None)
        if self._cur is not None:
            self.rx_payload.value = self._cur
        take = _want(self.rng, self.ready_prob)
        self.tx_ready.value = int(take)
        await FallingEdge(self.clk)
        await ReadOnly()
        rx_ready = bool(self.rx_ready.value)
        tx_valid = bool(self.tx_valid.value)
        tx_data = self.tx_payload.value.to_unsigned() if tx_valid else 0
        await RisingEdge(self.clk)
        if self._cur is not None and rx_ready:
            self._cur = None
        if tx_valid and take:
            self._inbox.append(tx_data)

    async def _idle(self):
        self.rx_valid.value = 0
        self.tx_ready.value = 0


class CocotbUartLink(_LinkBase):
    """8N1 serial on the ``uart_rx`` (to the device) / ``uart_tx`` (from it) pins.

    ``gap_prob``: probability of one extra idle bit time before each byte sent (random valid
    gaps at the bit level). The receiver samples each bit in its middle and checks the stop bit.
    """

    def __init__(self, dut, divisor: int, *, rx_pin: str = "uart_rx", tx_pin: str = "uart_tx",
                 clk: str = "clk", rng: random.Random | None = None, gap_prob: float = 0.0,
                 timeout_cycles: int = 2_000_000):
        super().__init__(dut, clk, timeout_cycles)
        self.pin_out, self.pin_in = getattr(dut, rx_pin), getattr(dut, tx_pin)
        self.div = divisor
        self.rng, self.gap_prob = rng, gap_prob
        self._bits: collections.deque[int] = collections.deque()   # levels, one per cycle
        self._rx_state, self._rx_timer, self._rx_bits, self._rx_byte = "idle", 0, 0, 0
        self.framing_errors = 0
        self.pin_out.value = 1

    def _busy(self):
        return bool(self._bits) or self._rx_state != "idle"

    async def _cycle(self):
        if not self._bits and self._out:
            if self.rng is not None and self.rng.random() < self.gap_prob:
                self._bits.extend([1] * self.div)
            b = self._out.popleft()
            for level in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                self._bits.extend([level] * self.div)
        self.pin_out.value = self._bits.popleft() if self._bits else 1
        await FallingEdge(self.clk)
        await ReadOnly()
        line = int(self.pin_in.value)
        await RisingEdge(self.clk)
        self._receive(line)

    def _receive(self, line: int) -> None:
        st = self._rx_state
        if st == "idle":
            if line == 0:
                self._rx_state, self._rx_timer = "start", self.div // 2 - 1
            return
        if self._rx_timer:
            self._rx_timer -= 1
            return
        self._rx_timer = self.div - 1
        if st == "start":
            if line:
                self._rx_state = "idle"
            else:
                self._rx_state, self._rx_bits, self._rx_byte = "data", 0, 0
        elif st == "data":
            self._rx_byte |= line << self._rx_bits
            self._rx_bits += 1
            if self._rx_bits == 8:
                self._rx_state = "stop"
        else:
            if line:
                self._inbox.append(self._rx_byte)
            else:
                self.framing_errors += 1
            self._rx_state = "idle"

    async def _idle(self):
        self.pin_out.value = 1
