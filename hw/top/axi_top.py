"""EdgeMoeAxiTop: the accelerator with standard AMBA ports, for vendor block designs.

:class:`~hw.top.top.EdgeMoeTop` with its burst memory bus behind an
:class:`~hw.link.axi4_master.Axi4Master` (``m_axi_*``: AXI4 master, data width
``8 * cfg.hw.mem_bytes_per_cycle``) and its register port behind an
:class:`~hw.link.axil_csr.AxiLiteCsr` (``s_axil_*``: AXI4-Lite slave, 32-bit data, register
``i`` at byte offset ``4 * i``), plus ``irq`` (level: the accelerator has stopped with done,
error or a bus error; cleared by writing CTRL bit 1). The port names follow Vivado's interface
inference, so a module reference in a block design shows two bus interfaces, a clock, a reset
and an interrupt.

Errors: the AXI master's sticky ``bus_error`` (some RRESP / BRESP was not OKAY) drives the
accelerator's ``bus_error`` input, so a frame that sees one ends with STATUS.error and error
code 5; the BUS_ERROR register (word 15) tells it apart from a failed write of the native bus.

Clock and reset: Amaranth's ``sync`` domain, i.e. the Verilog ports ``clk`` and ``rst``
(synchronous, active high; hold for a few cycles). Every register of the design, the bridges'
FIFOs included, returns to its initial value; the AXI valids are low during and after reset.
Latency / throughput: the accelerator's, plus the bridges' slices (about two cycles per memory
request and one per read beat).
"""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from sim.config import Config

from hw.link.axi4_master import Axi4Master, axi_master_ports
from hw.link.axil_csr import AxiLiteCsr, axil_slave_ports
from hw.top.top import EdgeMoeTop

__all__ = ["EdgeMoeAxiTop"]


class EdgeMoeAxiTop(wiring.Component):
    """EdgeMoeTop + AXI4 memory master + AXI4-Lite control slave + interrupt.

    Parameters
    ----------
    cfg : Config
    axi_data_width : int, optional
        The AXI master's data width in bits (default the memory beat; a power-of-two multiple
        of it, see :class:`~hw.link.axi4_master.Axi4Master`).

    Ports
    -----
    m_axi_* : the AXI4 master (:func:`~hw.link.axi4_master.axi_master_ports`).
    s_axil_* : the AXI4-Lite slave (:func:`~hw.link.axil_csr.axil_slave_ports`).
    irq : Out(1)
        Level interrupt: not busy, and done | error | bus error.
    """

    def __init__(self, cfg: Config, axi_data_width: int | None = None):
        self.cfg = cfg
        self.top = EdgeMoeTop(cfg)
        self.axi = Axi4Master(cfg, axi_data_width)
        self.axil = AxiLiteCsr(cfg)
        self._axi_ports = axi_master_ports(cfg, data_bits=self.axi.axi_data_width)
        super().__init__({**self._axi_ports, **axil_slave_ports(),
                          "irq": wiring.Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        m.submodules.axi = axi = self.axi
        m.submodules.axil = axil = self.axil
        wiring.connect(m, top.mem_rd, axi.rd)
        wiring.connect(m, top.mem_wr, axi.wr)
        wiring.connect(m, axil.csr, top.csr)
        self._forward(m, axi, self._axi_ports)
        self._forward(m, axil, axil_slave_ports())
        m.d.comb += [axil.busy.eq(top.busy), axil.done.eq(top.done), axil.error.eq(top.error),
                     axil.bus_error.eq(axi.bus_error), axi.clear_error.eq(axil.clear_error),
                     top.bus_error.eq(axi.bus_error), self.irq.eq(axil.irq)]
        return m

    def _forward(self, m, inner, names):
        """Connect the bridge's flat AXI signals to this component's ports of the same name."""
        for name in names:
            if self.signature.members[name].flow == wiring.Out:
                m.d.comb += getattr(self, name).eq(getattr(inner, name))
            else:
                m.d.comb += getattr(inner, name).eq(getattr(self, name))
