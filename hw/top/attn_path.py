"""AttentionPath: the attention unit with its Q and K/V feeders and its output writer.

A job (:func:`attn_job_layout`) runs heads ``head0 .. head0 + nheads - 1`` back to back on the
unit (hw/attention/attention.py; stream order in hw/attention/attention_stream.py):

- Q: for each head, rows 0 .. N-1 of the Q memory, columns ``h*hd .. h*hd + hd - 1``, as
  ``c = hd / dw`` chunks of ``dw`` values;
- K/V: for each head, for each group of p query rows, every key row j once: chunk ci of K row j
  and of V row j, read from the K and V memories in the same cycle (one :class:`ReadPipe` with
  two ports), so external-memory-like bandwidth of one K + one V chunk per cycle, independent
  of p;
- O: each output beat (``nw`` values) is written to the destination row / head columns as it
  leaves the unit (``o`` always ready).

Latency: the feeders add 2 cycles (ReadPipe) in front of the unit's own latency
(sim/cycles/attention.py). Throughput: the unit's, one K/V chunk per cycle, heads back to back.
``busy`` from the job to the last write.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.attention.attention import Attention
from hw.top.buffers import ReadPipe, lane_write, read_port_signature, write_port_signature
from hw.top.gemm_path import row_base
from hw.top.geometry import MEM_K, MEM_Q, MEM_V, N_MEMS, TopGeometry

__all__ = ["AttentionPath", "attn_job_layout"]


def attn_job_layout(geo: TopGeometry) -> data.StructLayout:
    h = geo.cfg.model.heads
    return data.StructLayout({"head0": range(h), "nheads": range(h + 1), "dst": range(N_MEMS)})


class AttentionPath(wiring.Component):
    def __init__(self, geo: TopGeometry):
        self.geo = geo
        self.unit = Attention(geo.cfg)
        super().__init__({
            "job": In(stream.Signature(attn_job_layout(geo))),
            "busy": Out(1),
            "q_rd": Out(read_port_signature(geo)),
            "k_rd": Out(read_port_signature(geo)),
            "v_rd": Out(read_port_signature(geo)),
            "wr": Out(write_port_signature(geo)),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self.geo
        cfg = geo.cfg
        G = geo.G
        lg = G.bit_length() - 1
        ap = self.unit.ap
        N, c, dw, hd, nw = ap.N, ap.c, ap.dw, ap.hd, ap.norm_width
        groups = ap.G
        heads = cfg.model.heads
        m.submodules.unit = u = self.unit
        j = Signal(attn_job_layout(geo))
        busy = self.busy
        m.d.comb += self.job.ready.eq(~busy)
        start = self.job.valid & self.job.ready

        def col_addr(head, chunk, width):
            col = head * hd + chunk * width
            return col >> lg, (col & (G - 1)) >> (width.bit_length() - 1)

        # ---- Q: head, row, chunk ----
        m.submodules.qpipe = qp = ReadPipe(geo, dw)
        wiring.connect(m, qp.port[0], wiring.flipped(self.q_rd))
        q_on, q_h, q_r, q_c = Signal(), Signal(range(heads)), Signal(range(N)), Signal(range(c))
        qa, qo = col_addr(q_h, q_c, dw)
        m.d.comb += [qp.req.valid.eq(q_on), qp.req.payload.mem[0].eq(MEM_Q),
                     qp.req.payload.addr.eq(row_base(geo, MEM_Q, q_r) + qa),
                     qp.req.payload.off.eq(qo),
                     u.q.valid.eq(qp.o.valid), u.q.payload.eq(qp.o.payload.data),
                     qp.o.ready.eq(u.q.ready)]
        with m.If(qp.req.valid & qp.req.ready):
            m.d.sync += q_c.eq(q_c + 1)
            with m.If(q_c == c - 1):
                m.d.sync += [q_c.eq(0), q_r.eq(q_r + 1)]
                with m.If(q_r == N - 1):
                    m.d.sync += [q_r.eq(0), q_h.eq(q_h + 1)]
                    with m.If(q_h == j.head0 + j.nheads - 1):
                        m.d.sync += q_on.eq(0)

        # ---- K/V: head, group, key, chunk ----
        m.submodules.kvpipe = kp = ReadPipe(geo, dw, ports=2)
        wiring.connect(m, kp.port[0], wiring.flipped(self.k_rd))
        wiring.connect(m, kp.port[1], wiring.flipped(self.v_rd))
        k_on, k_h, k_g = Signal(), Signal(range(heads)), Signal(range(groups))
        k_r, k_c = Signal(range(N)), Signal(range(c))
        ka, ko = col_addr(k_h, k_c, dw)
        m.d.comb += [kp.req.valid.eq(k_on), kp.req.payload.mem[0].eq(MEM_K),
                     kp.req.payload.mem[1].eq(MEM_V),
                     kp.req.payload.addr.eq(row_base(geo, MEM_K, k_r) + ka),
                     kp.req.payload.off.eq(ko),
                     u.kv.valid.eq(kp.o.valid), u.kv.payload.k.eq(kp.o.payload.data[0]),
                     u.kv.payload.v.eq(kp.o.payload.data[1]), kp.o.ready.eq(u.kv.ready)]
        with m.If(kp.req.valid & kp.req.ready):
            m.d.sync += k_c.eq(k_c + 1)
            with m.If(k_c == c - 1):
                m.d.sync += [k_c.eq(0), k_r.eq(k_r + 1)]
                with m.If(k_r == N - 1):
                    m.d.sync += [k_r.eq(0), k_g.eq(k_g + 1)]
                    with m.If(k_g == groups - 1):
                        m.d.sync += [k_g.eq(0), k_h.eq(k_h + 1)]
                        with m.If(k_h == j.head0 + j.nheads - 1):
                            m.d.sync += k_on.eq(0)

        # ---- O: head, row, beat ----
        per_row = hd // nw
        o_h, o_r, o_b = Signal(range(heads)), Signal(range(N)), Signal(range(per_row))
        oa, oo = col_addr(o_h, o_b, nw)
        take = u.o.valid & u.o.ready
        m.d.comb += u.o.ready.eq(1)
        m.d.comb += lane_write(geo, self.wr, j.dst, row_base(geo, j.dst, o_r) + oa, oo, nw,
                               u.o.payload.o.as_value(), take & busy)
        with m.If(take):
            m.d.sync += o_b.eq(o_b + 1)
            with m.If(o_b == per_row - 1):
                m.d.sync += [o_b.eq(0), o_r.eq(o_r + 1)]
                with m.If(o_r == N - 1):
                    m.d.sync += [o_r.eq(0), o_h.eq(o_h + 1)]
                    with m.If(o_h == j.head0 + j.nheads - 1):
                        m.d.sync += busy.eq(0)

        with m.If(start):
            p = self.job.payload
            on = p.nheads != 0
            m.d.sync += [j.eq(p), busy.eq(on), q_on.eq(on), k_on.eq(on),
                         q_h.eq(p.head0), q_r.eq(0), q_c.eq(0),
                         k_h.eq(p.head0), k_g.eq(0), k_r.eq(0), k_c.eq(0),
                         o_h.eq(p.head0), o_r.eq(0), o_b.eq(0)]
        return m
