"""LayerNormPath: the LayerNorm unit with its parameter readers, row feeder and row writer.

A job (:func:`ln_job_layout`) normalizes rows ``0 .. m-1`` of one buffer memory into another:

1. gamma and beta stream from external memory (two :class:`ChunkReader`, ``ln_lanes`` values per
   chunk), zipped into the unit's ``param`` stream (``dim / ln_lanes`` beats);
2. only after the last parameter beat was accepted does the row feeder start (the unit applies a
   parameter set to the rows accepted after it: a row that slipped in earlier would use the
   previous instance's gamma / beta);
3. rows stream from the source memory (:class:`ReadPipe`), outputs are written to the
   destination rows as they leave the unit (``y`` is always ready).

Latency: about ``mem_latency + dim / ln_lanes`` cycles for the parameters, then the unit's own
(hw/norm/layernorm.py). Throughput: the unit's, one beat of ``ln_lanes`` values per cycle.
``busy`` from the job handshake to the last output write.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.norm.layernorm import LayerNorm
from hw.mem.bus import MemReadSignature
from hw.top.buffers import ReadPipe, lane_write, read_port_signature, write_port_signature
from hw.top.chunk_reader import ChunkReader
from hw.top.gemm_path import row_base, unpack
from hw.top.geometry import N_MEMS, TopGeometry

__all__ = ["LayerNormPath", "ln_job_layout"]


def ln_job_layout(geo: TopGeometry) -> data.StructLayout:
    a = geo.cfg.hw.mem_addr_bits
    return data.StructLayout({"m": range(max(geo.rows) + 1), "src": range(N_MEMS),
                              "dst": range(N_MEMS), "gamma": unsigned(a), "beta": unsigned(a)})


class LayerNormPath(wiring.Component):
    def __init__(self, geo: TopGeometry):
        self.geo = geo
        cfg = geo.cfg
        L = geo.ln_lanes
        self.unit = LayerNorm(cfg, lanes=L)
        self.g_reader = ChunkReader(cfg, L * cfg.num.ln_gamma.storage_bytes)
        self.b_reader = ChunkReader(cfg, L * cfg.num.act.storage_bytes)
        super().__init__({
            "job": In(stream.Signature(ln_job_layout(geo))),
            "busy": Out(1),
            "rd": Out(read_port_signature(geo)),
            "wr": Out(write_port_signature(geo)),
            "g_bus": Out(MemReadSignature(cfg)),
            "b_bus": Out(MemReadSignature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self.geo
        cfg, n = geo.cfg, geo.cfg.num
        L, G = geo.ln_lanes, geo.G
        lg, ll = G.bit_length() - 1, L.bit_length() - 1
        d = cfg.model.dim
        beats = d // L
        m.submodules.unit = ln = self.unit
        m.submodules.g_reader = gr = self.g_reader
        m.submodules.b_reader = br = self.b_reader
        wiring.connect(m, gr.bus, wiring.flipped(self.g_bus))
        wiring.connect(m, br.bus, wiring.flipped(self.b_bus))

        j = Signal(ln_job_layout(geo))
        busy = self.busy
        m.d.comb += self.job.ready.eq(~busy)
        start = self.job.valid & self.job.ready

        # ---- parameters ----
        pend = [Signal(name="g_pending"), Signal(name="b_pending")]
        for r, addr, pe in ((gr, j.gamma, pend[0]), (br, j.beta, pend[1])):
            m.d.comb += [r.cmd.valid.eq(pe), r.cmd.payload.addr.eq(addr),
                         r.cmd.payload.outer.eq(1), r.cmd.payload.inner.eq(beats),
                         r.cmd.payload.inner_stride.eq(r.U)]
            with m.If(r.cmd.valid & r.cmd.ready):
                m.d.sync += pe.eq(0)
        both = gr.o.valid & br.o.valid
        m.d.comb += [ln.param.valid.eq(both),
                     ln.param.payload.gamma.eq(Cat(*unpack(gr.o.payload, L,
                                                           n.ln_gamma.storage_bytes,
                                                           n.ln_gamma.bits))),
                     ln.param.payload.beta.eq(Cat(*unpack(br.o.payload, L, n.act.storage_bytes,
                                                          n.act.bits))),
                     gr.o.ready.eq(ln.param.ready & both), br.o.ready.eq(ln.param.ready & both)]
        p_left = Signal(range(beats + 1))
        with m.If(ln.param.valid & ln.param.ready):
            m.d.sync += p_left.eq(p_left - 1)

        # ---- rows in ----
        m.submodules.pipe = pipe = ReadPipe(geo, L)
        wiring.connect(m, pipe.port[0], wiring.flipped(self.rd))
        x_on = Signal()
        x_row = Signal.like(j.m)
        x_col = Signal(range(d + 1))
        go = x_on & (p_left == 0)
        m.d.comb += [pipe.req.valid.eq(go), pipe.req.payload.mem[0].eq(j.src),
                     pipe.req.payload.addr.eq(row_base(geo, j.src, x_row) + (x_col >> lg)),
                     pipe.req.payload.off.eq((x_col & (G - 1)) >> ll),
                     ln.x.valid.eq(pipe.o.valid), ln.x.payload.eq(pipe.o.payload.data),
                     pipe.o.ready.eq(ln.x.ready)]
        with m.If(pipe.req.valid & pipe.req.ready):
            m.d.sync += x_col.eq(x_col + L)
            with m.If(x_col == d - L):
                m.d.sync += [x_col.eq(0), x_row.eq(x_row + 1)]
                with m.If(x_row == j.m - 1):
                    m.d.sync += x_on.eq(0)

        # ---- rows out ----
        y_row = Signal.like(j.m)
        y_col = Signal(range(d + 1))
        take = ln.y.valid & ln.y.ready
        m.d.comb += [ln.y.ready.eq(1)]
        m.d.comb += lane_write(geo, self.wr, j.dst, row_base(geo, j.dst, y_row) + (y_col >> lg),
                               (y_col & (G - 1)) >> ll, L, ln.y.payload.as_value(), take & busy)
        with m.If(take):
            m.d.sync += y_col.eq(y_col + L)
            with m.If(y_col == d - L):
                m.d.sync += [y_col.eq(0), y_row.eq(y_row + 1)]
                with m.If(y_row == j.m - 1):
                    m.d.sync += busy.eq(0)

        with m.If(start):
            m.d.sync += [j.eq(self.job.payload), busy.eq(1), pend[0].eq(1), pend[1].eq(1),
                         p_left.eq(beats), x_on.eq(self.job.payload.m != 0), x_row.eq(0),
                         x_col.eq(0), y_row.eq(0), y_col.eq(0)]
        return m
