"""On-chip activation buffers and the stream reader that feeds units from them.

:class:`BufferBank` holds the physical memories of :mod:`hw.top.geometry` (X, XN, Q, K, V, H),
``G`` activations per word, one read and one write port each.
Feeders and writers reach them through *client* ports (:func:`read_port_signature`,
:func:`write_port_signature`) that name the memory per access; the bank ORs the clients onto
the memories. At most two descriptors run at a time (a background ATTENTION beside a concurrent
GEMM), they touch disjoint memories per port (sim.memory_image.check_concurrency), and no
descriptor reads (or writes) one memory through two clients, so at most one client addresses a
memory in a cycle; a client drives its enables only while its descriptor runs, so the OR is a
mux.

- read: ``en`` with ``mem`` / ``addr`` in cycle t, ``data`` (the whole word) valid in t + 3
  (the bank remembers which memory the client read);
- write: ``en`` with ``mem`` / ``addr`` / ``data`` / ``mask`` (one bit per activation lane) in
  cycle t, through a register, written at the edge after t + 1: a read requested in t + 1 or
  later sees it (its address register delays it by the same cycle).

:class:`ReadPipe` turns requests ``(mem, addr, off, tag)`` into a stream of ``L`` activations
(lane group ``off`` of the word) with their tag, through a small FIFO: a request is accepted when
the FIFO has room for it, so the read port runs at one word per cycle and the output stream obeys
the stream rules (payload from the FIFO, held while waiting). With ``ports = 2`` one request
reads the same word of two memories (the attention unit's K and V chunk). With ``gelu`` each
request carries a ``gelu`` bit and the lanes pass a :class:`~hw.array.gelu.GeluLane` each (or
its bypass, with the same latency) between the read and the FIFO: free-running stages that the
FIFO's credits cover, so they add ``GeluLane.latency`` cycles and nothing else
(``cfg.hw.gelu_site`` "act": fc2 applies fc1's GELU to its activation beats).

Each read is four registers deep (``BufferBank.latency`` = 4): the clients' port mux ends at a
read-address register, the block RAM reads, its output is registered, and each memory's word
is registered once more before the clients' memory muxes. Why: on a speed-6 ECP5 a DP16KD read
without its output register costs ~5.8 ns clock-to-data (~1 ns with it), and the port mux in
front of the address pins was a long path of its own (docs/boards.md). The last register
takes a memory's row mux (an ECP5 memory of several rows of blocks, hw/fabric/ecp5_bram.py)
off the clients' read paths: block output register -> row mux -> word register -> the
client's memory mux. The pipeline runs free (no read enable), so a read's data comes a fixed 4 cycles later
whatever the clients do next, and no enable fans out to the blocks. How a memory is built follows
``cfg.hw.bram_target``:

- ``"generic"``: a ``lib.memory.Memory`` with a :class:`~hw.fabric.bram.RegisteredReadPort`
  (what pysim, Verilator and other vendors' tools get); a read of a word written in the same
  cycle returns the old word, and Yosys adds logic to emulate that;
- ``"ecp5"``: one :class:`~hw.fabric.ecp5_bram.Ecp5Bram` per memory, written in activation
  lanes (byte enables; two 18-bit lanes share a 512 x 36 block where that takes fewer blocks,
  and the cls token's words past the last whole row of blocks sit in LUT RAM), the output
  register inside the DP16KD and no collision logic: a read requested in the cycle a write of
  the same word is requested is undefined. No descriptor reads a word while writing it (checked
  by tests/system/test_buffer_collisions.py, which poisons such reads in a whole frame).

Latency: request handshake -> output valid ``BufferBank.latency + 1`` = 5 cycles (read, FIFO
write); throughput one beat per cycle with ``depth >= BufferBank.latency + 2`` (the default):
a request is accepted only if the FIFO has room beside every read in flight.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.array.gelu import GeluLane
from hw.fabric.bram import RegisteredReadPort
from hw.fabric.ecp5_bram import Ecp5Bram
from hw.mem.credit_fifo import CreditFIFO
from hw.top.geometry import N_MEMS, TopGeometry
from sim.cycles.frame import BUFFER_READ_LATENCY as _MODEL_READ_LATENCY

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
        Memory depths (``geo.depths``) and word width (``G`` activations); ``geo.cfg.hw.
        bram_target`` picks how each memory is built (see the module docstring).
    n_read, n_write : int
        Number of read / write clients.
    read_mems : list of tuples of int, optional
        The memories each read client can read (default: every memory). A client with one
        memory gets that memory's word with no mux, and a memory's address mux leaves out the
        clients that never read it: the attention unit's Q, K and V feeders each read one
        memory, and three 288-bit 6:1 muxes are ~2.6k LUT4 on the ECP5 M3ViT build. The
        client must not ask for another memory (it would read this set's first).
    write_mems : list of tuples of int, optional
        The memories each write client can write (default: every memory). A memory's write
        mux takes only the clients that can write it (with one such client, no mux at all); a
        client's write to another memory is dropped.

    Ports
    -----
    rd : In :func:`read_port_signature`, array of ``n_read``
        ``en`` / ``mem`` / ``addr`` in cycle t, the whole word on ``data`` in t + ``latency``.
    wr : In :func:`write_port_signature`, array of ``n_write``
        ``en`` / ``mem`` / ``addr`` / ``data`` / ``mask`` in cycle t, registered, written at
        the edge after t + 1 (visible to reads requested from t + 1 on).

    Attributes
    ----------
    latency : int
        Read latency in cycles (4: address register, block RAM read, output register, the
        memory's word register). One read and one write per memory and cycle.
    """

    latency = 4

    def __init__(self, geo: TopGeometry, n_read: int, n_write: int,
                 read_mems: list[tuple[int, ...]] | None = None,
                 write_mems: list[tuple[int, ...]] | None = None):
        self.geo = geo
        all_mems = tuple(range(N_MEMS))
        self.read_mems = [tuple(x) for x in read_mems] if read_mems else [all_mems] * n_read
        self.write_mems = [tuple(x) for x in write_mems] if write_mems else [all_mems] * n_write
        for what, sets, n, given in (("read_mems", self.read_mems, n_read, read_mems),
                                     ("write_mems", self.write_mems, n_write, write_mems)):
            if len(sets) != n or not all(x and set(x) <= set(all_mems) for x in sets):
                self._MustUse__silence = True   # no "created but never used" warning as well
                raise ValueError(f"BufferBank: {what} must give each of the {n} clients a "
                                 f"non-empty set of memories 0..{N_MEMS - 1}, got {given}")
        super().__init__({
            "rd": In(read_port_signature(geo)).array(n_read),
            "wr": In(write_port_signature(geo)).array(n_write),
        })

    def elaborate(self, platform):
        m = Module()
        rdata = []
        for i, depth in enumerate(self.geo.depths):
            word = Signal(self.geo.word_bits, name=f"mem{i}_rdata")
            m.d.sync += word.eq(self._memory(m, i, depth))
            rdata.append(word)
        for j, c in enumerate(self.rd):
            mems = self.read_mems[j]
            if len(mems) == 1:
                m.d.comb += c.data.eq(rdata[mems[0]])
                continue
            # which memory the client read, ``latency`` cycles ago (free-running, like the read)
            mem = c.mem
            for s in range(self.latency):
                last = Signal(range(N_MEMS), name=f"rd{j}_mem{s + 1}")
                m.d.sync += last.eq(mem)
                mem = last
            m.d.comb += c.data.eq(Array(rdata[i] if i in mems else rdata[mems[0]]
                                        for i in range(N_MEMS))[mem])
        return m

    def _memory(self, m, i, depth):
        """Memory ``i`` behind its client muxes; returns its read data (``latency`` cycles
        after the read's address)."""
        geo = self.geo
        raddr, waddr, wdata, wen = 0, 0, 0, 0
        for c, mems in zip(self.rd, self.read_mems):
            if i in mems:
                hit = c.en if len(mems) == 1 else c.en & (c.mem == i)
                raddr = raddr | Mux(hit, c.addr, 0)
        for c, mems in zip(self.wr, self.write_mems):
            if i not in mems:
                continue
            sel = c.en & (c.mem == i)
            waddr = waddr | Mux(sel, c.addr, 0)
            wdata = wdata | Mux(sel, c.data, 0)
            wen = wen | Mux(sel, c.mask, 0)
        # The port muxes end at the read-address register (``address_reg``): the block RAM's
        # address pins see a flip-flop, and the client's request logic has a whole cycle.
        # The read pipeline runs free (no read enable): the data of a read in cycle t is
        # valid in t + 3 whatever the clients do next, so no enable fans out to the blocks.
        # The write side ends at a register too (address, data, lane enables): the writers'
        # address arithmetic and this mux were the routed builds' critical path into the
        # DP16KD write pins. A write of cycle t lands at the edge after t + 1, the edge at
        # which a read requested in t + 1 is sampled after its address register, so a read
        # requested a cycle after the write still sees it; same-cycle is the collision.
        w_addr = Signal(range(depth), name=f"mem{i}_waddr")
        w_data = Signal(geo.word_bits, name=f"mem{i}_wdata")
        w_en = Signal(geo.G, name=f"mem{i}_wen")
        m.d.sync += [w_addr.eq(waddr), w_data.eq(wdata), w_en.eq(wen)]
        build = self._ecp5_memory if geo.cfg.hw.bram_target == "ecp5" else self._generic_memory
        return build(m, i, depth, raddr, w_addr, w_data, w_en)

    def _generic_memory(self, m, i, depth, raddr, waddr, wdata, wen):
        """Memory ``i`` as a ``lib.memory.Memory`` with a :class:`RegisteredReadPort`
        (read-before-write on a collision; Yosys adds the logic that emulates it)."""
        geo = self.geo
        mem = Memory(shape=unsigned(geo.word_bits), depth=depth, init=[])
        m.submodules[f"mem{i}"] = mem
        wp = mem.write_port(granularity=geo.cfg.num.act.bits)
        m.submodules[f"mem{i}_read"] = rp = RegisteredReadPort(mem, address_reg=True)
        m.d.comb += [rp.addr.eq(raddr), wp.addr.eq(waddr), wp.data.eq(wdata), wp.en.eq(wen)]
        return rp.data

    def _ecp5_memory(self, m, i, depth, raddr, waddr, wdata, wen):
        """Memory ``i`` as one :class:`Ecp5Bram` written in activation lanes (a lane's write
        enable is its bytes' enables), so every read uses the DP16KD's output register; the
        blocks pack two 18-bit lanes per 512 x 36 block where that takes fewer of them."""
        m.submodules[f"mem{i}"] = mem = Ecp5Bram(self.geo.word_bits, depth, address_reg=True,
                                                 write_lanes=self.geo.G)
        m.d.comb += [mem.r_addr.eq(raddr), mem.w_addr.eq(waddr), mem.w_data.eq(wdata),
                     mem.w_en.eq(wen)]
        return mem.r_data


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
        Output FIFO depth (default and minimum for one beat per cycle: the latency + 1).
    gelu : bool
        GELU (or its bypass, per request) on every lane between the read and the FIFO.

    Ports
    -----
    req : In stream ``{mem, addr, off, tag}`` (and ``gelu`` with ``gelu``)
        Accepted while the FIFO has room for it and every read in flight.
    port : Out :func:`read_port_signature`, array of ``ports``
        The buffer reads, one per request.
    o : Out stream ``{data, tag}``
        One beat per request, in request order.

    Attributes
    ----------
    latency : int
        Cycles from a request's accept edge to its output beat being valid
        (``BufferBank.latency`` for the read, ``GeluLane.latency`` with ``gelu``, 1 for the
        FIFO write). The class attribute is the latency without ``gelu``.
    """

    latency = BufferBank.latency + 1

    def __init__(self, geo: TopGeometry, lanes: int, tag_shape=unsigned(1), ports: int = 1,
                 depth: int | None = None, gelu: bool = False):
        self.gelu = bool(gelu)
        if self.gelu and ports != 1:
            raise ValueError("ReadPipe: gelu needs ports=1")
        self.latency = BufferBank.latency + 1 + (GeluLane.latency if self.gelu else 0)
        self.geo, self.lanes, self.ports = geo, lanes, ports
        self.depth = self.latency + 1 if depth is None else depth
        act = signed(geo.cfg.num.act.bits)
        row = data.ArrayLayout(act, lanes)
        req = {"mem": data.ArrayLayout(range(N_MEMS), ports), "addr": range(geo.max_depth),
               "off": range(max(2, geo.G // lanes)), "tag": tag_shape}
        if self.gelu:
            req["gelu"] = unsigned(1)
        self.req_layout = data.StructLayout(req)
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
        # room is reserved per request (``used`` below): a CreditFIFO, r_rdy a register
        m.submodules.fifo = q = CreditFIFO(self.out_layout.size, self.depth)
        take = self.req.valid & self.req.ready
        for i, p in enumerate(self.port):
            m.d.comb += [p.mem.eq(self.req.payload.mem[i]), p.addr.eq(self.req.payload.addr),
                         p.en.eq(take)]
        # Each read's lane group and tag travel beside it, as free-running as the bank's read.
        valid, off, tag = take, self.req.payload.off, self.req.payload.tag
        gelu = self.req.payload.gelu if self.gelu else Const(0)

        def delay(stages, name):
            nonlocal valid, off, tag, gelu
            for s in range(stages):
                valid_s = Signal(name=f"{name}_valid{s + 1}")
                off_s = Signal.like(off, name=f"{name}_off{s + 1}")
                tag_s = Signal.like(tag, name=f"{name}_tag{s + 1}")
                gelu_s = Signal.like(gelu, name=f"{name}_gelu{s + 1}")
                m.d.sync += [valid_s.eq(valid), off_s.eq(off), tag_s.eq(tag), gelu_s.eq(gelu)]
                valid, off, tag, gelu = valid_s, off_s, tag_s, gelu_s

        delay(BufferBank.latency, "read")
        words = [lane_select(geo, p.data, off, L) for p in self.port]
        if self.gelu:
            # The lanes run free like the read: their bypass bit is the request's, taken with
            # the lane's input; the tag and valid ride beside them.
            a = geo.cfg.num.act.bits
            ys = []
            for i in range(L):
                g = m.submodules[f"gelu{i}"] = GeluLane(geo.cfg)
                m.d.comb += [g.en.eq(1), g.x.eq(words[0][i * a:(i + 1) * a]),
                             g.bypass.eq(~gelu)]
                ys.append(g.y)
            words = [Cat(*ys)]
            delay(GeluLane.latency, "gelu")
        # Credit rule: a request is accepted only if the FIFO has room for it beside every read
        # in flight, so the fixed-latency data never meets a full FIFO. ``used`` counts them
        # (requests taken and not yet popped: the FIFO's level plus the reads in flight, the
        # same number cycle for cycle) in a register: summed from the FIFO level and the
        # pipeline's valid bits, the count ran through 5 LUT levels and a carry chain into the
        # GEMM path's activation feeder (ULX3S estimate 11.6 ns).
        used = Signal(range(self.depth + 1))
        m.d.sync += used.eq(used + take - (q.r_rdy & q.r_en))
        m.d.comb += self.req.ready.eq(used < self.depth)
        out = self.out_layout(q.w_data)
        m.d.comb += [q.w_en.eq(valid), out.tag.eq(tag),
                     out.data.eq(words[0] if self.ports == 1 else Cat(*words)),
                     self.o.valid.eq(q.r_rdy), self.o.payload.eq(q.r_data), q.r_en.eq(self.o.ready)]
        return m


assert BufferBank.latency == _MODEL_READ_LATENCY, \
    "sim.cycles.frame.BUFFER_READ_LATENCY is out of date"
