"""Handshake register port -> Wishbone (classic) and -> AXI4-Lite: the host bridge's buses.

The host bridge (hw/link/host_bridge.py) holds ``we`` / ``re`` of a
:func:`~hw.link.host_bridge.handshake_csr_signature` port until ``ack``, one access at a time.
These two masters carry such an access onto the buses of a DRAM board (boards/dram_bridge.py):

- :class:`WishboneMaster`: a Wishbone classic cycle on LiteDRAM's CSR port ``wb_ctrl`` (word
  address, 32-bit data, all four byte selects; ``cti`` / ``bte`` 0). Combinational: ``cyc`` =
  ``stb`` = the strobe, and ``ack`` (or ``err``) comes straight back, so the cycle is exactly
  as long as the slave makes it (LiteX's CSR bridge: 2 cycles) and ends when the bridge drops
  the strobe the cycle after ``ack``. ``err`` acknowledges too and sets the sticky
  ``bus_error``;
- :class:`AxiLiteMaster`: the accelerator's AXI4-Lite register slave (hw/link/axil_csr.py):
  register ``i`` at byte ``4 * i``. A write raises AWVALID and WVALID together (each drops
  once taken), waits for BVALID (BREADY high), then acknowledges; a read raises ARVALID until
  ARREADY, then takes RDATA with RVALID and acknowledges. A non-OKAY BRESP / RRESP sets
  ``bus_error``. Latency: the slave's plus one cycle per phase (registered valids).

Resources: the Wishbone master is wires and one flip-flop; the AXI4-Lite master a 4-state FSM and
two flags.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.link.host_bridge import handshake_csr_signature

__all__ = ["WishboneMaster", "AxiLiteMaster", "wishbone_signature", "WB_DATA_BITS"]

WB_DATA_BITS = 32


def wishbone_signature(addr_bits: int) -> wiring.Signature:
    """Wishbone classic, master view, with LiteX's member names (``adr`` is a word address)."""
    return wiring.Signature({"adr": Out(addr_bits), "dat_w": Out(WB_DATA_BITS),
                             "dat_r": In(WB_DATA_BITS), "sel": Out(WB_DATA_BITS // 8),
                             "cyc": Out(1), "stb": Out(1), "we": Out(1), "ack": In(1),
                             "err": In(1), "cti": Out(3), "bte": Out(2)})


class WishboneMaster(wiring.Component):
    """Handshake register port -> Wishbone classic (see the module docstring).

    Parameters
    ----------
    addr_bits : int
        Word address bits of both ports.
    wb_addr_bits : int
        Width of the Wishbone ``adr`` (LiteDRAM's ``wb_ctrl_adr``: 30); zero-extended.

    Ports
    -----
    bus : In(handshake_csr_signature(addr_bits, 32)); wb : Out(wishbone_signature(wb_addr_bits))
    bus_error : Out(1), sticky: a cycle ended with ``err``.
    """

    def __init__(self, addr_bits: int, wb_addr_bits: int = 30):
        super().__init__({"bus": In(handshake_csr_signature(addr_bits, WB_DATA_BITS)),
                          "wb": Out(wishbone_signature(wb_addr_bits)), "bus_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        bus, wb = self.bus, self.wb
        strobe = bus.we | bus.re
        m.d.comb += [wb.adr.eq(bus.addr), wb.dat_w.eq(bus.wdata), wb.sel.eq(~0), wb.we.eq(bus.we),
                     wb.cyc.eq(strobe), wb.stb.eq(strobe),
                     bus.ack.eq(wb.ack | wb.err), bus.rdata.eq(wb.dat_r)]
        with m.If(strobe & wb.err):
            m.d.sync += self.bus_error.eq(1)
        return m


def axil_master_ports(addr_bits: int) -> dict:
    """An AXI4-Lite master's signals (master view), the names of hw/link/axil_csr.py's slave
    without its ``s_axil_`` prefix."""
    return {"awaddr": Out(addr_bits), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_bits), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1)}


class AxiLiteMaster(wiring.Component):
    """Handshake register port -> AXI4-Lite master (see the module docstring).

    Parameters
    ----------
    addr_bits : int
        Word address bits of ``bus``.
    axil_addr_bits : int
        Byte address bits of the AXI4-Lite port (word ``i`` at byte ``4 * i``, cut to fit).

    Ports
    -----
    bus : In(handshake_csr_signature(addr_bits, 32)); axil : Out(AXI4-Lite master);
    bus_error : Out(1), sticky: a response was not OKAY.
    """

    def __init__(self, addr_bits: int, axil_addr_bits: int):
        super().__init__({"bus": In(handshake_csr_signature(addr_bits, 32)),
                          "axil": Out(wiring.Signature(axil_master_ports(axil_addr_bits))),
                          "bus_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        bus, ax = self.bus, self.axil
        byte_addr = bus.addr << 2
        aw_done, w_done = Signal(name="aw_done"), Signal(name="w_done")
        m.d.comb += [ax.awaddr.eq(byte_addr), ax.araddr.eq(byte_addr), ax.wdata.eq(bus.wdata),
                     ax.wstrb.eq(~0), bus.rdata.eq(ax.rdata)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                with m.If(bus.we):
                    m.next = "WRITE"
                with m.Elif(bus.re):
                    m.next = "READ"
            with m.State("WRITE"):
                m.d.comb += [ax.awvalid.eq(~aw_done), ax.wvalid.eq(~w_done)]
                with m.If(ax.awvalid & ax.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(ax.wvalid & ax.wready):
                    m.d.sync += w_done.eq(1)
                with m.If((aw_done | ax.awready) & (w_done | ax.wready)):
                    m.next = "WRITE_RESP"
            with m.State("WRITE_RESP"):
                m.d.comb += [ax.bready.eq(1), bus.ack.eq(ax.bvalid)]
                with m.If(ax.bvalid):
                    m.d.sync += self.bus_error.eq(self.bus_error | (ax.bresp != 0))
                    m.next = "IDLE"
            with m.State("READ"):
                m.d.comb += ax.arvalid.eq(1)
                with m.If(ax.arready):
                    m.next = "READ_DATA"
            with m.State("READ_DATA"):
                m.d.comb += [ax.rready.eq(1), bus.ack.eq(ax.rvalid)]
                with m.If(ax.rvalid):
                    m.d.sync += self.bus_error.eq(self.bus_error | (ax.rresp != 0))
                    m.next = "IDLE"
        return m
