"""RegisteredReadPort: a ``lib.memory.Memory`` read port with a registered output (and,
optionally, a registered address), behind one clock enable.

Latency: ``2 + address_reg`` cycles from ``addr`` to ``data`` (the memory's synchronous read,
then the output register; the address register adds one in front); throughput one read per
enabled cycle. ``en`` advances every stage together: when it is low the pipeline holds, so the
word addressed on the k-th enabled cycle appears after the k + latency-th enabled edge.

Why: a DP16KD read without its output register costs ~5.8 ns clock-to-data on a speed-6 ECP5
(~1 ns with it), and what follows a buffer read (lane muxes, the PE array's operand registers)
then starts the cycle late. The output register here is plain fabric logic on every target:
Yosys' ``synth_ecp5`` maps the memory to DP16KD with ``REGMODE="NOREG"`` and leaves this
register in slices (still a win: the slow clock-to-data ends at a flip-flop placed next to the
block, not after the lane muxes). :class:`hw.fabric.ecp5_bram.Ecp5Bram` puts it inside the
block RAM instead, with the same ports and latency.

The output register has no reset (neither has the DP16KD's, as :class:`Ecp5Bram` wires it):
its content before the first read is undefined, and a wide buffer's read data fans out no
reset net.

Parameters: ``memory`` (the :class:`amaranth.lib.memory.Memory`; the read port is taken from
it at construction), ``address_reg`` (bool), ``domain`` (default ``"sync"``),
``transparent_for`` (write ports whose same-cycle writes the read sees, as for
``Memory.read_port``).
Ports: ``addr`` (in), ``en`` (in, default 1), ``data`` (out, the memory's shape).
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisteredReadPort"]


class RegisteredReadPort(wiring.Component):
    def __init__(self, memory, *, address_reg: bool = False, domain: str = "sync",
                 transparent_for=()):
        if domain == "comb":
            self._MustUse__silence = True   # no "created but never used" warning as well
            raise ValueError("RegisteredReadPort: the read port must be synchronous, "
                             "got domain 'comb'")
        self.address_reg, self.domain = bool(address_reg), domain
        self.latency = 2 + self.address_reg
        self._port = memory.read_port(domain=domain, transparent_for=transparent_for)
        super().__init__({"addr": In(range(memory.depth)), "en": In(1, init=1),
                          "data": Out(memory.shape)})

    def elaborate(self, platform):
        m = Module()
        port, sync = self._port, m.d[self.domain]
        addr = self.addr
        if self.address_reg:
            addr = Signal.like(self.addr, name="read_addr")
            with m.If(self.en):
                sync += addr.eq(self.addr)
        read_data = Signal.like(self.data, name="read_data", reset_less=True)
        with m.If(self.en):
            sync += read_data.eq(port.data)
        m.d.comb += [port.addr.eq(addr), port.en.eq(self.en), self.data.eq(read_data)]
        return m
