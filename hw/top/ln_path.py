"""LayerNormPath: the LayerNorm unit with its parameter readers, row feeder and row writer.

A job (:func:`ln_job_layout`) normalizes rows ``0 .. m-1`` of one buffer memory into another:

1. gamma and beta stream from external memory (two :class:`ChunkReader`, ``ln_lanes`` values per
   chunk), zipped through a :class:`~hw.mem.stream_slice.StreamSlice` into the unit's ``param``
   stream (``dim / ln_lanes`` beats);
2. only after the last parameter beat entered the slice does the row feeder start (the unit
   applies a parameter set to the rows accepted after it: a row that slipped in earlier would use
   the previous instance's gamma / beta; the beat reaches the unit the next cycle, before any row
   beat can come out of the source memory);
3. rows stream from the source memory (:class:`ReadPipe`), outputs are written to the
   destination rows as they leave the unit (``y`` is always ready).

Latency: about ``mem_latency + dim / ln_lanes`` cycles for the parameters, then the unit's own
(hw/norm/layernorm.py); the parameter slice adds none (rows wait for the source memory read,
which is at least as long). Throughput: the unit's, one beat of ``ln_lanes`` values per cycle.
``busy`` from the job handshake to the last output write.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.common import Loop, accept_job, count_nested
from hw.norm.layernorm import LayerNorm
from hw.mem.bus import MemReadSignature
from hw.mem.stream_slice import StreamSlice
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
    """The LayerNorm unit between two buffer memories, gamma / beta read from external memory.

    Parameters
    ----------
    geo : TopGeometry
        Buffer geometry (``ln_lanes`` values per beat) and the config (``dim``, formats).

    Ports
    -----
    job : In stream, :func:`ln_job_layout`
        ``m`` rows, ``src`` / ``dst`` memories, ``gamma`` / ``beta`` byte addresses; taken while
        ``busy`` is low.
    busy : Out(1)
        From the job handshake to the last output write.
    g_bus, b_bus : Out :func:`~hw.mem.bus.MemReadSignature`
        gamma and beta reads (``dim / ln_lanes`` chunks each, one contiguous transfer).
    rd : Out :func:`~hw.top.buffers.read_port_signature`
        Source rows, row-major, ``ln_lanes`` values per read.
    wr : Out :func:`~hw.top.buffers.write_port_signature`
        Output rows in the same order.

    Latency: about ``mem_latency + dim / ln_lanes`` cycles for the parameters, then the unit's
    own. Throughput: one beat of ``ln_lanes`` values per cycle.
    """

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

    def _word_and_group(self, col):
        """Word offset and lane group of column ``col`` within a row."""
        G, L = self.geo.G, self.geo.ln_lanes
        return col >> (G.bit_length() - 1), (col & (G - 1)) >> (L.bit_length() - 1)

    def _params(self, m, ln, job, beats):
        """gamma and beta from memory, zipped into ``ln.param``; returns the command-pending
        flags and, per reader, the beats still to enter its slice."""
        n, L = self.geo.cfg.num, self.geo.ln_lanes
        gr, br = self.g_reader, self.b_reader
        pend = [Signal(name="g_pending"), Signal(name="b_pending")]
        for r, addr, pe in ((gr, job.gamma, pend[0]), (br, job.beta, pend[1])):
            m.d.comb += [r.cmd.valid.eq(pe), r.cmd.payload.addr.eq(addr),
                         r.cmd.payload.outer.eq(1), r.cmd.payload.inner.eq(beats),
                         r.cmd.payload.inner_stride.eq(r.U)]
            with m.If(r.cmd.valid & r.cmd.ready):
                m.d.sync += pe.eq(0)
        # Each reader's chunks go through their own register slice and the slices' outputs are
        # zipped into the unit. The unit's x.ready depends on param.valid (parameters first on
        # an idle unit), so without a slice the readers' FIFO level -> o.valid -> both valid ->
        # x.ready -> row-buffer write enables was one cycle (the ULX3S estimate's 14.2 ns LayerNorm
        # path); with one slice after the zip, each reader's ready still waited for the other's
        # valid (beta FIFO level -> gamma FIFO read and credit update, 11.5 ns routed). Per-reader
        # slices leave no handshake between the readers. No cycle is lost: the unit is idle and
        # always ready during a load, a pair reaches it the cycle after its later half entered
        # a slice, as it did through the zipped slice, and rows start when both readers' last
        # beats are in (counted at the slices' inputs).
        param = ln.param.payload
        halves = {"gamma": (gr, L, n.ln_gamma), "beta": (br, L, n.act)}
        slices = {}
        lefts = []
        for name, (r, lanes, fmt) in halves.items():
            sl = StreamSlice(unsigned(lanes * fmt.bits))
            m.submodules[f"{name}_slice"] = slices[name] = sl
            m.d.comb += [sl.i.valid.eq(r.o.valid), r.o.ready.eq(sl.i.ready),
                         sl.i.payload.eq(Cat(*unpack(r.o.payload, lanes, fmt.storage_bytes,
                                                     fmt.bits)))]
            left = Signal(range(beats + 1), name=f"{name}_left")
            with m.If(sl.i.valid & sl.i.ready):
                m.d.sync += left.eq(left - 1)
            lefts.append(left)
        both = slices["gamma"].o.valid & slices["beta"].o.valid
        m.d.comb += [ln.param.valid.eq(both),
                     param.gamma.eq(slices["gamma"].o.payload),
                     param.beta.eq(slices["beta"].o.payload),
                     slices["gamma"].o.ready.eq(ln.param.ready & both),
                     slices["beta"].o.ready.eq(ln.param.ready & both)]
        return pend, lefts

    def _rows_in(self, m, ln, job, params_left):
        """Source rows into ``ln.x`` once every parameter beat is in: row, column."""
        geo, L, d = self.geo, self.geo.ln_lanes, self.geo.cfg.model.dim
        m.submodules.pipe = pipe = ReadPipe(geo, L)
        wiring.connect(m, pipe.port[0], wiring.flipped(self.rd))
        in_active = Signal()
        in_row = Signal.like(job.m)
        in_col = Signal(range(d + 1))
        word, group = self._word_and_group(in_col)
        go = in_active & (params_left[0] == 0) & (params_left[1] == 0)
        m.d.comb += [pipe.req.valid.eq(go), pipe.req.payload.mem[0].eq(job.src),
                     pipe.req.payload.addr.eq(row_base(geo, job.src, in_row) + word),
                     pipe.req.payload.off.eq(group),
                     ln.x.valid.eq(pipe.o.valid), ln.x.payload.eq(pipe.o.payload.data),
                     pipe.o.ready.eq(ln.x.ready)]
        with m.If(pipe.req.valid & pipe.req.ready):
            count_nested(m, [Loop(in_col, last=d - L, step=L),
                             Loop(in_row, last=job.m - 1, first=None)],
                         done=[in_active.eq(0)])
        return in_active, in_row, in_col

    def _rows_out(self, m, ln, job):
        """``ln.y`` (always ready) to the destination rows: row, column."""
        geo, L, d = self.geo, self.geo.ln_lanes, self.geo.cfg.model.dim
        out_row = Signal.like(job.m)
        out_col = Signal(range(d + 1))
        word, group = self._word_and_group(out_col)
        take = ln.y.valid & ln.y.ready
        m.d.comb += [ln.y.ready.eq(1)]
        m.d.comb += lane_write(geo, self.wr, job.dst, row_base(geo, job.dst, out_row) + word,
                               group, L, ln.y.payload.as_value(), take & self.busy)
        with m.If(take):
            count_nested(m, [Loop(out_col, last=d - L, step=L),
                             Loop(out_row, last=job.m - 1, first=None)],
                         done=[self.busy.eq(0)])
        return out_row, out_col

    def elaborate(self, platform):
        m = Module()
        geo = self.geo
        beats = geo.cfg.model.dim // geo.ln_lanes
        m.submodules.unit = ln = self.unit
        m.submodules.g_reader = gr = self.g_reader
        m.submodules.b_reader = br = self.b_reader
        wiring.connect(m, gr.bus, wiring.flipped(self.g_bus))
        wiring.connect(m, br.bus, wiring.flipped(self.b_bus))

        job = Signal(ln_job_layout(geo))
        start = accept_job(m, self.job, self.busy)
        pend, params_left = self._params(m, ln, job, beats)
        in_active, in_row, in_col = self._rows_in(m, ln, job, params_left)
        out_row, out_col = self._rows_out(m, ln, job)
        with m.If(start):
            m.d.sync += [job.eq(self.job.payload), self.busy.eq(1), pend[0].eq(1), pend[1].eq(1),
                         *[left.eq(beats) for left in params_left], in_active.eq(self.job.payload.m != 0),
                         in_row.eq(0), in_col.eq(0), out_row.eq(0), out_col.eq(0)]
        return m
