"""CsrWindow: one handshake register port split into two address windows.

The host bridge (hw/link/host_bridge.py) has one word-addressed register port; on a DRAM board
it must reach two register buses: the accelerator's registers (hw/top/csr.py, behind its AXI4-Lite
slave) and the LiteDRAM core's CSR bus (``wb_ctrl``: init, calibration). The top address bit
``addr[window_bit]`` picks the bus: 0 -> ``low`` (address unchanged), 1 -> ``high`` (the bits
below ``window_bit``, i.e. the word address inside the window). Both sides are
:func:`~hw.link.host_bridge.handshake_csr_signature` ports, so buses with any latency fit
(hw/link/csr_bus_masters.py turns them into AXI4-Lite and Wishbone).

Ports: ``bus`` (In, the bridge's port, slave view), ``low`` / ``high`` (Out, master view).
Latency: none (combinational: the strobe goes to the selected side, its ``ack`` / ``rdata``
come back); the unselected side sees no strobe. Resources: a few LUTs of muxing.
"""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.link.host_bridge import handshake_csr_signature

__all__ = ["CsrWindow"]


class CsrWindow(wiring.Component):
    """Split a handshake register port at address bit ``window_bit``.

    Parameters
    ----------
    addr_bits, data_bits : int
        The upstream port's widths; ``low`` has ``window_bit`` address bits (its registers
        are below the window), ``high`` too (the word address inside the window).
    window_bit : int
        The address bit that selects ``high``; ``addr_bits - 1`` by default.

    Ports
    -----
    bus : In(handshake_csr_signature(addr_bits, data_bits))
    low, high : Out(handshake_csr_signature(window_bit, data_bits))
    """

    def __init__(self, addr_bits: int, data_bits: int, window_bit: int | None = None):
        window_bit = addr_bits - 1 if window_bit is None else window_bit
        if not 0 < window_bit < addr_bits:
            raise ValueError(f"CsrWindow: window_bit must be in 1..{addr_bits - 1}, got "
                             f"{window_bit}")
        self.window_bit = window_bit
        super().__init__({"bus": In(handshake_csr_signature(addr_bits, data_bits)),
                          "low": Out(handshake_csr_signature(window_bit, data_bits)),
                          "high": Out(handshake_csr_signature(window_bit, data_bits))})

    def elaborate(self, platform):
        m = Module()
        high = self.bus.addr[self.window_bit]
        for side, selected in ((self.low, ~high), (self.high, high)):
            m.d.comb += [side.addr.eq(self.bus.addr[:self.window_bit]),
                         side.wdata.eq(self.bus.wdata),
                         side.we.eq(self.bus.we & selected), side.re.eq(self.bus.re & selected)]
        with m.If(high):
            m.d.comb += [self.bus.ack.eq(self.high.ack), self.bus.rdata.eq(self.high.rdata)]
        with m.Else():
            m.d.comb += [self.bus.ack.eq(self.low.ack), self.bus.rdata.eq(self.low.rdata)]
        return m
