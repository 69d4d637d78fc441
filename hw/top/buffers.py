"""On-chip activation buffers and the stream reader that feeds units from them.

:class:`BufferBank` holds the physical memories of :mod:`hw.top.geometry` (X, XN, Q, K, V, H),
one ``lib.memory.Memory`` each, ``G`` activations per word, one read and one write port each.
Feeders and writers reach them through *client* ports (:func:`read_port_signature`,
:func:`write_port_signature`) that name the memory per access; the bank ORs the clients onto
the memories. At most two descriptors run at a time (a background ATTENTION beside a concurrent
GEMM), they touch disjoint memories per port (sim.memory_image.check_concurrency), and no
descriptor reads (or writes) one memory through two clients, so at most one client addresses a
memory in a cycle; a client drives its enables only while its descriptor runs, so the OR is a
mux.

- read: ``en`` with ``mem`` / ``addr`` in cycle t, ``data`` (the whole word) valid in t + 1
  (the bank remembers which memory the client read);
- write: ``en`` with ``mem`` / ``addr`` / ``data`` / ``mask`` (one bit per activation lane) in
  cycle t, written at the edge.

:class:`ReadPipe` turns requests ``(mem, addr, off, tag)`` into a stream of ``L`` activations
(lane group ``off`` of the word) with their tag, through a small FIFO: a request is accepted when
the FIFO has room for it, so the read port runs at one word per cycle and the output stream obeys
the stream rules (payload from the FIFO, held while waiting). With ``ports = 2`` one request
reads the same word of two memories (the attention unit's K and V chunk).

Latency: request handshake -> output valid 2 cycles (read, FIFO write); throughput one beat per
cycle with ``depth >= 3``.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.top.geometry import N_MEMS, TopGeometry

__all__ = ["read_port_signature", "write_port_signature", "BufferBank", "ReadPipe",
           "lane_select", "lane_write"]


def read_port_signature(geo: TopGeometry) -> wiring.Signature:
    """A buffer read client (master view)."""
    return wiring.Signature({
        "mem": Out(range(N_MEMS)),
        "addr": Out(range(geo.max_depth)),
        "en": Out(1),
        "data": In(unsigned(geo.word_bits)),
    })


def write_port_signature(geo: TopGeometry) -> wiring.Signature:
    """A buffer write client (master view)."""
    return wiring.Signature({
        "mem": Out(range(N_MEMS)),
        "addr": Out(range(geo.max_depth)),
        "en": Out(1),
        "mask": Out(geo.G),
        "data": Out(unsigned(geo.word_bits)),
    })


def _group(geo: TopGeometry, off, lanes: int):
    """``off`` cut to the bits that can select one of ``G / lanes`` lane groups."""
    bits = (geo.G // lanes - 1).bit_length()
    return off[:bits] if bits else Const(0, 1)


def lane_select(geo: TopGeometry, word, off, lanes: int):
    """Lane group ``off`` (``lanes`` activations) of a buffer word, as a flat value."""
    a = geo.cfg.num.act.bits
    groups = geo.G // lanes
    if groups == 1:
        return word
    return Array(word[g * lanes * a:(g + 1) * lanes * a] for g in range(groups))[
        _group(geo, off, lanes)]


def lane_write(geo: TopGeometry, port, mem, addr, off, lanes: int, value, en):
    """Statements writing ``lanes`` activations (flat ``value``) at lane group ``off``."""
    groups = geo.G // lanes
    ones = (1 << lanes) - 1
    # A table of the masks, not ``ones << (off * lanes)``: a variable shift is as wide as its
    # largest shift, which grows exponentially with the width of the shift amount.
    mask = Array(Const(ones << (g * lanes), geo.G) for g in range(groups))[_group(geo, off, lanes)]
    return [port.mem.eq(mem), port.addr.eq(addr), port.en.eq(en),
            port.data.eq(value.replicate(groups) if groups > 1 else value),
            port.mask.eq(mask if groups > 1 else ones)]


class BufferBank(wiring.Component):
    """The physical activation memories with ``n_read`` / ``n_write`` client ports.

    Parameters
    ----------
    geo : TopGeometry
        Memory depths (``geo.depths``) and word width (``G`` activations).
    n_read, n_write : int
        Number of read / write clients.

    Ports
    -----
    rd : In :func:`read_port_signature`, array of ``n_read``
        ``en`` / ``mem`` / ``addr`` in cycle t, the whole word on ``data`` in t + 1.
    wr : In :func:`write_port_signature`, array of ``n_write``
        ``en`` / ``mem`` / ``addr`` / ``data`` / ``mask`` in cycle t, written at the edge.

    Attributes
    ----------
    latency : int
        Read latency in cycles (1). One read and one write per memory and cycle.
    """

    latency = 1

    def __init__(self, geo: TopGeometry, n_read: int, n_write: int):
        self.geo = geo
        super().__init__({
            "rd": In(read_port_signature(geo)).array(n_read),
            "wr": In(write_port_signature(geo)).array(n_write),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self.geo
        a = geo.cfg.num.act.bits
        rdata = []
        for i, depth in enumerate(geo.depths):
            mem = Memory(shape=unsigned(geo.word_bits), depth=depth, init=[])
            m.submodules[f"mem{i}"] = mem
            rp = mem.read_port()
            wp = mem.write_port(granularity=a)
            raddr, ren, waddr, wdata, wen = 0, 0, 0, 0, 0
            for c in self.rd:
                sel = c.en & (c.mem == i)
                raddr = raddr | Mux(sel, c.addr, 0)
                ren = ren | sel
            for c in self.wr:
                sel = c.en & (c.mem == i)
                waddr = waddr | Mux(sel, c.addr, 0)
                wdata = wdata | Mux(sel, c.data, 0)
                wen = wen | Mux(sel, c.mask, 0)
            m.d.comb += [rp.addr.eq(raddr), rp.en.eq(ren), wp.addr.eq(waddr), wp.data.eq(wdata),
                         wp.en.eq(wen)]
            rdata.append(rp.data)
        for j, c in enumerate(self.rd):
            last = Signal(range(N_MEMS), name=f"rd{j}_mem")
            with m.If(c.en):
                m.d.sync += last.eq(c.mem)
            m.d.comb += c.data.eq(Array(rdata)[last])
        return m


class ReadPipe(wiring.Component):
    """Buffer reads -> stream of ``lanes`` activations (see the module docstring).

    Parameters
    ----------
    geo : TopGeometry
    lanes : int
        Activations per output beat (a lane group of a ``G``-activation word).
    tag_shape : shape
        Carried from each request to its output beat.
    ports : int
        Memories read per request (the output ``data`` is then an array of ``ports`` lane
        groups, one per memory).
    depth : int
        Output FIFO depth (``>= 3`` for one beat per cycle).

    Ports
    -----
    req : In stream ``{mem, addr, off, tag}``
        Accepted while the FIFO has room for it and every read in flight.
    port : Out :func:`read_port_signature`, array of ``ports``
        The buffer reads, one per request.
    o : Out stream ``{data, tag}``
        One beat per request, in request order.

    Attributes
    ----------
    latency : int
        Cycles from a request's accept edge to its output beat being valid (2: read, FIFO write).
    """

    latency = 2

    def __init__(self, geo: TopGeometry, lanes: int, tag_shape=unsigned(1), ports: int = 1,
                 depth: int = 4):
        self.geo, self.lanes, self.ports, self.depth = geo, lanes, ports, depth
        act = signed(geo.cfg.num.act.bits)
        row = data.ArrayLayout(act, lanes)
        self.req_layout = data.StructLayout({
            "mem": data.ArrayLayout(range(N_MEMS), ports), "addr": range(geo.max_depth),
            "off": range(max(2, geo.G // lanes)), "tag": tag_shape})
        self.out_layout = data.StructLayout({
            "data": row if ports == 1 else data.ArrayLayout(row, ports), "tag": tag_shape})
        super().__init__({
            "req": In(stream.Signature(self.req_layout)),
            "port": Out(read_port_signature(geo)).array(ports),
            "o": Out(stream.Signature(self.out_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        geo, L = self.geo, self.lanes
        m.submodules.fifo = q = fifo.SyncFIFO(width=self.out_layout.size, depth=self.depth)
        inflight = Signal()
        off = Signal.like(self.req.payload.off)
        tag = Signal.like(self.req.payload.tag)
        take = self.req.valid & self.req.ready
        m.d.comb += self.req.ready.eq(q.level + inflight < self.depth)
        for i, p in enumerate(self.port):
            m.d.comb += [p.mem.eq(self.req.payload.mem[i]), p.addr.eq(self.req.payload.addr),
                         p.en.eq(take)]
        m.d.sync += inflight.eq(take)
        with m.If(take):
            m.d.sync += [off.eq(self.req.payload.off), tag.eq(self.req.payload.tag)]
        out = self.out_layout(q.w_data)
        words = [lane_select(geo, p.data, off, L) for p in self.port]
        m.d.comb += [q.w_en.eq(inflight), out.tag.eq(tag),
                     out.data.eq(words[0] if self.ports == 1 else Cat(*words)),
                     self.o.valid.eq(q.r_rdy), self.o.payload.eq(q.r_data), q.r_en.eq(self.o.ready)]
        return m
