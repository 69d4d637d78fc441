"""BridgedDramSystem: a DRAM board's system behind the UART host bridge.

:class:`~hw.link.host_link.HostLink` (the host bridge with its three buses) on
:class:`~boards.dram_system.DramSystem` (the accelerator, the AXI switch and the LiteDRAM core):

- bridge registers below 0x8000 -> ``s_axil_*``: the accelerator's registers, as on the
  on-chip-memory build, so host/driver.py's ``EdgeMoeDriver`` runs unchanged;
- bridge registers from :data:`LITEDRAM_CSR_WINDOW` (0x8000) on -> ``wb_ctrl_*``: LiteDRAM CSR
  byte address ``a`` is bridge word ``0x8000 + a / 4``; host/litedram_init.py initialises and
  calibrates the DRAM through it (:func:`host.litedram_init.bridge_csr`);
- the bridge's memory commands -> ``s_host_*`` (the DRAM, once HOST_MODE has handed the port to
  the host; the core holds them off until ``init_done``), HOST_MODE -> ``host_mode``.

Clocks: the link runs on the LiteDRAM core's user clock (``DramSystem.user_clk`` /
``user_rst``, 50 MHz on the ECPIX-5), like the accelerator, so ``divisor`` is cycles of that
clock per UART bit; the design's ``sync`` clock only feeds the core (the board oscillator; the
simulation clock for the ``sim`` core, where it is also the user clock). No clock-domain
crossing.

Ports: ``rx`` / ``tx`` (``divisor=None``) or ``uart_rx`` / ``uart_tx``; ``irq``, ``init_done``,
``init_error``, ``link_error``, ``bus_error`` and the core's DRAM pads not given in ``pads``.
"""
from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config, with_changes

from hw.link.axi_switch import BACKWARD, FORWARD
from hw.link.host_link import WINDOW_BASE, HostLink

from boards.dram_system import HOST_PREFIX, DramSystem, core_beat_bits

__all__ = ["BridgedDramSystem", "LITEDRAM_CSR_WINDOW"]

LITEDRAM_CSR_WINDOW = WINDOW_BASE
_WB = ("adr", "dat_w", "dat_r", "sel", "cyc", "stb", "we", "ack", "err", "cti", "bte")
_INSIDE = ("host_mode", "host_owner", "user_clk", "user_rst")


class BridgedDramSystem(wiring.Component):
    """HostLink + DramSystem in the core's user clock domain (see the module docstring).

    Parameters
    ----------
    cfg : Config
    board : str
    sim : bool
    divisor : int or None
        User-clock cycles per UART bit; None: byte streams.
    pads : dict, optional
        DramSystem's ``pads``.
    accelerator : bool
        False: DramSystem without the accelerator (DRAM bring-up: init, memory test and
        weight loading over the UART with nothing else in the FPGA); the link's AXI master is
        then as wide as the core's port whatever ``cfg`` says.
    """

    def __init__(self, cfg: Config, board: str, *, sim: bool = False,
                 divisor: int | None = None, pads: dict | None = None,
                 accelerator: bool = True):
        if not accelerator:
            # the bring-up design: the link's AXI master as wide as the core's port
            cfg = with_changes(cfg, hw={"mem_bytes_per_cycle": core_beat_bits(board, cfg) // 8})
        self.cfg = cfg
        self.system = DramSystem(cfg, board, sim=sim, pads=pads, accelerator=accelerator)
        self.core = self.system.core
        # the link's AXI master is as wide as the core's port (it up-sizes a narrower beat)
        self.link = HostLink(cfg, divisor, wb_addr_bits=self.system.core_ports["wb_ctrl_adr"][1],
                             axi_data_width=core_beat_bits(board, cfg))
        sysm = self.system.signature.members
        self._outside = {n: sysm[n] for n in sysm
                         if not n.startswith(("s_axil_", f"{HOST_PREFIX}_", "wb_ctrl_"))
                         and n not in _INSIDE}
        linkm = self.link.signature.members
        link_ports = {n: linkm[n] for n in ("rx", "tx", "uart_rx", "uart_tx", "link_error",
                                            "bus_error") if n in linkm}
        super().__init__({**self._outside, **link_ports})

    def elaborate(self, platform):
        m = Module()
        system, link = self.system, self.link
        m.submodules.system = system
        # "user", not DramSystem's own local "dram": Amaranth wants distinct domain names
        m.domains.user = ClockDomain("user", local=True)
        m.d.comb += [ClockSignal("user").eq(system.user_clk),
                     ResetSignal("user").eq(system.user_rst)]
        m.submodules.link = DomainRenamer("user")(link)
        for name, member in link.axil.signature.members.items():
            self._wire(m, getattr(link.axil, name), getattr(system, f"s_axil_{name}"),
                       member.flow == Out)
        for name in _WB:
            self._wire(m, getattr(link.wb, name), getattr(system, f"wb_ctrl_{name}"),
                       link.wb.signature.members[name].flow == Out)
        for name in (*FORWARD, *BACKWARD):
            self._wire(m, getattr(link, f"m_axi_{name}"), getattr(system, f"{HOST_PREFIX}_{name}"),
                       name in FORWARD)
        m.d.comb += system.host_mode.eq(link.host_mode)
        for name, member in self._outside.items():
            self._wire(m, getattr(self, name), getattr(system, name), member.flow == In)
        if "rx" in self.signature.members:
            wiring.connect(m, wiring.flipped(self.rx), link.rx)
            wiring.connect(m, link.tx, wiring.flipped(self.tx))
        else:
            m.d.comb += [link.uart_rx.eq(self.uart_rx), self.uart_tx.eq(link.uart_tx)]
        m.d.comb += [self.link_error.eq(link.link_error), self.bus_error.eq(link.bus_error)]
        return m

    @staticmethod
    def _wire(m, a, b, a_drives: bool):
        """``b`` = ``a`` if ``a`` drives, else ``a`` = ``b`` (different widths: cut / extend)."""
        m.d.comb += (b.eq(a) if a_drives else a.eq(b))
