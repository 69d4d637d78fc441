"""Expert-weight prefetcher: ping/pong on-chip weight buffers filled by DMA from external memory.

``ExpertPrefetcher(cfg, table)`` walks the list of chosen experts of a frame (from
:class:`hw.moe.patch_reorder.PatchReorder`, ascending, only experts with tokens) and loads,
for each, first its fc1 and then its fc2 weight matrix (each with its bias vector) into one of
two on-chip buffers, alternating: load j goes to buffer j mod 2. While the consumer (the GEMM
engine) computes with one buffer -- fc1 of expert e, say -- the DMA fills the other with the next
matrix of the list (fc2 of e), then fc1 of the next chosen expert while fc2 of e computes, and so
on.
The unit of double buffering is one matrix, not one expert, so each buffer holds
``max(|fc1|, |fc2|)`` bytes (147 KB for M3ViT instead of 295 KB per expert), which is what makes
an ECP5-85F-sized on-chip budget possible, and fc2's load still hides behind fc1's compute.
Experts that no token chose are never in the list, hence never read. With a row-tiled H
(``hw.hidden_rows`` = T < tokens) an expert with more than T tokens is loaded (fc1, fc2) once per
chunk of at most T tokens, each grant carrying the chunk's count.

Weight addresses come from an **address table** (a memory of ``layers x E x 4`` byte addresses:
fc1 weight, fc1 bias, fc2 weight, fc2 bias of each expert of each MoE layer), initialised at
construction from the weight image's manifest (:func:`expert_address_table`) and writable at run
time through ``tbl_*``; the ``layer`` input selects the MoE layer's rows. Tensors are read whole,
in the image's storage format (K-major weights: K rows of N values; little-endian, storage dtype
of the format), so the image needs no re-tiling for this path.

Ports:

- ``experts``: In stream (:func:`hw.moe.patch_reorder.expert_list_layout`) -- the frame's list.
- ``layer``: In -- MoE layer index, sampled when an expert beat is accepted.
- ``bus``: Out(:func:`hw.mem.bus.MemReadSignature`) -- burst reads (through a :class:`ReadDma`).
- ``grant``: Out stream (:func:`grant_layout`) -- ``expert``, ``count``, ``matrix`` (0 fc1,
  1 fc2), ``last`` (final matrix of the frame): the buffer with that matrix is complete. The
  consumer takes a grant when it starts on that matrix, reads it through ``w_*`` / ``b_*``, and
  pulses ``release`` when done; it must release a grant before taking the next one.
- ``release``: In(1) -- one-cycle pulse: the buffer of the current grant is free again.
- ``w_addr`` / ``w_en`` -> ``w_data``: read ``C = cfg.hw.array_cols`` weights of the granted
  matrix, group ``g`` = values ``[g*C, g*C + C)`` of the K-major matrix (row ``g // (N/C)``,
  columns ``C * (g mod N/C) ...``); ``w_data`` is valid the cycle after ``w_en``, one group per
  cycle, and holds while ``w_en`` is low.
- ``b_addr`` / ``b_en`` -> ``b_data``: C biases (``cfg.num.bias``), same timing.
- ``tbl_addr``, ``tbl_data``, ``tbl_we``: write one address-table entry.
- ``stall_cycles`` (Out counter): cycles the consumer waited for a grant (``grant.ready`` high,
  ``grant.valid`` low) while the frame's list was being worked through -- this includes the
  first load, which nothing can hide. ``fill_cycles``: cycles a weight beat was written.
- ``overrun`` (Out, sticky): a read-data beat came with no load waiting for it (``bus.rd_data``
  is always ready, as the read arbiter asks of its masters); the top level reports it as a
  memory error.

Timing: a load starts (table read, then DMA commands for weights and bias) as soon as its buffer
is free; data is written as it arrives, one beat per cycle, so a load takes about
``mem_latency + bytes / mem_bytes_per_cycle`` cycles; the grant is valid the cycle after the last
beat is written. Requires ``N % C == 0`` for both matrices and beat / row sizes that divide
each other (powers of two in every preset).

Resources: two memories of ``2 x words`` (weights: words of ``max(W, C x storage bytes)``
bytes; biases likewise, each buffer padded to a power-of-two number of words), the address
table (``layers x E x 4`` words), a 3-entry receive FIFO (its head a register) and a 2-deep
done FIFO.
"""
from __future__ import annotations

import math

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.cycles.moe import load_geometry

from hw.common import Loop, accept_job, count_nested
from hw.mem.bus import MemReadSignature, beat_bytes, check_bus_config
from hw.mem.dma import ReadDma
from hw.moe.patch_reorder import expert_list_layout
from hw.moe.router import expert_shape

__all__ = ["ExpertPrefetcher", "grant_layout", "expert_address_table", "prefetch_geometry",
           "TENSORS"]

TENSORS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")


def expert_address_table(cfg: Config, tensors, base: int = 0) -> list[int]:
    """Address-table contents from manifest tensor entries (``[{"name", "offset"}, ...]``).

    Order: MoE layer (ascending block index), expert, then :data:`TENSORS`. ``base`` is the byte
    address at which the image is mapped in external memory.
    """
    off = {t["name"]: int(t["offset"]) for t in tensors}
    out = []
    W = beat_bytes(cfg)
    for blk in cfg.model.moe_blocks:
        for e in range(cfg.model.experts):
            for t in TENSORS:
                name = f"blocks.{blk}.mlp.experts.{e}.{t}"
                if name not in off:
                    raise KeyError(f"expert_address_table: tensor {name} not in the manifest")
                a = base + off[name]
                if a % W:
                    raise ValueError(f"{name} at {a:#x} is not aligned to the {W}-byte beat")
                out.append(a)
    return out


def address_table(cfg: Config, table=None, layers: int | None = None) -> tuple[int, int, list]:
    """(MoE layers, depth, initial entries) of the expert address table of ``layers`` MoE layers
    (default: the model's), ``TENSORS`` entries per expert; ValueError if ``table`` is longer."""
    layers = len(cfg.model.moe_blocks) if layers is None else layers
    depth = layers * cfg.model.experts * len(TENSORS)
    table = list(table or [])
    if len(table) > depth:
        raise ValueError(f"address table has {len(table)} entries, more than {depth}")
    return layers, depth, table


def prefetch_geometry(cfg: Config) -> dict:
    """Sizes of the buffers and of each load (:func:`sim.cycles.moe.load_geometry`, checked)."""
    return load_geometry(cfg)


def grant_layout(cfg: Config) -> data.StructLayout:
    return data.StructLayout({"expert": expert_shape(cfg),
                              "count": unsigned(cfg.model.tokens.bit_length()),
                              "matrix": unsigned(1), "last": unsigned(1)})


class _ReadPort:
    """Group read of one buffer memory: sync word read + registered slice select + unpack."""

    @staticmethod
    def build(m, mem, words_per_buf, slices, unit_bytes, sbytes, fmt_bits, C, addr, en, buf, out,
              name):
        rp = mem.read_port()
        sel = Signal(range(max(slices, 2)), name=f"{name}_slice")
        lg = int(math.log2(slices)) if slices > 1 else 0
        m.d.comb += [rp.addr.eq(buf * words_per_buf + (addr >> lg)), rp.en.eq(en)]
        if slices > 1:
            with m.If(en):
                m.d.sync += sel.eq(addr[:lg])
        chunk = Signal(8 * unit_bytes, name=f"{name}_chunk")
        if slices > 1:
            m.d.comb += chunk.eq(Array(rp.data[8 * unit_bytes * s: 8 * unit_bytes * (s + 1)]
                                       for s in range(slices))[sel])
        else:
            m.d.comb += chunk.eq(rp.data)
        for c in range(C):
            lo = 8 * sbytes * c
            m.d.comb += out[c].eq(chunk[lo: lo + fmt_bits].as_signed())


class ExpertPrefetcher(wiring.Component):
    """Double-buffered expert-weight prefetcher (see the module docstring).

    Parameters
    ----------
    cfg : Config
    table : list[int], optional
        Initial address table (:func:`expert_address_table`); zeros if omitted.
    layers : int, optional
        MoE layers in the table (default ``len(cfg.model.moe_blocks)``).

    Ports
    -----
    experts : In stream, :func:`hw.moe.patch_reorder.expert_list_layout`
        The frame's chosen experts, ascending; ``layer`` is sampled with each beat.
    bus : Out :func:`hw.mem.bus.MemReadSignature`
        Per load: the weight tensor's bursts, then the bias tensor's.
    grant : Out stream, :func:`grant_layout`
        One per complete load (fc1, fc2 of each expert in list order); ``release`` frees it.
    w_addr, w_en -> w_data; b_addr, b_en -> b_data
        Group reads of the granted buffer, data the cycle after ``*_en`` (read latency 1).
    tbl_addr, tbl_data, tbl_we
        Address-table writes.
    stall_cycles, fill_cycles : Out counters
    overrun : Out(1)
        Sticky: a read-data beat arrived with no load waiting for it or no room to complete
        it (cannot happen with the two buffers' accounting; ``bus.rd_data`` is always ready).

    A load takes about ``mem_latency + bytes / mem_bytes_per_cycle`` cycles; its grant is valid
    the cycle after its last beat arrives (each beat is written from registers a cycle after it
    arrives, before the granted buffer can be read).
    """

    def __init__(self, cfg: Config, table=None, layers: int | None = None):
        check_bus_config(cfg)
        self.cfg = cfg
        self.g = prefetch_geometry(cfg)
        self.b_stride = 1 << (self.g["b_words"] - 1).bit_length()    # bias buffer: words
        self.layers, self.table_depth, self.table = address_table(cfg, table, layers)
        n, C, cb = cfg.num, cfg.hw.array_cols, cfg.hw.moe_counter_bits
        self.w_beats_max = max(self.g["w_beats"])
        super().__init__({
            "experts": In(stream.Signature(expert_list_layout(cfg))),
            "layer": In(range(max(self.layers, 2))),
            "bus": Out(MemReadSignature(cfg)),
            "grant": Out(stream.Signature(grant_layout(cfg))),
            "release": In(1),
            "w_addr": In(range(self.g["w_groups"])),
            "w_en": In(1),
            "w_data": Out(data.ArrayLayout(signed(n.weight.bits), C)),
            "b_addr": In(range(self.g["b_groups"])),
            "b_en": In(1),
            "b_data": Out(data.ArrayLayout(signed(n.bias.bits), C)),
            "tbl_addr": In(range(self.table_depth)),
            "tbl_data": In(cfg.hw.mem_addr_bits),
            "tbl_we": In(1),
            "stall_cycles": Out(cb),
            "fill_cycles": Out(cb),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, g = self.cfg, self.g
        abits = cfg.hw.mem_addr_bits
        m.submodules.wmem = wmem = Memory(shape=unsigned(8 * g["ww"]), depth=2 * g["w_words"],
                                          init=[])
        # Each bias buffer starts at a power-of-two word (the bias memory is LUT RAM: a few
        # words of padding), so a buffer's word address is the buffer bit above the word
        # index, not buf x words + word (that add, behind the grant's buffer bit and in front
        # of the LUT-RAM read, was 44 endpoints at 11.7 ns routed on the ULX3S).
        b_stride = self.b_stride
        m.submodules.bmem = bmem = Memory(shape=unsigned(8 * g["wb"]), depth=2 * b_stride,
                                          init=[])
        m.submodules.table = table = Memory(shape=unsigned(abits), depth=self.table_depth,
                                            init=self.table)
        table_rd, table_wr = table.read_port(), table.write_port()
        # A read port's en defaults to 1: hold the looked-up address unless a state reads.
        m.d.comb += table_rd.en.eq(0)
        m.d.comb += [table_wr.addr.eq(self.tbl_addr), table_wr.data.eq(self.tbl_data),
                     table_wr.en.eq(self.tbl_we)]
        m.submodules.dma = dma = ReadDma(cfg, len_bits=max(self.w_beats_max, 2).bit_length())
        wiring.connect(m, dma.rd_req, wiring.flipped(self.bus.rd_req))

        # Load metadata: issued loads waiting for data (recv), and complete loads (done).
        meta = self._meta_layout()
        # The receive FIFO's head is a register (a buffered FIFO): the head's buffer and matrix
        # start the receive logic (write address, beat-count compares, the FIFOs' enables)
        # at flip-flops, not at a LUT-RAM read. An entry becomes readable two cycles after
        # its write, before its first beat can arrive (the issue FSM, the DMA, the request
        # slice and the memory's latency lie between); three entries, so that "room" never
        # waits for the head register (a load holds one of two buffers).
        m.submodules.recv_q = recv_q = fifo.SyncFIFOBuffered(width=meta.size, depth=3)
        m.submodules.done_q = done_q = fifo.SyncFIFO(width=meta.size, depth=2)

        buf_free = Signal(2, init=0b11)
        frame_active = Signal()
        self._issue(m, dma, table_rd, recv_q, buf_free, frame_active)
        self._receive(m, wmem, bmem, recv_q, done_q)
        grant_buf = self._grant(m, done_q, buf_free, frame_active)

        C = cfg.hw.array_cols
        _ReadPort.build(m, wmem, g["w_words"], g["ww"] // g["uw"], g["uw"], g["sw"],
                        cfg.num.weight.bits, C, self.w_addr, self.w_en, grant_buf, self.w_data,
                        "w")
        _ReadPort.build(m, bmem, b_stride, g["wb"] // g["ub"], g["ub"], g["sb"],
                        cfg.num.bias.bits, C, self.b_addr, self.b_en, grant_buf, self.b_data,
                        "b")
        return m

    def _meta_layout(self):
        """A load's metadata: target buffer, expert, token count, matrix, last of the frame."""
        return data.StructLayout({"buf": 1, "expert": expert_shape(self.cfg),
                                  "count": unsigned(self.cfg.model.tokens.bit_length()),
                                  "matrix": 1, "last": 1})

    def _issue(self, m, dma, table_rd, recv_q, buf_free, frame_active):
        """Issue side: per chosen expert, fc1 then fc2, each into the next free buffer."""
        cfg, g = self.cfg, self.g
        E = cfg.model.experts
        meta = self._meta_layout()
        fill_buf = Signal()
        cur = Signal(expert_list_layout(cfg))
        cur_valid = Signal()
        cur_layer = Signal.like(self.layer)
        cur_matrix = Signal()
        # Row-tiled H (hw.hidden_rows): each expert's fc1 / fc2 are loaded once per chunk of at
        # most T tokens (the consumer's hidden rows); ``left`` counts the expert's tokens not
        # yet granted.
        T = cfg.h_rows if cfg.h_tiled else None
        left = Signal(len(cur.count))
        chunk = cur.count if T is None else Mux(left > T, T, left)
        more = Const(0) if T is None else left > T
        with m.If(accept_job(m, self.experts, cur_valid)):
            m.d.sync += [cur.eq(self.experts.payload), cur_valid.eq(1), cur_matrix.eq(0),
                         cur_layer.eq(self.layer), frame_active.eq(1),
                         left.eq(self.experts.payload.count)]

        tbl_base = (cur_layer * E + cur.expert) * len(TENSORS) + cur_matrix * 2
        w_beats = Mux(cur_matrix, g["w_beats"][1], g["w_beats"][0])
        b_beats = Mux(cur_matrix, g["b_beats"][1], g["b_beats"][0])
        with m.FSM(name="issue"):
            with m.State("IDLE"):
                with m.If(cur_valid & (buf_free.bit_select(fill_buf, 1)) & recv_q.w_rdy):
                    m.d.comb += [table_rd.addr.eq(tbl_base), table_rd.en.eq(1)]
                    # Register the load with the receive side before any of its requests go
                    # out: its data may arrive while the DMA is still issuing its bursts.
                    rec = meta(recv_q.w_data)
                    m.d.comb += [recv_q.w_en.eq(1), rec.buf.eq(fill_buf),
                                 rec.expert.eq(cur.expert), rec.count.eq(chunk),
                                 rec.matrix.eq(cur_matrix),
                                 rec.last.eq(cur.last & cur_matrix & ~more)]
                    m.d.sync += buf_free.bit_select(fill_buf, 1).eq(0)
                    m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += [dma.cmd.valid.eq(1), dma.cmd.payload.addr.eq(table_rd.data),
                             dma.cmd.payload.beats.eq(w_beats)]
                with m.If(dma.cmd.ready):
                    m.d.comb += [table_rd.addr.eq(tbl_base + 1), table_rd.en.eq(1)]
                    m.next = "BIAS"
            with m.State("BIAS"):
                m.d.comb += [dma.cmd.valid.eq(1), dma.cmd.payload.addr.eq(table_rd.data),
                             dma.cmd.payload.beats.eq(b_beats)]
                with m.If(dma.cmd.ready):
                    m.d.sync += [fill_buf.eq(~fill_buf), cur_matrix.eq(~cur_matrix)]
                    with m.If(cur_matrix & more):
                        m.d.sync += left.eq(left - (T or 0))
                    with m.Elif(cur_matrix):
                        m.d.sync += cur_valid.eq(0)
                    m.next = "IDLE"

    def _receive(self, m, wmem, bmem, recv_q, done_q):
        """Receive side: beats -> buffer memory lanes; a load is done after its last bias beat."""
        g = self.g
        W = g["W"]
        head = self._meta_layout()(recv_q.r_data)
        w_lanes, b_lanes = g["ww"] // W, g["wb"] // W
        w_wp = wmem.write_port(granularity=8 * W)
        b_wp = bmem.write_port(granularity=8 * W)
        # Each beat is written a cycle after it arrives, from registers: the address (the load's
        # buffer from the receive FIFO's LUT RAM, times the buffer size, plus the word) and the
        # enable (behind the read data's handshake) reached the write address of every LUT-RAM
        # cell of the bias memory (1,003 pins) at 13.1 ns in the ULX3S build. Safe: the grant
        # of a load comes the cycle after its last beat arrives, and its buffer is read only
        # after the grant has been taken (grant_buf is a register), so no read sees a beat
        # before its write.
        ports = {}
        for name, wp, lanes in (("w", w_wp, g["ww"] // W), ("b", b_wp, g["wb"] // W)):
            addr = Signal.like(wp.addr, name=f"{name}_wr_addr")
            beat = Signal(8 * W, name=f"{name}_wr_beat")
            en = Signal(len(wp.en), name=f"{name}_wr_en")
            m.d.sync += en.eq(0)
            m.d.comb += [wp.addr.eq(addr), wp.data.eq(beat.replicate(lanes)), wp.en.eq(en)]
            ports[name] = (addr, beat, en)
        # beat_index counts the beats of the current tensor; (buf_word, buf_lane) is where the
        # beat goes (a memory word holds ``lanes`` beats; lanes need not be a power of two).
        beat_index = Signal(range(self.w_beats_max + 1))
        buf_word = Signal(range(max(g["w_words"], g["b_words"]) + 1))
        buf_lane = Signal(range(max(w_lanes, b_lanes)))
        in_bias = Signal()
        rd = self.bus.rd_data
        hw_beats = Mux(head.matrix, g["w_beats"][1], g["w_beats"][0])
        hb_beats = Mux(head.matrix, g["b_beats"][1], g["b_beats"][0])
        lanes_now = Mux(in_bias, b_lanes, w_lanes)
        # Always ready (what the read arbiter asks of its masters): a beat belongs to the load
        # at the receive FIFO's head, which was pushed before its first request went out, and
        # the done FIFO has room, since a load holds one of the two buffers from its issue to
        # its release. The FIFOs' levels then stay out of the read-data ready chain through
        # the arbiter (the prefetcher's level compares -> the arbiter's tag FIFO and owner:
        # 7 LUT levels, 12.7 ns routed on the ULX3S); ``overrun`` flags a beat that breaks this.
        m.d.comb += rd.ready.eq(1)
        with m.If(rd.valid & ~(recv_q.r_rdy & done_q.w_rdy)):
            m.d.sync += self.overrun.eq(1)
        # "this beat is its tensor's last" from registers kept with beat_index (the next
        # beat's compare made a beat early), or a one-beat tensor: the compare of beat_index
        # with the head's tensor length behind the read data's valid ran into the receive and
        # done FIFOs' pointers and LUT RAM (7 LUT levels, 10.7-11.7 ns routed, ~40 endpoints).
        w_last, b_last = Signal(name="w_last_beat"), Signal(name="b_last_beat")
        last_now = Mux(in_bias, b_last | (hb_beats == 1), w_last | (hw_beats == 1))
        with m.If(rd.valid):
            m.d.sync += [beat_index.eq(beat_index + 1), w_last.eq(beat_index + 2 == hw_beats),
                         b_last.eq(beat_index + 2 == hb_beats)]
            with m.If(last_now):
                m.d.sync += [w_last.eq(0), b_last.eq(0)]
            # buf_word is reloaded at the end of each tensor (below), never by the nest.
            count_nested(m, [Loop(buf_lane, last=lanes_now - 1),
                             Loop(buf_word, last=Mux(in_bias, g["b_words"], g["w_words"]) - 1,
                                  first=None)])
            with m.If(~in_bias):
                addr, beat, en = ports["w"]
                m.d.sync += [addr.eq(head.buf * g["w_words"] + buf_word),
                             beat.eq(rd.payload.data), en.eq(Const(1, w_lanes) << buf_lane)]
                m.d.sync += self.fill_cycles.eq(self.fill_cycles + 1)
                with m.If(last_now):
                    m.d.sync += [beat_index.eq(0), buf_lane.eq(0), buf_word.eq(0),
                                 in_bias.eq(1)]
            with m.Else():
                addr, beat, en = ports["b"]
                m.d.sync += [addr.eq(head.buf * self.b_stride + buf_word),
                             beat.eq(rd.payload.data), en.eq(Const(1, b_lanes) << buf_lane)]
                with m.If(last_now):
                    m.d.sync += [beat_index.eq(0), buf_lane.eq(0), buf_word.eq(0),
                                 in_bias.eq(0)]
                    m.d.comb += [recv_q.r_en.eq(1), done_q.w_en.eq(1),
                                 done_q.w_data.eq(recv_q.r_data)]

    def _grant(self, m, done_q, buf_free, frame_active):
        """Consumer side: grants of complete loads, releases, the stall counter."""
        done = self._meta_layout()(done_q.r_data)
        grant_buf = Signal()
        m.d.comb += [self.grant.valid.eq(done_q.r_rdy), self.grant.payload.expert.eq(done.expert),
                     self.grant.payload.count.eq(done.count),
                     self.grant.payload.matrix.eq(done.matrix),
                     self.grant.payload.last.eq(done.last),
                     done_q.r_en.eq(self.grant.ready)]
        with m.If(self.grant.valid & self.grant.ready):
            m.d.sync += grant_buf.eq(done.buf)
            with m.If(done.last):
                m.d.sync += frame_active.eq(0)
        with m.If(self.release):
            m.d.sync += buf_free.bit_select(grant_buf, 1).eq(1)
        with m.If(self.grant.ready & ~self.grant.valid & frame_active):
            m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
        return grant_buf
