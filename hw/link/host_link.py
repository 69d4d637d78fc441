"""HostLink: the host bridge's three buses for a DRAM system: AXI4-Lite, Wishbone and AXI4.

::

    host bytes -> [UartRx] -> FIFO -> HostBridge --csr--> CsrWindow --low--> AxiLiteMaster -> axil
                                        |   |                       '-high-> WishboneMaster -> wb
                                        |   '-- mem_rd / mem_wr --> Axi4Master -> m_axi_*
                                        '-- host_mode
    host bytes <- [UartTx] <----------- HostBridge

Register address map (the bridge's 16-bit word address, hw/link/host_bridge.py): words below
:data:`WINDOW_BASE` (0x8000) go to ``axil`` (word ``i`` at byte ``4 * i``: the accelerator's
registers behind hw/link/axil_csr.py, so host/driver.py's ``EdgeMoeDriver`` works unchanged),
words ``WINDOW_BASE + j`` to Wishbone word ``j`` of ``wb`` (a LiteDRAM core's CSR bus
``wb_ctrl``: CSR byte address ``a`` of its ``csr.json`` is bridge word ``WINDOW_BASE + a / 4``).
The bridge's memory commands become AXI4 bursts on ``m_axi_*`` (INCR, in-order, 1-bit ID;
hw/link/axi4_master.py), its HOST_MODE command drives ``host_mode``.

Everything is in one clock domain (``sync``; boards/dram_bridge.py renames it to the DRAM
core's user clock). With ``divisor`` the link is the UART pins ``uart_rx`` / ``uart_tx``,
without it the byte streams ``rx`` / ``tx``. ``link_error``: UART framing error or overrun;
``bus_error``: a register bus answered with an error (both sticky).

Latency / throughput: the UART line rate (one byte per cycle on the streams); a register access
adds the bus's own latency (LiteX's CSR bus 2 cycles, hw/link/axil_csr.py 2-3 cycles).
"""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.link.axi4_master import Axi4Master, axi_master_ports
from hw.link.axil_csr import AXIL_ADDR_BITS
from hw.link.csr_bus_masters import (AxiLiteMaster, WishboneMaster, WB_DATA_BITS,
                                     axil_master_ports, wishbone_signature)
from hw.link.csr_window import CsrWindow
from hw.link.host_bridge import REG_ADDR_BYTES, HostBridge, handshake_csr_signature
from hw.link.uart import BYTE_BITS, connect_byte_link

__all__ = ["HostLink", "WINDOW_BASE", "BRIDGE_ADDR_BITS"]

BRIDGE_ADDR_BITS = 8 * REG_ADDR_BYTES
WINDOW_BASE = 1 << (BRIDGE_ADDR_BITS - 1)


class HostLink(wiring.Component):
    """See the module docstring.

    Parameters
    ----------
    cfg : Config
        The memory bus (``mem_addr_bits``, ``mem_bytes_per_cycle``: the AXI4 data width,
        ``mem_max_burst``).
    divisor : int or None
        Clock cycles per UART bit; None: byte streams.
    wb_addr_bits : int
        Width of ``wb.adr`` (LiteDRAM's ``wb_ctrl_adr``: 30).
    rx_fifo_depth : int
    axi_data_width : int, optional
        Data width of ``m_axi_*`` in bits (default the memory beat; a power-of-two multiple of
        it, see :class:`~hw.link.axi4_master.Axi4Master`).

    Ports
    -----
    rx / tx or uart_rx / uart_tx; host_mode : Out(1); axil : Out(AXI4-Lite master);
    wb : Out(wishbone_signature(wb_addr_bits)); m_axi_* : the AXI4 master;
    link_error, bus_error : Out(1).
    """

    def __init__(self, cfg: Config, divisor: int | None = None, wb_addr_bits: int = 30,
                 rx_fifo_depth: int = 16, axi_data_width: int | None = None):
        self.cfg, self.divisor, self.rx_fifo_depth = cfg, divisor, rx_fifo_depth
        self.mem = Axi4Master(cfg, axi_data_width)
        self._axi_ports = axi_master_ports(cfg, data_bits=self.mem.axi_data_width)
        self.wb_addr_bits = wb_addr_bits
        self.bridge = HostBridge(cfg, handshake_csr_signature(BRIDGE_ADDR_BITS, WB_DATA_BITS))
        ports = {"host_mode": Out(1), "link_error": Out(1), "bus_error": Out(1),
                 "axil": Out(wiring.Signature(axil_master_ports(AXIL_ADDR_BITS))),
                 "wb": Out(wishbone_signature(wb_addr_bits)), **self._axi_ports}
        if divisor is None:
            ports.update(rx=In(stream.Signature(BYTE_BITS)), tx=Out(stream.Signature(BYTE_BITS)))
        else:
            ports.update(uart_rx=In(1, init=1), uart_tx=Out(1, init=1))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        m.submodules.rx_fifo = rxf = fifo.SyncFIFOBuffered(width=BYTE_BITS,
                                                           depth=self.rx_fifo_depth)
        m.submodules.window = window = CsrWindow(BRIDGE_ADDR_BITS, WB_DATA_BITS)
        m.submodules.regs = regs = AxiLiteMaster(window.window_bit, AXIL_ADDR_BITS)
        m.submodules.wb = wb = WishboneMaster(window.window_bit, self.wb_addr_bits)
        m.submodules.mem = mem = self.mem
        connect_byte_link(m, self, rxf, bridge)
        wiring.connect(m, bridge.csr, window.bus)
        wiring.connect(m, window.low, regs.bus)
        wiring.connect(m, window.high, wb.bus)
        wiring.connect(m, regs.axil, wiring.flipped(self.axil))
        wiring.connect(m, wb.wb, wiring.flipped(self.wb))
        wiring.connect(m, bridge.mem_rd, mem.rd)
        wiring.connect(m, bridge.mem_wr, mem.wr)
        for name, member in self._axi_ports.items():
            mine, theirs = getattr(self, name), getattr(mem, name)
            m.d.comb += (mine.eq(theirs) if member.flow == Out else theirs.eq(mine))
        m.d.comb += [self.host_mode.eq(bridge.host_mode), mem.clear_error.eq(0),
                     self.bus_error.eq(regs.bus_error | wb.bus_error)]
        return m
