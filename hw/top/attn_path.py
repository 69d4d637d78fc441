"""AttentionPath: the attention unit with its Q and K/V feeders and its output writer.

A job (:func:`attn_job_layout`) runs heads ``head0 .. head0 + nheads - 1`` back to back on the
unit (hw/attention/attention.py; stream order in hw/attention/attention_stream.py):

- Q: for each head, rows 0 .. N-1 of the Q memory, columns ``h*hd .. h*hd + hd - 1``, as
  ``c = hd / dw`` chunks of ``dw`` values;
- K/V: for each head, for each group of p query rows, every key row j once: chunk ci of K row j
  and of V row j (columns ``h*hd ..``, or with ``hw.kv_heads`` the head's slot in the job,
  ``(h - head0)*hd ..``: the K / V memories then hold only the job's heads), read from the K and V memories in the same cycle (one :class:`ReadPipe` with
  two ports), so external-memory-like bandwidth of one K + one V chunk per cycle, independent
  of p;
- O: each output beat (``nw`` values) is written to the destination row / head columns as it
  leaves the unit (``o`` always ready). The destination may be Q itself (``hw.kv_heads``): the
  unit reads a group's Q rows before the first K/V chunk of the group enters it, and writes
  that group's outputs only after its last key, so an output never overwrites a Q value still
  to be read (docs/top_level.md).

Latency: the feeders add ``ReadPipe.latency`` (5) cycles in front of the unit's own latency
(sim/cycles/attention.py). Throughput: the unit's, one K/V chunk per cycle, heads back to back.
``busy`` from the job to the last write; ``busy_next`` is what ``busy`` will be after the edge
(so a far consumer can keep a registered copy equal to ``busy``).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.attention.attention import Attention
from hw.common import Loop, accept_job, count_nested
from hw.top.buffers import ReadPipe, lane_write, read_port_signature, write_port_signature
from hw.top.gemm_path import row_base
from hw.top.geometry import MEM_K, MEM_Q, MEM_V, N_MEMS, TopGeometry

__all__ = ["AttentionPath", "attn_job_layout"]


def attn_job_layout(geo: TopGeometry) -> data.StructLayout:
    h = geo.cfg.model.heads
    return data.StructLayout({"head0": range(h), "nheads": range(h + 1), "dst": range(N_MEMS)})


class AttentionPath(wiring.Component):
    """The attention unit between the Q / K / V buffer memories and a destination memory.

    Parameters
    ----------
    geo : TopGeometry
        Buffer geometry and the config (``cfg.model.heads``, the attention unit's sizes).

    Ports
    -----
    job : In stream, :func:`attn_job_layout`
        ``head0``, ``nheads``, ``dst``; taken while ``busy`` is low (``nheads == 0`` is a no-op).
    busy : Out(1)
        From the job handshake to the last output write.
    busy_next : Out(1)
        ``busy``'s next value (combinational: a job accepted, the last write).
    q_rd, k_rd, v_rd : Out :func:`~hw.top.buffers.read_port_signature`
        Buffer reads: Q in head, row, chunk order; K and V together in head, query group, key
        row, chunk order.
    wr : Out :func:`~hw.top.buffers.write_port_signature`
        Output writes in head, row, beat order (``norm_width`` values per beat).

    Latency: ``ReadPipe.latency`` (5) cycles of :class:`~hw.top.buffers.ReadPipe` in front of
    the unit's own (``sim/cycles/attention.py``). Throughput: the unit's, one K/V chunk per
    cycle.
    """

    def __init__(self, geo: TopGeometry):
        self.geo = geo
        self.unit = Attention(geo.cfg)
        super().__init__({
            "job": In(stream.Signature(attn_job_layout(geo))),
            "busy": Out(1),
            "busy_next": Out(1),
            "q_rd": Out(read_port_signature(geo)),
            "k_rd": Out(read_port_signature(geo)),
            "v_rd": Out(read_port_signature(geo)),
            "wr": Out(write_port_signature(geo)),
        })

    def _col_addr(self, head, chunk, width):
        """Word address and lane group of ``width`` values at column ``head*hd + chunk*width``."""
        G = self.geo.G
        col = head * self.unit.ap.hd + chunk * width
        return col >> (G.bit_length() - 1), (col & (G - 1)) >> (width.bit_length() - 1)

    def _last_head(self, job):
        return job.head0 + job.nheads - 1

    def _q_feeder(self, m, unit, job):
        """Q rows: head, row, chunk (``c`` chunks of ``dw`` values per row and head)."""
        geo, ap = self.geo, self.unit.ap
        m.submodules.qpipe = q_pipe = ReadPipe(geo, ap.dw)
        wiring.connect(m, q_pipe.port[0], wiring.flipped(self.q_rd))
        q_active = Signal()
        q_head = Signal(range(geo.cfg.model.heads))
        q_row = Signal(range(ap.N))
        q_chunk = Signal(range(ap.c))
        word, group = self._col_addr(q_head, q_chunk, ap.dw)
        m.d.comb += [q_pipe.req.valid.eq(q_active), q_pipe.req.payload.mem[0].eq(MEM_Q),
                     q_pipe.req.payload.addr.eq(row_base(geo, MEM_Q, q_row) + word),
                     q_pipe.req.payload.off.eq(group),
                     unit.q.valid.eq(q_pipe.o.valid), unit.q.payload.eq(q_pipe.o.payload.data),
                     q_pipe.o.ready.eq(unit.q.ready)]
        with m.If(q_pipe.req.valid & q_pipe.req.ready):
            count_nested(m, [Loop(q_chunk, last=ap.c - 1), Loop(q_row, last=ap.N - 1),
                             Loop(q_head, last=self._last_head(job), first=None)],
                         done=[q_active.eq(0)])
        return q_active, q_head, q_row, q_chunk

    def _kv_feeder(self, m, unit, job):
        """K and V rows together: head, query group, key row, chunk."""
        geo, ap = self.geo, self.unit.ap
        m.submodules.kvpipe = kv_pipe = ReadPipe(geo, ap.dw, ports=2)
        wiring.connect(m, kv_pipe.port[0], wiring.flipped(self.k_rd))
        wiring.connect(m, kv_pipe.port[1], wiring.flipped(self.v_rd))
        kv_active = Signal()
        kv_head = Signal(range(geo.cfg.model.heads))
        kv_group = Signal(range(ap.G))
        kv_key = Signal(range(ap.N))
        kv_chunk = Signal(range(ap.c))
        # K / V columns of a head: its own (h * hd), or with hw.kv_heads its slot within the
        # job (the K / V GEMMs of the job's heads wrote columns 0 .. nheads * hd - 1)
        slot = kv_head if geo.cfg.hw.kv_heads is None else (kv_head - job.head0)[:len(kv_head)]
        word, group = self._col_addr(slot, kv_chunk, ap.dw)
        m.d.comb += [kv_pipe.req.valid.eq(kv_active), kv_pipe.req.payload.mem[0].eq(MEM_K),
                     kv_pipe.req.payload.mem[1].eq(MEM_V),
                     kv_pipe.req.payload.addr.eq(row_base(geo, MEM_K, kv_key) + word),
                     kv_pipe.req.payload.off.eq(group),
                     unit.kv.valid.eq(kv_pipe.o.valid),
                     unit.kv.payload.k.eq(kv_pipe.o.payload.data[0]),
                     unit.kv.payload.v.eq(kv_pipe.o.payload.data[1]),
                     kv_pipe.o.ready.eq(unit.kv.ready)]
        with m.If(kv_pipe.req.valid & kv_pipe.req.ready):
            count_nested(m, [Loop(kv_chunk, last=ap.c - 1), Loop(kv_key, last=ap.N - 1),
                             Loop(kv_group, last=ap.G - 1),
                             Loop(kv_head, last=self._last_head(job), first=None)],
                         done=[kv_active.eq(0)])
        return kv_active, kv_head, kv_group, kv_key, kv_chunk

    def _o_writer(self, m, unit, job):
        """Output beats to the destination rows: head, row, beat (``o`` always ready)."""
        geo, ap = self.geo, self.unit.ap
        nw = ap.norm_width
        o_head = Signal(range(geo.cfg.model.heads))
        o_row = Signal(range(ap.N))
        o_beat = Signal(range(ap.hd // nw))
        word, group = self._col_addr(o_head, o_beat, nw)
        take = unit.o.valid & unit.o.ready
        m.d.comb += unit.o.ready.eq(1)
        m.d.comb += lane_write(geo, self.wr, job.dst, row_base(geo, job.dst, o_row) + word, group,
                               nw, unit.o.payload.o.as_value(), take & self.busy)
        loops = [Loop(o_beat, last=ap.hd // nw - 1), Loop(o_row, last=ap.N - 1),
                 Loop(o_head, last=self._last_head(job), first=None)]
        with m.If(take):
            count_nested(m, loops, done=[self.busy.eq(0)])
        finishing = take & Cat(*(lp.at_last for lp in loops)).all()
        return o_head, o_row, o_beat, finishing

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        job = Signal(attn_job_layout(self.geo))
        start = accept_job(m, self.job, self.busy)
        q_active, q_head, q_row, q_chunk = self._q_feeder(m, unit, job)
        kv_active, kv_head, kv_group, kv_key, kv_chunk = self._kv_feeder(m, unit, job)
        o_head, o_row, o_beat, finishing = self._o_writer(m, unit, job)
        p = self.job.payload
        on = p.nheads != 0
        m.d.comb += self.busy_next.eq(Mux(start, on, self.busy & ~finishing))
        with m.If(start):
            m.d.sync += [job.eq(p), self.busy.eq(on), q_active.eq(on), kv_active.eq(on),
                         q_head.eq(p.head0), q_row.eq(0), q_chunk.eq(0),
                         kv_head.eq(p.head0), kv_group.eq(0), kv_key.eq(0), kv_chunk.eq(0),
                         o_head.eq(p.head0), o_row.eq(0), o_beat.eq(0)]
        return m
