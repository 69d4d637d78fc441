"""Amaranth wrappers of LiteDRAM's simulation core (``generate(board, sim=True)``) for the
Verilator tests in tests/boards/test_litedram_sim.py.

- :class:`LiteDramSimTop`: the core itself, every port forwarded under its own name
  (``user_port_axi_0_*``, ``wb_ctrl_*``, ``init_done``...), the core's ``clk`` on the ``sync``
  clock; cocotbext-axi's AxiMaster drives the AXI port (it insists on 3-bit AxSIZE, which
  LiteDRAM declares 4 bits wide: the wrapper's are 3 bits, zero-extended into the core).
- :class:`Axi4MasterOnLiteDram`: the project's :class:`~hw.link.axi4_master.Axi4Master` on the
  core's AXI port (the bridge a board top uses), with the accelerator's burst bus (``rd`` /
  ``wr``) and the core's ``wb_ctrl`` port outside. AxADDR keeps the core's low address bits,
  the core's 4-bit AxSIZE and ID take the master's zero-extended, RID / BID are cut to the
  master's width.

The simulation core has no reset input (LiteX's sim CRG resets it on the first cycle); the
wrappers' ``rst`` resets only Amaranth logic.
"""
from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from boards.litedram_core import AXI_PORT, CORE_NAME, core_ports
from hw.link.axi4_master import Axi4Master, axi_master_ports
from hw.mem.bus import MemReadSignature, MemWriteSignature
from sim.config import Config

__all__ = ["LiteDramSimTop", "Axi4MasterOnLiteDram", "AXI_PREFIX"]

AXI_PREFIX = f"user_port_{AXI_PORT}"
_INTERNAL = ("clk", "sim_trace")       # driven by the wrapper
_SIZE_BITS = 3                          # AXI's AxSIZE


def _is_size(name: str) -> bool:
    return name in (f"{AXI_PREFIX}_awsize", f"{AXI_PREFIX}_arsize")


def _instance(ports: dict, sigs: dict) -> Instance:
    kw = {"i_clk": ClockSignal(), "i_sim_trace": 0}
    for name, (d, _) in ports.items():
        if name not in _INTERNAL:
            kw[("i_" if d == "input" else "o_") + name] = sigs[name]
    return Instance(CORE_NAME, **kw)


class LiteDramSimTop(wiring.Component):
    """The simulation core with its ports forwarded (see the module docstring), except that
    AWSIZE / ARSIZE are AXI's 3 bits (LiteDRAM declares 4; the top bit is tied to 0)."""

    def __init__(self, core: Path):
        self.ports = core_ports(core)
        super().__init__({name: (In if d == "input" else Out)(_SIZE_BITS if _is_size(name) else w)
                          for name, (d, w) in self.ports.items() if name not in _INTERNAL})

    def elaborate(self, platform):
        m = Module()
        sigs = {}
        for name, (d, w) in self.ports.items():
            if name not in _INTERNAL:
                mine = getattr(self, name)
                sigs[name] = Cat(mine, Const(0, w - len(mine))) if _is_size(name) else mine
        m.submodules.core = _instance(self.ports, sigs)
        return m


class Axi4MasterOnLiteDram(wiring.Component):
    """Axi4Master (burst bus -> AXI4) on the simulation core's AXI user port; ``axi_data_width``
    (bits) as for Axi4Master: the port's width over a narrower memory beat."""

    def __init__(self, cfg: Config, core: Path, axi_data_width: int | None = None):
        self.cfg, self.axi_data_width = cfg, axi_data_width
        self.ports = core_ports(core)
        ctrl = {name: (In if d == "input" else Out)(w) for name, (d, w) in self.ports.items()
                if name.startswith("wb_ctrl_") or name.startswith("init_")}
        super().__init__({"rd": In(MemReadSignature(cfg)), "wr": In(MemWriteSignature(cfg)),
                          "bus_error": Out(1), **ctrl})

    def elaborate(self, platform):
        m = Module()
        m.submodules.axi = axi = Axi4Master(self.cfg, self.axi_data_width)
        wiring.connect(m, wiring.flipped(self.rd), axi.rd)
        wiring.connect(m, wiring.flipped(self.wr), axi.wr)
        m.d.comb += [self.bus_error.eq(axi.bus_error), axi.clear_error.eq(0)]
        sigs = {n: getattr(self, n) for n in self.ports if n.startswith(("wb_ctrl_", "init_"))}
        for name, member in axi_master_ports(self.cfg, data_bits=axi.axi_data_width).items():
            core_name = f"{AXI_PREFIX}_{name.removeprefix('m_axi_')}"
            width = self.ports[core_name][1]
            mine = getattr(axi, name)
            if member.flow == Out:          # master -> core: cut or zero-extend
                sigs[core_name] = (mine[:width] if len(mine) >= width
                                   else Cat(mine, Const(0, width - len(mine))))
            else:                           # core -> master
                sigs[core_name] = wire = Signal(width, name=core_name)
                m.d.comb += mine.eq(wire)
        # core inputs the master does not drive
        for name, (d, w) in self.ports.items():
            if name.startswith(AXI_PREFIX) and name not in sigs and d == "input":
                sigs[name] = 0
        # core outputs nobody reads
        for name, (d, w) in self.ports.items():
            if name not in sigs and name not in _INTERNAL and d == "output":
                sigs[name] = Signal(w, name=name)
        m.submodules.core = _instance(self.ports, sigs)
        return m
