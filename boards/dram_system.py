"""DramSystem: the accelerator (EdgeMoeAxiTop) on a board's LiteDRAM core, host access by a switch.

Dataflow::

    s_axil_* (registers) ----------------------------> EdgeMoeAxiTop --m_axi--+
    s_host_* (host AXI4: load the image, read results) ---------------------+-> AxiSwitch2to1
    host_mode / host_owner  ------------------------------------------------'        |
    wb_ctrl_* (LiteDRAM's CSRs: the init sequence) -> litedram_core <-- user_port_axi_0

- :class:`~hw.top.axi_top.EdgeMoeAxiTop` ``(cfg)``: the accelerator, its AXI4 master for memory
  and its AXI4-Lite register slave (forwarded as ``s_axil_*``, and ``irq``);
- :class:`~hw.link.axi_switch.AxiSwitch2to1`: ``host_mode`` = 1 hands LiteDRAM's AXI port to
  ``s_host_*``, 0 to the accelerator; the owner changes only once the current owner has nothing
  in flight (no burst outstanding, no W burst half sent, no valid raised), ``host_owner`` says
  who has it. A host sets ``host_mode`` only while no frame runs (the driver's
  ``set_host_mode`` around its memory accesses): an accelerator request made in host mode just
  waits;
- the LiteDRAM core made by ``boards.litedram_core.generate(board, sim, cfg)`` as an
  ``Instance`` of its Verilog module ``litedram_core`` (the Verilog file must be handed to the
  simulator or synthesis tool with this design's: :attr:`DramSystem.core`). ``wb_ctrl_*``,
  ``init_done`` / ``init_error`` and (board core) the DRAM pads are forwarded under the core's
  own names and with the directions its Verilog declares (LiteX declares the bidirectional DQ /
  DQS pads ``input``: a board top must wire them to the pins as inout); LiteDRAM's init
  sequence (docs/boards.md) runs over ``wb_ctrl``.

Widths. The accelerator's memory beat (``8 * cfg.hw.mem_bytes_per_cycle``) must divide the
core's AXI port width by a power of two (:func:`check_beat`): the ULX3S core (64 bits) takes
the ``tiny`` configs as they are; the ECPIX-5 core is 128 bits (its controller word, see
boards/litedram_core.py) and takes 4-, 8- and 16-byte beats (``m3vit-ecp5-85f``, ``tiny-ecp5``):
the accelerator's and the host link's :class:`~hw.link.axi4_master.Axi4Master` are built with
``axi_data_width`` = the port, so they widen bursts, split R beats and pack W beats with
strobes themselves (LiteDRAM's own AXI up-converter is not used: it hangs writes, see
docs/boards.md). Otherwise :class:`~sim.config.ConfigError` names both widths. The switch and
``s_host_*`` are the port's width. Addresses are cut to the port's width
(the accelerator's ``mem_addr_bits`` alias modulo the DRAM size); AxSIZE and the 1-bit IDs are
zero-extended to LiteDRAM's 4 bits, RID / BID cut back (LiteDRAM answers with the request's ID).

Clocks. One clock domain, no clock-domain crossing: the accelerator and the switch run on the
core's ``user_clk`` with ``user_rst`` (OR the design's ``rst`` for the simulation core, which
has no reset input). The design's ``clk`` / ``rst`` (Amaranth ``sync``) feed the core's
``clk`` / ``rst``: the board oscillator (ULX3S: ``user_clk`` is that 25 MHz clock; ECPIX-5: the
core's PLL makes a 50 MHz ``user_clk`` from 100 MHz) or, for the ``sim`` core, the
simulation clock, which is then ``user_clk`` itself. Running the accelerator on another clock
needs an AXI clock-domain crossing, not built.

Latency / throughput: LiteDRAM's (docs/boards.md) plus the Axi4Master's slices; the switch adds
no cycle.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Instance, Module
from amaranth.hdl import ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config, ConfigError

from hw.fabric.global_buffer import on_global
from hw.link.axi4_master import ID_BITS
from hw.link.axi_switch import AxiSwitch2to1, axi_ports, FORWARD, BACKWARD
from hw.link.axil_csr import axil_slave_ports
from hw.top.axi_top import EdgeMoeAxiTop

from boards.litedram_core import AXI_PORT, CORE_NAME, core_config, core_ports, generate

__all__ = ["DramSystem", "HOST_PREFIX", "core_beat_bits", "check_beat"]

HOST_PREFIX = "s_host"
_CORE_AXI = f"user_port_{AXI_PORT}"
_CORE_CLOCKS = ("clk", "rst", "sim_trace", "user_clk", "user_rst")   # driven / used here


def core_beat_bits(board: str, cfg: Config) -> int:
    """Width of the AXI user port of ``board``'s LiteDRAM core made for ``cfg`` (no generator
    run: the port width is in the core's config)."""
    return core_config(board, cfg)["user_ports"][AXI_PORT]["data_width"]


def check_beat(board: str, cfg: Config, who: str) -> int:
    """The core's AXI port width in bits; ConfigError (one line, prefixed ``who``) unless the
    config's memory beat divides it by a power of two (Axi4Master's up-sizer ratios)."""
    want, got = 8 * cfg.hw.mem_bytes_per_cycle, core_beat_bits(board, cfg)
    ratio = got // want
    if got % want or ratio & (ratio - 1):
        raise ConfigError(
            f"{who}: the LiteDRAM AXI port of {board} is {got} bits but config {cfg.name!r} has "
            f"a {want}-bit memory beat (mem_bytes_per_cycle {cfg.hw.mem_bytes_per_cycle}); the "
            f"beat must divide the port by a power of two: mem_bytes_per_cycle = "
            f"{', '.join(str(got // 8 >> k) for k in range((got // 8).bit_length()))}")
    return got


class DramSystem(wiring.Component):
    """EdgeMoeAxiTop + AxiSwitch2to1 + LiteDRAM core, in the core's user clock domain.

    Parameters
    ----------
    cfg : Config
    board : str
        A board with a LiteDRAM config (boards/litedram/<board>.yml).
    sim : bool
        Use LiteDRAM's simulation core (DRAM + PHY model) instead of the board's.
    accelerator : bool
        False: no accelerator and no switch (a DRAM bring-up design): the host port goes
        straight to the core, the register slave takes writes and reads 0, ``host_owner`` is 1.
    pads : dict, optional
        ``{core port: (kind, io value)}``: core pads wired straight to the board's I/O ports
        (``kind`` ``"o"``, ``"i"`` or ``"io"``, the Instance port kind; ``io`` for the DQ / DQS
        pads LiteX declares ``input`` but drives through its own bidirectional cells).

    Ports
    -----
    s_axil_*, irq : the accelerator's register slave and interrupt (hw/top/axi_top.py).
    s_host_* : AXI4 slave for the host (addresses ``cfg.hw.mem_addr_bits``, data the core's
        AXI port width, 1-bit ID).
    host_mode : In(1); host_owner : Out(1)
        Request and current owner of the DRAM port (1 = host).
    wb_ctrl_*, init_done, init_error, DRAM pads : the core's, by its names (pads given in
        ``pads`` are wired to those I/O ports instead and are not ports of this component).
    user_clk, user_rst : Out(1)
        The clock and reset everything here runs on (the core's user clock and reset): a
        design around this one (the host bridge, boards/dram_bridge.py) runs on them too.

    Attributes
    ----------
    core : Path
        The LiteDRAM core's Verilog file.
    """

    def __init__(self, cfg: Config, board: str, *, sim: bool = False, pads: dict | None = None,
                 accelerator: bool = True):
        got = (check_beat(board, cfg, "DramSystem") if accelerator
               else core_beat_bits(board, cfg))
        self.cfg, self.board, self.sim, self.accelerator = cfg, board, sim, accelerator
        self.core = generate(board, sim=sim, cfg=cfg, quiet=True)
        self.core_ports = core_ports(self.core)
        self.pads = dict(pads or {})
        unknown = sorted(set(self.pads) - set(self.core_ports))
        if unknown:
            raise ValueError(f"DramSystem: {', '.join(unknown)} are not ports of the "
                             f"{board} LiteDRAM core")
        self._width = dict(addr_bits=cfg.hw.mem_addr_bits, data_bits=got, id_bits=ID_BITS)
        outside = {name: (Out if d == "output" else In)(w)
                   for name, (d, w) in self.core_ports.items()
                   if not name.startswith(_CORE_AXI) and name not in _CORE_CLOCKS
                   and name not in self.pads}
        super().__init__({**axil_slave_ports(), "irq": Out(1),
                          "user_clk": Out(1), "user_rst": Out(1),
                          **axi_ports(HOST_PREFIX, master=False, **self._width),
                          "host_mode": In(1), "host_owner": Out(1), **outside})

    def elaborate(self, platform):
        m = Module()
        user_clk, user_rst = Signal(), Signal()
        m.domains.dram = ClockDomain("dram", local=True)
        if self.sim:
            reset = user_rst | ResetSignal("sync")
        else:
            # The board's reset reaches every register of the accelerator: over the ECP5's
            # global network, not general routing (hw/fabric/global_buffer.py).
            reset = on_global(m, user_rst, "ecp5", "reset_global")
        m.d.comb += [ClockSignal("dram").eq(user_clk), ResetSignal("dram").eq(reset),
                     self.user_clk.eq(user_clk), self.user_rst.eq(reset)]

        if not self.accelerator:
            self._registers_stub(m)
            host = SimpleNamespace(**{f"m_{n}": getattr(self, f"{HOST_PREFIX}_{n}")
                                      for n in (*FORWARD, *BACKWARD)})
            m.d.comb += self.host_owner.eq(1)
            m.submodules.core = self._core(m, host, user_clk, user_rst)
            return m
        m.submodules.accel = accel = DomainRenamer("dram")(
            EdgeMoeAxiTop(self.cfg, axi_data_width=self._width["data_bits"]))
        m.submodules.switch = switch = DomainRenamer("dram")(AxiSwitch2to1(**self._width))
        for name in (*axil_slave_ports(), "irq"):
            self._wire(m, self, name, accel, name)
        for name in (*FORWARD, *BACKWARD):
            self._wire(m, accel, f"m_axi_{name}", switch, f"s_acc_{name}")
            self._wire(m, self, f"{HOST_PREFIX}_{name}", switch, f"s_host_{name}")
        m.d.comb += [switch.host_mode.eq(self.host_mode), self.host_owner.eq(switch.owner)]
        m.submodules.core = self._core(m, switch, user_clk, user_rst)
        return m

    def _registers_stub(self, m):
        """Without the accelerator: an AXI4-Lite slave that takes every write and reads 0
        (OKAY), so a host can tell the link works; ``irq`` 0."""
        p = "s_axil_"
        g = {n.removeprefix(p): getattr(self, n) for n in axil_slave_ports()}
        bvalid, rvalid = Signal(name="stub_bvalid"), Signal(name="stub_rvalid")
        take_w = g["awvalid"] & g["wvalid"] & ~bvalid
        take_r = g["arvalid"] & ~rvalid
        m.d.comb += [g["awready"].eq(take_w), g["wready"].eq(take_w), g["bvalid"].eq(bvalid),
                     g["arready"].eq(take_r), g["rvalid"].eq(rvalid), self.irq.eq(0)]
        m.d.dram += [bvalid.eq((bvalid & ~g["bready"]) | take_w),
                     rvalid.eq((rvalid & ~g["rready"]) | take_r)]

    @staticmethod
    def _wire(m, a, a_name, b, b_name):
        """Connect port ``a_name`` of ``a`` and ``b_name`` of ``b``, driven by whichever side
        has it as an output (``a`` is ``self`` or a sibling; ``b`` a submodule)."""
        sa, sb = getattr(a, a_name), getattr(b, b_name)
        if b.signature.members[b_name].flow == Out:
            m.d.comb += sa.eq(sb)
        else:
            m.d.comb += sb.eq(sa)

    def _core(self, m, switch, user_clk, user_rst):
        kw = {"i_clk": ClockSignal("sync"), "o_user_clk": user_clk, "o_user_rst": user_rst}
        if "rst" in self.core_ports:
            kw["i_rst"] = ResetSignal("sync")
        if "sim_trace" in self.core_ports:
            kw["i_sim_trace"] = 0
        for name, (d, w) in self.core_ports.items():
            if name.startswith(_CORE_AXI):
                mine = getattr(switch, f"m_{name.removeprefix(_CORE_AXI + '_')}")
                if d == "output":
                    wire = Signal(w, name=name)
                    m.d.comb += mine.eq(wire)      # RID / BID cut to the switch's width
                    kw[f"o_{name}"] = wire
                else:                              # cut the address, widen AxSIZE and IDs
                    kw[f"i_{name}"] = (mine[:w] if len(mine) >= w
                                       else Cat(mine, Const(0, w - len(mine))))
            elif name in self.pads:
                kw[f"{self.pads[name][0]}_{name}"] = self.pads[name][1]
            elif name not in _CORE_CLOCKS:
                kw[("o_" if d == "output" else "i_") + name] = getattr(self, name)
        return Instance(CORE_NAME, **kw)
