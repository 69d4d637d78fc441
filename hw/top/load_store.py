"""LOAD (external memory -> buffer rows) and STORE (buffer rows -> external memory) engines.

:class:`LoadPath`: a job reads ``m * n`` activations (storage dtype, little-endian) from
``addr`` as one contiguous transfer of ``V``-value memory beats (:class:`ChunkReader`) and writes
each beat's ``V`` values into the destination memory:

- LINEAR: row-major rows of ``n`` values starting at row ``row0`` (e.g. the position table);
- PATCHIFY: patches ``patch0 .. patch0 + m - 1`` (whole rows of ``gw`` patches; all of them
  unless H is row tiled, ``hw.hidden_rows``) of the C x H x W image into patch rows from
  ``row0`` (``sim.golden.patchify``): pixel (c, y, x) goes to row
  ``row0 + (y // P) * gw + x // P - patch0``, column ``c*P*P + (y % P)*P + x % P``. The read is
  one span per channel (``m * P * P`` values from ``patch0 * P * P``, channels ``H * W`` values
  apart), in C, y, x order. A beat holds ``V`` consecutive x of one image row, which lie in one
  patch because ``V`` divides P.

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

from hw.common import Loop, accept_job, count_nested
from hw.mem.bus import MemReadSignature, MemWriteSignature
from hw.top.buffers import ReadPipe, lane_write, read_port_signature, write_port_signature
from hw.top.chunk_reader import ChunkReader
from hw.top.gemm_path import row_base, unpack
from hw.top.geometry import N_MEMS, TopGeometry

__all__ = ["LoadPath", "StorePath", "load_beats", "load_job_layout", "store_job_layout",
           "LoadMode"]


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
                              "patch0": range(max(geo.rows) + 1),
                              "m": range(max(geo.rows) + 1),
                              "n": range(max(md.patch_dim, md.dim, md.mlp_hidden) + 1),
                              # m * n / V, the job's beats: the product before the job's
                              # register stage (as a DSP product of the job register it ran
                              # into the engine's busy flag: ULX3S routed 11.8 ns)
                              "beats": unsigned(_count_bits(geo))})


def load_beats(geo: TopGeometry, m, n):
    """A LOAD job's ``beats`` field from its ``m`` and ``n``."""
    return (m * n) >> (geo.V.bit_length() - 1)


def store_job_layout(geo: TopGeometry) -> data.StructLayout:
    md = geo.cfg.model
    return data.StructLayout({"addr": unsigned(geo.cfg.hw.mem_addr_bits), "src": range(N_MEMS),
                              "m": range(max(geo.rows) + 1), "n": range(md.dim + 1)})


class LoadPath(wiring.Component):
    """LOAD engine: one contiguous external read into buffer rows (see the module docstring).

    Parameters
    ----------
    geo : TopGeometry
        Buffer geometry (``V`` activations per memory beat) and the config (image and patch
        sizes).

    Ports
    -----
    job : In stream, :func:`load_job_layout`
        ``addr``, ``mode`` (:class:`LoadMode`), ``dst``, ``row0``, ``m`` x ``n`` values; taken
        while ``busy`` is low (``m * n == 0`` is a no-op).
    busy : Out(1)
        From the job handshake to the last buffer write.
    bus : Out :func:`~hw.mem.bus.MemReadSignature`
        The transfer's reads (``m * n / V`` beats, one :class:`ChunkReader` command).
    wr : Out :func:`~hw.top.buffers.write_port_signature`
        One write of ``V`` values per memory beat, in memory order.

    Latency: the memory's latency plus about 3 cycles (the buffer write leaves through a
    register). Throughput: one memory beat per cycle.
    """

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
        grid_h, grid_w = md.grid
        m.submodules.reader = reader = self.reader
        wiring.connect(m, reader.bus, wiring.flipped(self.bus))
        job = Signal(load_job_layout(geo))
        busy = Signal()                     # beats still to take from the reader
        # the registered write below is the job's last act: busy until it has gone out
        m.d.comb += self.busy.eq(busy | self.wr.en)
        start = accept_job(m, self.job, self.busy)
        count_bits = _count_bits(geo)
        cmd_pending = Signal()
        patch = job.mode == LoadMode.PATCHIFY
        sa = cfg.num.act.storage_bytes
        # PATCHIFY: one contiguous span per channel (the tile's image rows); LINEAR: one span
        # The command's address and span length are registers, loaded with the job: as
        # products and a sum of the job register they ran on into the reader's burst-length
        # compares and its credit sum (ULX3S routed 11.2 ns, 12 levels into free_after).
        cmd_addr = Signal.like(reader.cmd.payload.addr)
        cmd_inner = Signal.like(reader.cmd.payload.inner)
        m.d.comb += [reader.cmd.valid.eq(cmd_pending),
                     reader.cmd.payload.addr.eq(cmd_addr),
                     reader.cmd.payload.outer.eq(Mux(patch, md.image_channels, 1)),
                     reader.cmd.payload.outer_stride.eq(md.image_height * md.image_width * sa),
                     reader.cmd.payload.inner.eq(cmd_inner),
                     reader.cmd.payload.inner_stride.eq(geo.W)]
        with m.If(reader.cmd.valid & reader.cmd.ready):
            m.d.sync += cmd_pending.eq(0)

        # LINEAR position
        row = Signal.like(job.m)
        col = Signal.like(job.n)
        # PATCHIFY position: pixel x = patch_x * P + in_patch_x, y likewise, channel
        in_patch_x, patch_x = Signal(range(P)), Signal(range(grid_w))
        in_patch_y, patch_y = Signal(range(P)), Signal(range(grid_h))
        channel = Signal(range(md.image_channels))
        beats_left = Signal(count_bits)
        w_row = job.row0 + Mux(patch, patch_y * grid_w + patch_x, row)   # patch_y: of the tile
        w_col = Mux(patch, channel * (P * P) + in_patch_y * P + in_patch_x, col)
        vals = unpack(reader.o.payload, V, cfg.num.act.storage_bytes, cfg.num.act.bits)
        take = reader.o.valid & reader.o.ready
        m.d.comb += reader.o.ready.eq(1)
        # The write leaves through a register: the reader FIFO's valid, the row address
        # arithmetic (row_base of the destination, patch position) and the lane mask reached
        # the buffer bank's write mux and its write registers in one cycle (a 12 ns ULX3S group).
        wr_sig = write_port_signature(geo)
        wr_next = wr_sig.create(path=("load_wr_next",))
        m.d.comb += lane_write(geo, wr_next, job.dst,
                               row_base(geo, job.dst, w_row) + (w_col >> lg),
                               (w_col & (G - 1)) >> lv, V, Cat(*vals), take & busy)
        m.d.sync += [getattr(self.wr, name).eq(getattr(wr_next, name))
                     for name in wr_sig.members]
        with m.If(take):
            m.d.sync += beats_left.eq(beats_left - 1)
            # Both positions advance on every beat; the job's mode picks which one is used.
            count_nested(m, [Loop(col, is_last=col + V == job.n, step=V),
                             Loop(row, last=job.m - 1, first=None)])
            count_nested(m, [Loop(in_patch_x, last=P - V, step=V),
                             Loop(patch_x, last=grid_w - 1), Loop(in_patch_y, last=P - 1),
                             Loop(patch_y, is_last=patch_y * grid_w + grid_w == job.m),
                             Loop(channel, last=md.image_channels - 1, first=None)])
            with m.If(beats_left == 1):
                m.d.sync += busy.eq(0)

        with m.If(start):
            p = self.job.payload
            beats = p.beats
            p_patch = p.mode == LoadMode.PATCHIFY
            m.d.sync += [cmd_addr.eq(p.addr + Mux(p_patch, p.patch0 * (P * P * sa), 0)),
                         cmd_inner.eq(Mux(p_patch, (p.m * (P * P)) >> lv, beats))]
            m.d.sync += [job.eq(p), busy.eq(beats != 0), cmd_pending.eq(beats != 0),
                         beats_left.eq(beats), row.eq(0), col.eq(0),
                         in_patch_x.eq(0), patch_x.eq(0), in_patch_y.eq(0), patch_y.eq(0),
                         channel.eq(0)]
        return m


class StorePath(wiring.Component):
    """STORE engine: buffer rows to one contiguous external write (see the module docstring).

    Parameters
    ----------
    geo : TopGeometry
        Buffer geometry (``V`` activations per memory beat) and the config (burst limit).

    Ports
    -----
    job : In stream, :func:`store_job_layout`
        ``addr``, ``src``, ``m`` rows of ``n`` values; taken while ``busy`` is low.
    busy : Out(1)
        From the job handshake until the last write burst is acknowledged.
    error : Out(1)
        Sticky: the memory answered a burst with an error.
    rd : Out :func:`~hw.top.buffers.read_port_signature`
        Row-major reads of ``V`` values.
    bus : Out :func:`~hw.mem.bus.MemWriteSignature`
        Bursts of up to ``mem_max_burst`` beats from ``addr`` upwards, data in read order.

    Latency: ``ReadPipe.latency`` (5) cycles (:class:`~hw.top.buffers.ReadPipe`) to the first
    data beat. Throughput: one memory beat per cycle.
    """

    def __init__(self, geo: TopGeometry):
        self.geo = geo
        super().__init__({
            "job": In(stream.Signature(store_job_layout(geo))),
            "busy": Out(1),
            "error": Out(1),
            "rd": Out(read_port_signature(geo)),
            "bus": Out(MemWriteSignature(geo.cfg)),
        })

    def _read_rows(self, m, pipe, job):
        """Row-major reads of the source rows: row, column."""
        geo = self.geo
        V, G = geo.V, geo.G
        lg, lv = G.bit_length() - 1, V.bit_length() - 1
        read_active = Signal()
        read_row = Signal.like(job.m)
        read_col = Signal.like(job.n)
        m.d.comb += [pipe.req.valid.eq(read_active), pipe.req.payload.mem[0].eq(job.src),
                     pipe.req.payload.addr.eq(row_base(geo, job.src, read_row) + (read_col >> lg)),
                     pipe.req.payload.off.eq((read_col & (G - 1)) >> lv)]
        with m.If(pipe.req.valid & pipe.req.ready):
            count_nested(m, [Loop(read_col, is_last=read_col + V == job.n, step=V),
                             Loop(read_row, last=job.m - 1, first=None)],
                         done=[read_active.eq(0)])
        return read_active, read_row, read_col

    def _write_bursts(self, m, pipe, job, read_active):
        """Burst requests, data beats from the read pipe, acknowledgements and ``busy``."""
        geo = self.geo
        cfg = geo.cfg
        V, W = geo.V, geo.W
        B = cfg.hw.mem_max_burst
        sa = cfg.num.act.storage_bytes
        count_bits = _count_bits(geo)
        bus = self.bus
        busy = self.busy
        req_left = Signal(count_bits)            # beats not yet covered by a burst request
        req_addr = Signal.like(job.addr)
        bursts_out = Signal(count_bits)          # requested bursts not yet acknowledged
        # The next burst's length and "more than one / two bursts left" as registers, set the
        # cycle after the job (``primed``: the job's m * n is in req_left then) and with each
        # request, so the request and the address add start at registers (min(req_left, B)
        # in front of the address add was the ULX3S build's worst group: 15 carry levels).
        # The first data beat is ReadPipe.latency cycles after the job: the request is early.
        primed = Signal()
        burst_beats = Signal(range(B + 1))       # min(req_left, B)
        more_1 = Signal()                        # req_left > B
        more_2 = Signal()                        # req_left > 2B
        with m.If(busy & ~primed):
            m.d.sync += [primed.eq(1), burst_beats.eq(Mux(req_left > B, B, req_left)),
                         more_1.eq(req_left > B), more_2.eq(req_left > 2 * B)]
        m.d.comb += [bus.wr_req.valid.eq(busy & primed & (burst_beats != 0)),
                     bus.wr_req.payload.addr.eq(req_addr),
                     bus.wr_req.payload.beats.eq(burst_beats)]
        sent = bus.wr_req.valid & bus.wr_req.ready
        with m.If(sent):
            m.d.sync += [req_left.eq(req_left - burst_beats),
                         req_addr.eq(req_addr + burst_beats * W),
                         burst_beats.eq(Mux(more_1, Mux(more_2, B, req_left - B), 0)),
                         more_1.eq(more_2), more_2.eq(req_left > 3 * B)]
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
        with m.If(busy & ~read_active & (req_left == 0) & (bursts_out == 0) & ~pipe.o.valid):
            m.d.sync += busy.eq(0)
        return req_left, req_addr, primed

    def elaborate(self, platform):
        m = Module()
        geo = self.geo
        lv = geo.V.bit_length() - 1
        job = Signal(store_job_layout(geo))
        start = accept_job(m, self.job, self.busy)
        m.submodules.pipe = pipe = ReadPipe(geo, geo.V)
        wiring.connect(m, pipe.port[0], wiring.flipped(self.rd))
        read_active, read_row, read_col = self._read_rows(m, pipe, job)
        req_left, req_addr, primed = self._write_bursts(m, pipe, job, read_active)
        with m.If(start):
            p = self.job.payload
            beats = (p.m * p.n) >> lv
            m.d.sync += [job.eq(p), self.busy.eq(beats != 0), read_active.eq(beats != 0),
                         read_row.eq(0), read_col.eq(0), req_left.eq(beats),
                         req_addr.eq(p.addr), primed.eq(0)]
        return m
