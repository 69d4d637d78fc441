"""GlobalBuffer: drive a high-fanout control net (a domain's reset) from the FPGA's global network.

Combinational (latency 0, no register). Why: Amaranth gives every register of a domain its reset,
so the reset of the M3ViT ECPIX-5 build reached 33,538 flip-flop ``LSR`` pins (plus 83
MULT18X18D ``RST0``) through general routing, and it was router2's most congested net: a net
that touches nearly every slice of the die takes wires in every routing channel. nextpnr-ecp5
promotes only clocks to the global network on its own (``ecp5/globals.cc`` counts clock-port
users), but it routes whatever a ``DCCA`` drives on a global and reaches the slices' ``LSR``
from there (checked on a small design; the global's delay to ``LSR`` was ~5.8 ns, a
synchronous reset has a whole cycle).

- ``target="ecp5"``: one ``DCCA`` :class:`~amaranth.hdl.Instance` (``CE`` = 1) fed by a kept
  ``LUT4`` buffer; the ECP5 has 16 global networks, of which 8 reach fabric inputs (nextpnr's
  ``route_globals``);
- ``target="generic"``: a wire (simulators; vendor tools do their own fanout buffering).

Ports: ``i`` (in), ``o`` (out), one bit each. :func:`on_global` adds one to a module.
"""
from __future__ import annotations

from amaranth.hdl import Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.fabric import TARGETS

__all__ = ["GlobalBuffer", "on_global"]


class GlobalBuffer(wiring.Component):
    """``o = i`` over the global network on ``target="ecp5"`` (module docstring)."""

    def __init__(self, target: str = "generic"):
        if target not in TARGETS:
            self._MustUse__silence = True   # no "created but never used" warning as well
            raise ValueError(f"GlobalBuffer: target must be one of {', '.join(TARGETS)}, "
                             f"got {target!r}")
        self.target = target
        super().__init__({"i": In(1), "o": Out(1)})

    def elaborate(self, platform):
        m = Module()
        if self.target == "ecp5":
            # The DCCA's input comes from a kept LUT4 (Z = A): left to Yosys, the driver may be
            # a PFUMX / L6MUX21 output, from which nextpnr found no route to the DCC's input
            # ("Failed to route arc 0.0 of net ... F5D_SLICE to G_CLKI_TDCC0", a ULX3S build).
            # One LUT more on the path; a slice's F output reaches the DCC as in every build
            # before.
            lut_z = Signal(name="dcca_in")
            m.submodules.lut = Instance("LUT4", p_INIT=Const(0xAAAA, 16), i_A=self.i,
                                        i_B=Const(0), i_C=Const(0), i_D=Const(0), o_Z=lut_z,
                                        a_keep=1)
            m.submodules.dcca = Instance("DCCA", i_CLKI=lut_z, i_CE=Const(1), o_CLKO=self.o)
        else:
            m.d.comb += self.o.eq(self.i)
        return m


def on_global(m: Module, value, target: str, name: str):
    """``value`` as its loads should see it: through a :class:`GlobalBuffer` (submodule ``name``
    of ``m``) on ``target``. Handshakes that must not wait for the global keep ``value``."""
    m.submodules[name] = buf = GlobalBuffer(target=target)
    m.d.comb += buf.i.eq(value)
    return buf.o
