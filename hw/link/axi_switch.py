"""AxiSwitch2to1: two AXI4 masters share one AXI4 slave port, one at a time, by a mode input.

Dataflow. Two slave ports, ``s_acc_*`` (the accelerator's :class:`~hw.link.axi4_master.Axi4Master`)
and ``s_host_*`` (a host that loads the memory image and reads the results), and one master
port ``m_*`` (a memory controller's AXI port, e.g. LiteDRAM's user port). The register
``owner`` (0: accelerator, 1: host) selects which slave port is connected to ``m_*``: its AW,
W, AR channels and its BREADY / RREADY are passed through; the memory's AWREADY, WREADY,
ARREADY, BVALID, RVALID reach the owner only (the other port sees them all low, so its
transactions simply wait); B / R payloads go to both (harmless: their valids are gated).
Everything is combinational except ``owner`` and the bookkeeping counters: zero latency, full
throughput, the owner's timing seen unchanged by the memory.

Switching rule. ``owner`` follows ``host_mode``, but changes only on a cycle where the owner's
side is idle:

- no read burst in flight (every AR handshake has had its R beat with RLAST),
- no write in flight (every AW handshake has had its B; as many W bursts completed as AWs
  were accepted, so no W burst sent ahead of its AW; no W burst half sent),
- and the owner asserts none of ARVALID, AWVALID, WVALID (a valid once shown to the memory
  must stay until its handshake, so it may not vanish under an owner change).

The new owner drives ``m_*`` from the next cycle on. Nothing arbitrates or preempts: a master
that keeps issuing requests keeps the port, and the other master waits (its requests are not
dropped, only held, as AXI allows). ``owner`` is an output, so a host can poll that it got the
port. Counters are :data:`PENDING_BITS` wide: at most ``2**PENDING_BITS - 1`` bursts of one
kind in flight (far above any memory controller's queue).

All widths (address, data, ID) are the same on the three ports. Reset (``sync``): owner 0,
counters 0.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiSwitch2to1", "axi_ports", "FORWARD", "BACKWARD", "PENDING_BITS"]

PENDING_BITS = 16

# master -> slave signals (without the prefix) and slave -> master signals, by width kind
FORWARD = {"awid": "id", "awaddr": "addr", "awlen": 8, "awsize": 3, "awburst": 2, "awvalid": 1,
           "wdata": "data", "wstrb": "strb", "wlast": 1, "wvalid": 1, "bready": 1,
           "arid": "id", "araddr": "addr", "arlen": 8, "arsize": 3, "arburst": 2, "arvalid": 1,
           "rready": 1}
BACKWARD = {"awready": 1, "wready": 1, "bid": "id", "bresp": 2, "bvalid": 1, "arready": 1,
            "rid": "id", "rdata": "data", "rresp": 2, "rlast": 1, "rvalid": 1}
_VALIDS = ("awready", "wready", "bvalid", "arready", "rvalid")     # gated for the non-owner


def axi_ports(prefix: str, *, addr_bits: int, data_bits: int, id_bits: int,
              master: bool) -> dict:
    """An AXI4 port's signals (name -> member) in the master's (``master=True``) or the slave's
    view; no LOCK, CACHE, PROT, QOS."""
    width = {"id": id_bits, "addr": addr_bits, "data": data_bits, "strb": data_bits // 8}
    fwd, bwd = (Out, In) if master else (In, Out)
    sig = {k: fwd(width.get(w, w)) for k, w in FORWARD.items()}
    sig.update({k: bwd(width.get(w, w)) for k, w in BACKWARD.items()})
    return {f"{prefix}_{k}": v for k, v in sig.items()}


class AxiSwitch2to1(wiring.Component):
    """Two AXI4 masters on one AXI4 slave, selected by ``host_mode`` when idle (see above).

    Parameters
    ----------
    addr_bits, data_bits, id_bits : int
        The widths of all three ports.

    Ports
    -----
    s_acc_* : AXI4 slave (the accelerator's master connects here; it owns the port after reset).
    s_host_* : AXI4 slave (the host's master).
    m_* : AXI4 master (to the memory).
    host_mode : In(1)
        Requested owner: 1 host, 0 accelerator.
    owner : Out(1)
        Current owner (follows ``host_mode`` once the current owner is idle).
    """

    def __init__(self, *, addr_bits: int, data_bits: int, id_bits: int):
        if data_bits % 8 or data_bits <= 0:
            raise ValueError(f"AxiSwitch2to1: data_bits must be a positive multiple of 8, "
                             f"got {data_bits}")
        w = dict(addr_bits=addr_bits, data_bits=data_bits, id_bits=id_bits)
        super().__init__({**axi_ports("s_acc", master=False, **w),
                          **axi_ports("s_host", master=False, **w),
                          **axi_ports("m", master=True, **w),
                          "host_mode": In(1), "owner": Out(1)})

    def _port(self, prefix: str, name: str):
        return getattr(self, f"{prefix}_{name}")

    def elaborate(self, platform):
        m = Module()
        owner = self.owner
        for name in FORWARD:
            m.d.comb += self._port("m", name).eq(
                Mux(owner, self._port("s_host", name), self._port("s_acc", name)))
        for name in BACKWARD:
            value = self._port("m", name)
            for prefix, mine in (("s_acc", ~owner), ("s_host", owner)):
                m.d.comb += self._port(prefix, name).eq(value & mine if name in _VALIDS
                                                        else value)
        idle = self._idle(m)
        with m.If(idle & (self.host_mode != owner)):
            m.d.sync += owner.eq(self.host_mode)
        return m

    def _idle(self, m):
        """Bookkeeping of the bursts in flight on ``m_*``; returns the 'owner is idle' signal."""
        def fire(ch):
            return self._port("m", f"{ch}valid") & self._port("m", f"{ch}ready")

        reads = Signal(PENDING_BITS)          # ARs without their RLAST beat
        writes = Signal(PENDING_BITS)         # AWs without their B
        w_minus_aw = Signal(signed(PENDING_BITS + 1))   # completed W bursts - accepted AWs
        w_open = Signal()                     # a W burst has started and not reached WLAST
        r_done = fire("r") & self._port("m", "rlast")
        w_done = fire("w") & self._port("m", "wlast")
        m.d.sync += [reads.eq(reads + fire("ar") - r_done),
                     writes.eq(writes + fire("aw") - fire("b")),
                     w_minus_aw.eq(w_minus_aw + w_done - fire("aw"))]
        with m.If(fire("w")):
            m.d.sync += w_open.eq(~self._port("m", "wlast"))
        idle = Signal()
        m.d.comb += idle.eq((reads == 0) & (writes == 0) & (w_minus_aw == 0) & ~w_open
                            & ~self._port("m", "arvalid") & ~self._port("m", "awvalid")
                            & ~self._port("m", "wvalid"))
        return idle
