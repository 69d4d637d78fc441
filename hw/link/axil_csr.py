"""AxiLiteCsr: an AXI4-Lite slave in front of the top level's register port, and the interrupt.

The register port (hw/top/csr.py, :func:`~hw.top.csr.csr_signature`) is word addressed with a
read latency of :data:`~hw.top.csr.CSR_READ_LATENCY` cycles (the address is needed in the first
only); this slave maps register ``i`` at byte offset ``4 * i`` of a 4 KiB
window (``s_axil_awaddr`` / ``araddr`` are :data:`AXIL_ADDR_BITS` wide; bits 0-1 are ignored).
Data is 32 bits. It adds one register of its own, :data:`AXIL_REGISTERS` (``BUS_ERROR`` at word
15, unused by the register map: bit 0 is the AXI master's sticky bus error). Other unmapped
words read 0 and ignore writes; every response is OKAY.

One transaction at a time, which is all a register port needs. A write is taken when AWVALID and
WVALID are both high (AWREADY and WREADY rise together, in the same cycle: the slave waits for
both, as AXI allows), becomes a one-cycle ``csr.we``, then BVALID is held until BREADY. WSTRB is
ignored: registers are written whole. A read is taken (ARREADY) when no write is; the register
port returns the value ``CSR_READ_LATENCY`` cycles later, which is registered onto RDATA with RVALID until RREADY.
A write wins when both arrive in the same cycle. All outputs are registers or the FSM state.

Interrupt: ``irq`` = ``~busy & (done | error | bus_error)``, a level: the accelerator has
stopped, at the end of its program or on an error. Memory errors (code 5) are flagged while the
frame runs on to its end, so ``irq`` waits for that end instead of firing mid-frame (a host
that reads the output then sees the whole frame written). Writing CTRL with bit 1 (clear) drops
``done`` / ``error`` in the accelerator and pulses ``clear_error`` (which clears the AXI
master's ``bus_error``), so the interrupt clears; a CTRL start pulses it too, so a new frame
starts without a stale bus error.

Reset: the ``sync`` domain's (synchronous, active high): no transaction in flight.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config, ConfigError

from hw.top.csr import CSR_READ_LATENCY, REGISTERS, csr_bits, csr_signature

__all__ = ["AxiLiteCsr", "AXIL_ADDR_BITS", "AXIL_REGISTERS", "axil_slave_ports"]

AXIL_ADDR_BITS = 12
AXIL_REGISTERS = {"BUS_ERROR": 15}


def axil_slave_ports(prefix: str = "s_axil") -> dict:
    """The AXI4-Lite slave's signals (name -> member), slave view; no PROT."""
    a = AXIL_ADDR_BITS
    sig = {"awaddr": In(a), "awvalid": In(1), "awready": Out(1),
           "wdata": In(32), "wstrb": In(4), "wvalid": In(1), "wready": Out(1),
           "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
           "araddr": In(a), "arvalid": In(1), "arready": Out(1),
           "rdata": Out(32), "rresp": Out(2), "rvalid": Out(1), "rready": In(1)}
    return {f"{prefix}_{k}": v for k, v in sig.items()}


class AxiLiteCsr(wiring.Component):
    """AXI4-Lite slave (32-bit, byte offset 4 * register index) driving the register port.

    Parameters
    ----------
    cfg : Config
        The register width :func:`~hw.top.csr.csr_bits` must be at most 32.

    Ports
    -----
    s_axil_* : the AXI4-Lite slave channels (:func:`axil_slave_ports`).
    csr : Out :func:`~hw.top.csr.csr_signature`
        To the accelerator's register port.
    busy, done, error, bus_error : In(1)
        Accelerator status and the AXI master's sticky error (``BUS_ERROR`` register).
    clear_error : Out(1)
        One-cycle pulse on a CTRL write with the start or clear bit.
    irq : Out(1)
        ``~busy & (done | error | bus_error)``.
    """

    def __init__(self, cfg: Config):
        if csr_bits(cfg) > 32:
            raise ConfigError(f"AxiLiteCsr: registers must be at most 32 bits wide, got "
                              f"{csr_bits(cfg)}")
        self.cfg = cfg
        overlap = set(AXIL_REGISTERS.values()) & set(REGISTERS.values())
        assert not overlap, f"AxiLiteCsr: word {overlap} is in the register map"
        super().__init__({**axil_slave_ports(), "csr": Out(csr_signature(cfg)),
                          "busy": In(1), "done": In(1), "error": In(1), "bus_error": In(1),
                          "clear_error": Out(1), "irq": Out(1)})

    def elaborate(self, platform):
        m = Module()
        n_regs = 1 << (AXIL_ADDR_BITS - 2)
        last_reg = max(REGISTERS.values())
        aw_word = self.s_axil_awaddr[2:]
        ar_word = self.s_axil_araddr[2:]
        read_word = Signal(range(n_regs), name="read_word")
        read_wait = Signal(range(CSR_READ_LATENCY), name="read_wait")
        m.d.comb += [self.s_axil_bresp.eq(0), self.s_axil_rresp.eq(0),
                     self.irq.eq(~self.busy & (self.done | self.error | self.bus_error))]
        with m.FSM(name="axil"):
            with m.State("IDLE"):
                write = self.s_axil_awvalid & self.s_axil_wvalid
                with m.If(write):
                    m.d.comb += [self.s_axil_awready.eq(1), self.s_axil_wready.eq(1),
                                 self.csr.addr.eq(aw_word), self.csr.wdata.eq(self.s_axil_wdata),
                                 self.csr.we.eq(aw_word <= last_reg)]
                    ctrl = aw_word == REGISTERS["CTRL"]
                    m.d.comb += self.clear_error.eq(ctrl & self.s_axil_wdata[:2].any())
                    m.d.sync += self.s_axil_bvalid.eq(1)
                    m.next = "WRITE_RESP"
                with m.Elif(self.s_axil_arvalid):
                    m.d.comb += [self.s_axil_arready.eq(1), self.csr.addr.eq(ar_word)]
                    m.d.sync += [read_word.eq(ar_word), read_wait.eq(CSR_READ_LATENCY - 1)]
                    m.next = "READ_WAIT"
            with m.State("WRITE_RESP"):
                with m.If(self.s_axil_bready):
                    m.d.sync += self.s_axil_bvalid.eq(0)
                    m.next = "IDLE"
            with m.State("READ_WAIT"):
                # csr.rdata is the register addressed in the IDLE cycle CSR_READ_LATENCY ago
                with m.If(read_wait != 0):
                    m.d.sync += read_wait.eq(read_wait - 1)
                with m.Elif(read_word == AXIL_REGISTERS["BUS_ERROR"]):
                    m.d.sync += [self.s_axil_rdata.eq(self.bus_error), self.s_axil_rvalid.eq(1)]
                    m.next = "READ_RESP"
                with m.Elif(read_word <= last_reg):
                    m.d.sync += [self.s_axil_rdata.eq(self.csr.rdata), self.s_axil_rvalid.eq(1)]
                    m.next = "READ_RESP"
                with m.Else():
                    m.d.sync += [self.s_axil_rdata.eq(0), self.s_axil_rvalid.eq(1)]
                    m.next = "READ_RESP"
            with m.State("READ_RESP"):
                with m.If(self.s_axil_rready):
                    m.d.sync += self.s_axil_rvalid.eq(0)
                    m.next = "IDLE"
        return m
