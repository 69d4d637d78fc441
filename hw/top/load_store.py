"""LOAD (external memory -> buffer rows) and STORE (buffer rows -> external memory) engines.

:class:`LoadPath`: a job reads ``m * n`` activations (storage dtype, little-endian) from
``addr`` as one contiguous transfer of ``V``-value memory beats (:class:`ChunkReader`) and writes
each beat's ``V`` values into the destination memory:

- LINEAR: row-major rows of ``n`` values starting at row ``row0`` (e.g. the position table);
- PATCHIFY: the input image in C x H x W order into patch rows (``sim.golden.patchify``): pixel
  (c, y, x) goes to row ``(y // P) * gw + x // P``, column ``c*P*P + (y % P)*P + x % P``. A beat
  holds ``V`` consecutive x of one image row, which lie in one patch because ``V`` divides P.

:class:`StorePath`: a job reads rows ``0 .. m-1`` (``n`` values) of a memory, ``V`` values per
read, packs them into memory beats (sign-extended to the storage width) and writes them
contiguously from ``addr`` as bursts of up to ``mem_max_burst`` beats. ``error`` is set if the
memory answers a burst with an error.

Throughput: one memory beat per cycle each. ``busy`` until the last beat is written (LOAD) /
the last write burst is acknowledged (STORE).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.mem.bus import MemReadSignature, MemWriteSignature
from hw.top.buffers import ReadPipe, lane_write, read_port_signature, write_port_signature
from hw.top.chunk_reader import ChunkReader
from hw.top.gemm_path import row_base, unpack
from hw.top.geometry import N_MEMS, TopGeometry

__all__ = ["LoadPath", "StorePath", "load_job_layout", "store_job_layout", "LoadMode"]


class LoadMode(enum.Enum, shape=1):
    LINEAR = 0
    PATCHIFY = 1


def _count_bits(geo: TopGeometry) -> int:
    md = geo.cfg.model
    most = max(md.tokens * md.dim, md.image_channels * md.image_height * md.image_width)
    return max(16, (most // geo.V + 1).bit_length())


def load_job_layout(geo: TopGeometry) -> data.StructLayout:
    md = geo.cfg.model
    return data.StructLayout({"addr": unsigned(geo.cfg.hw.mem_addr_bits), "mode": LoadMode,
                              "dst": range(N_MEMS), "row0": range(max(geo.rows) + 1),
                              "m": range(max(geo.rows) + 1),
                              "n": range(max(md.patch_dim, md.dim, md.mlp_hidden) + 1)})


def store_job_layout(geo: TopGeometry) -> data.StructLayout:
    md = geo.cfg.model
    return data.StructLayout({"addr": unsigned(geo.cfg.hw.mem_addr_bits), "src": range(N_MEMS),
                              "m": range(max(geo.rows) + 1), "n": range(md.dim + 1)})


class LoadPath(wiring.Component):
    def __init__(self, geo: TopGeometry):
        self.geo = geo
        self.reader = ChunkReader(geo.cfg, geo.W, count_bits=_count_bits(geo))
        super().__init__({
            "job": In(stream.Signature(load_job_layout(geo))),
            "busy": Out(1),
            "wr": Out(write_port_signature(geo)),
            "bus": Out(MemReadSignature(geo.cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self.geo
        cfg, md = geo.cfg, geo.cfg.model
        V, G = geo.V, geo.G
        lg, lv = G.bit_length() - 1, V.bit_length() - 1
        P = md.patch
        gh, gw = md.grid
        m.submodules.reader = rd = self.reader
        wiring.connect(m, rd.bus, wiring.flipped(self.bus))
        j = Signal(load_job_layout(geo))
        busy = self.busy
        m.d.comb += self.job.ready.eq(~busy)
        start = self.job.valid & self.job.ready
        cb = _count_bits(geo)
        total = Signal(cb)
        cmd_pending = Signal()
        m.d.comb += [rd.cmd.valid.eq(cmd_pending), rd.cmd.payload.addr.eq(j.addr),
                     rd.cmd.payload.outer.eq(1), rd.cmd.payload.inner.eq(total),
                     rd.cmd.payload.inner_stride.eq(geo.W)]
        with m.If(rd.cmd.valid & rd.cmd.ready):
            m.d.sync += cmd_pending.eq(0)

        # LINEAR position
        row = Signal.like(j.m)
        col = Signal.like(j.n)
        # PATCHIFY position: pixel x = gx * P + px, y = gy * P + py, channel ch
        px, gx = Signal(range(P)), Signal(range(gw))
        py, gy = Signal(range(P)), Signal(range(gh))
        ch = Signal(range(md.image_channels))
        left = Signal(cb)
        patch = j.mode == LoadMode.PATCHIFY
        w_row = Mux(patch, gy * gw + gx, j.row0 + row)
        w_col = Mux(patch, ch * (P * P) + py * P + px, col)
        vals = unpack(rd.o.payload, V, cfg.num.act.storage_bytes, cfg.num.act.bits)
        take = rd.o.valid & rd.o.ready
        m.d.comb += rd.o.ready.eq(1)
        m.d.comb += lane_write(geo, self.wr, j.dst, row_base(geo, j.dst, w_row) + (w_col >> lg),
                               (w_col & (G - 1)) >> lv, V, Cat(*vals), take & busy)
        with m.If(take):
            m.d.sync += [left.eq(left - 1), col.eq(col + V), px.eq(px + V)]
            with m.If(col + V == j.n):
                m.d.sync += [col.eq(0), row.eq(row + 1)]
            with m.If(px == P - V):
                m.d.sync += [px.eq(0), gx.eq(gx + 1)]
                with m.If(gx == gw - 1):
                    m.d.sync += [gx.eq(0), py.eq(py + 1)]
                    with m.If(py == P - 1):
                        m.d.sync += [py.eq(0), gy.eq(gy + 1)]
                        with m.If(gy == gh - 1):
                            m.d.sync += [gy.eq(0), ch.eq(ch + 1)]
            with m.If(left == 1):
                m.d.sync += busy.eq(0)

        with m.If(start):
            p = self.job.payload
            beats = (p.m * p.n) >> lv
            m.d.sync += [j.eq(p), busy.eq(beats != 0), cmd_pending.eq(beats != 0),
                         total.eq(beats), left.eq(beats), row.eq(0), col.eq(0), px.eq(0),
                         gx.eq(0), py.eq(0), gy.eq(0), ch.eq(0)]
        return m


class StorePath(wiring.Component):
    def __init__(self, geo: TopGeometry):
        self.geo = geo
        super().__init__({
            "job": In(stream.Signature(store_job_layout(geo))),
            "busy": Out(1),
            "error": Out(1),
            "rd": Out(read_port_signature(geo)),
            "bus": Out(MemWriteSignature(geo.cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self.geo
        cfg = geo.cfg
        V, G, W = geo.V, geo.G, geo.W
        B = cfg.hw.mem_max_burst
        lg, lv = G.bit_length() - 1, V.bit_length() - 1
        sa = cfg.num.act.storage_bytes
        cb = _count_bits(geo)
        j = Signal(store_job_layout(geo))
        busy = self.busy
        m.d.comb += self.job.ready.eq(~busy)
        start = self.job.valid & self.job.ready

        # ---- read rows ----
        m.submodules.pipe = pipe = ReadPipe(geo, V)
        wiring.connect(m, pipe.port[0], wiring.flipped(self.rd))
        r_on = Signal()
        r_row = Signal.like(j.m)
        r_col = Signal.like(j.n)
        m.d.comb += [pipe.req.valid.eq(r_on), pipe.req.payload.mem[0].eq(j.src),
                     pipe.req.payload.addr.eq(row_base(geo, j.src, r_row) + (r_col >> lg)),
                     pipe.req.payload.off.eq((r_col & (G - 1)) >> lv)]
        with m.If(pipe.req.valid & pipe.req.ready):
            m.d.sync += r_col.eq(r_col + V)
            with m.If(r_col + V == j.n):
                m.d.sync += [r_col.eq(0), r_row.eq(r_row + 1)]
                with m.If(r_row == j.m - 1):
                    m.d.sync += r_on.eq(0)

        # ---- write bursts ----
        bus = self.bus
        req_left = Signal(cb)            # beats not yet covered by a burst request
        req_addr = Signal.like(j.addr)
        bursts_out = Signal(cb)          # requested bursts not yet acknowledged
        this = Mux(req_left > B, B, req_left)
        m.d.comb += [bus.wr_req.valid.eq(busy & (req_left != 0)),
                     bus.wr_req.payload.addr.eq(req_addr), bus.wr_req.payload.beats.eq(this)]
        sent = bus.wr_req.valid & bus.wr_req.ready
        with m.If(sent):
            m.d.sync += [req_left.eq(req_left - this), req_addr.eq(req_addr + this * W)]
        lanes = []
        for i in range(V):
            v = Signal(signed(8 * sa), name=f"st{i}")
            m.d.comb += v.eq(pipe.o.payload.data[i])
            lanes.append(v)
        m.d.comb += [bus.wr_data.valid.eq(pipe.o.valid), bus.wr_data.payload.data.eq(Cat(*lanes)),
                     pipe.o.ready.eq(bus.wr_data.ready), bus.wr_resp.ready.eq(1)]
        got = bus.wr_resp.valid & bus.wr_resp.ready
        m.d.sync += bursts_out.eq(bursts_out + sent - got)
        with m.If(got & bus.wr_resp.payload):
            m.d.sync += self.error.eq(1)
        with m.If(busy & ~r_on & (req_left == 0) & (bursts_out == 0) & ~pipe.o.valid):
            m.d.sync += busy.eq(0)

        with m.If(start):
            p = self.job.payload
            beats = (p.m * p.n) >> lv
            m.d.sync += [j.eq(p), busy.eq(beats != 0), r_on.eq(beats != 0), r_row.eq(0),
                         r_col.eq(0), req_left.eq(beats), req_addr.eq(p.addr)]
        return m
