"""8N1 UART receiver and transmitter with byte streams (the board's host link).

``UartRx(divisor)`` / ``UartTx(divisor)``: ``divisor`` is the number of clock cycles per bit
(``clk_hz // baud``; a board entry computes it from its clock and baud rate, see
boards/boards.py). The frame is the usual 8N1: a low start bit, 8 data bits LSB first, a high
stop bit; the line idles high. Byte width 8 is the UART's, not an accelerator width.

UartRx
    Ports: ``rx`` (In 1, the pin; synchronised here by two flip-flops), ``o``
    (Out ``stream.Signature(8)``), ``framing_error`` / ``overrun`` (Out 1, sticky until
    ``clear`` (In 1) is pulsed).

    A falling edge starts a frame; the start bit is re-checked half a bit later (a glitch
    shorter than half a bit is ignored), then each data bit and the stop bit are sampled in the
    middle of their bit time. A byte with a low stop bit is dropped and sets
    ``framing_error``; the receiver then waits for the line to go high before looking for the
    next start bit (so a break condition does not produce a stream of bytes).
    Latency: ``o.valid`` rises ``9.5 * divisor + 3`` cycles after the start bit's falling edge
    at the pin (two synchroniser cycles, one register). Throughput: one byte per
    ``10 * divisor`` cycles (the line rate). ``o`` has no FIFO behind it: a byte that arrives
    while the previous one is still offered (``o.valid & ~o.ready``) is dropped and sets
    ``overrun`` (stream rule: a held payload never changes); put a FIFO after ``o`` if the
    consumer can stall for longer than one byte time.

UartTx
    Ports: ``i`` (In ``stream.Signature(8)``), ``tx`` (Out 1, idles high), ``busy`` (Out 1).
    A byte is accepted (``i.ready``) only when the transmitter is idle; the frame leaves on
    ``tx`` starting the cycle after the transfer. Latency 1 cycle to the start bit;
    throughput one byte per ``10 * divisor + 1`` cycles (the extra cycle, between a frame's
    stop bit and the next start bit, only lengthens the stop bit).

Resources: a ``divisor``-range counter, a 4-bit bit counter and a 9/10-bit shift register each.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "BYTE_BITS", "uart_divisor", "connect_byte_link"]

BYTE_BITS = 8          # the UART frame's data bits (8N1), not an accelerator width


def uart_divisor(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit; raises ValueError if the baud rate is off by more than 2 %."""
    div = round(clk_hz / baud)
    if div < 4:
        raise ValueError(f"UART: a {clk_hz / 1e6:g} MHz clock is too slow for {baud} baud "
                         f"(divisor {div} < 4)")
    err = abs(clk_hz / div - baud) / baud
    if err > 0.02:
        raise ValueError(f"UART: {baud} baud from {clk_hz / 1e6:g} MHz is off by "
                         f"{100 * err:.1f} % (divisor {div})")
    return div


def _check_divisor(divisor: int) -> None:
    if divisor < 4:
        raise ValueError(f"UART divisor must be >= 4 cycles per bit, got {divisor}")


class _Countdown:
    """A bit timer counting down, with "it is zero" kept as a register beside it: the zero
    detect of the counter ran through the FSM into the shift registers' enables (3 LUT levels,
    routed 11.9 ns on the ULX3S, where the UART sits by its pins)."""

    def __init__(self, n: int, name: str):
        self.value = Signal(range(n), name=name)
        self.zero = Signal(init=1, name=f"{name}_zero")

    def load(self, v: int):
        return [self.value.eq(v), self.zero.eq(int(v == 0))]

    def step(self):
        return [self.value.eq(self.value - 1), self.zero.eq(self.value == 1)]


class UartRx(wiring.Component):
    """8N1 receiver (see the module docstring).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Ports
    -----
    rx : In(1)
        The pin (idles high; synchronised inside).
    o : Out(stream(8))
        One beat per received byte; a byte arriving while the previous one is held is dropped.
    framing_error, overrun : Out(1)
        Sticky until ``clear`` (In(1)) is pulsed.

    Latency ``9.5 * divisor + 3`` cycles from the start bit's falling edge to ``o.valid``;
    throughput one byte per ``10 * divisor`` cycles (the line rate).
    """

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(BYTE_BITS)),
            "framing_error": Out(1), "overrun": Out(1), "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        timer = _Countdown(div, "timer")
        bits = Signal(range(BYTE_BITS + 1))
        shreg = Signal(BYTE_BITS)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.clear):
            m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # sample the start bit again in its middle
                    m.d.sync += timer.load(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(~timer.zero):
                    m.d.sync += timer.step()
                with m.Elif(rx):
                    m.next = "IDLE"             # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.load(div - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(~timer.zero):
                    m.d.sync += timer.step()
                with m.Else():
                    m.d.sync += [timer.load(div - 1),
                                 shreg.eq((shreg >> 1) | (rx << (BYTE_BITS - 1))),
                                 bits.eq(bits + 1)]
                    with m.If(bits == BYTE_BITS - 1):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(~timer.zero):
                    m.d.sync += timer.step()
                with m.Elif(rx):
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)      # keep the offered byte stable
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += self.framing_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter (see the module docstring).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Ports
    -----
    i : In(stream(8))
        One byte per beat, accepted only while idle.
    tx : Out(1)
        The pin (idles high): start bit, 8 data bits LSB first, stop bit.
    busy : Out(1)
        A frame is being sent.

    Latency 1 cycle from the transfer on ``i`` to the start bit; throughput one byte per
    ``10 * divisor + 1`` cycles.
    """

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(BYTE_BITS)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        frame = BYTE_BITS + 2
        timer = _Countdown(div, "timer")
        left = Signal(range(frame + 1))
        # start bit in bit 0 is sent first; the stop bit shifts in as the idle level
        shreg = Signal(frame, init=(1 << frame) - 1)

        m.d.comb += [self.tx.eq(shreg[0]), self.busy.eq(left != 0),
                     self.i.ready.eq(left == 0)]
        with m.If(left == 0):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq((1 << (frame - 1)) | (self.i.payload << 1)),
                             left.eq(frame), timer.load(div - 1)]
        with m.Elif(~timer.zero):
            m.d.sync += timer.step()
        with m.Else():
            m.d.sync += [shreg.eq((shreg >> 1) | (1 << (frame - 1))), left.eq(left - 1),
                         timer.load(div - 1)]
        return m


def connect_byte_link(m, owner, rx_fifo, bridge) -> None:
    """The host byte link of a board design: ``owner.rx`` / ``owner.tx`` streams (simulation,
    ``owner.divisor is None``) or a UART on ``owner.uart_rx`` / ``owner.uart_tx`` whose framing
    or overrun errors drive ``owner.link_error``; received bytes pass through ``rx_fifo`` into
    ``bridge.rx``, ``bridge.tx`` goes out directly."""
    if owner.divisor is None:
        wiring.connect(m, wiring.flipped(owner.rx), rx_fifo.w_stream)
        wiring.connect(m, bridge.tx, wiring.flipped(owner.tx))
    else:
        m.submodules.uart_rx = urx = UartRx(owner.divisor)
        m.submodules.uart_tx = utx = UartTx(owner.divisor)
        m.d.comb += [urx.rx.eq(owner.uart_rx), owner.uart_tx.eq(utx.tx)]
        wiring.connect(m, urx.o, rx_fifo.w_stream)
        wiring.connect(m, bridge.tx, utx.i)
        m.d.comb += owner.link_error.eq(urx.framing_error | urx.overrun)
    wiring.connect(m, rx_fifo.r_stream, bridge.rx)
