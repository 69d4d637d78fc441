"""GemmPath: the GEMM engine with the feeders and the writer that connect it to the buffers.

One *job* (:func:`gemm_job_layout`) is one GEMM of the frame. The path streams, in the engine's
beat order (hw/array/gemm_engine.py):

- ``act``: rows ``row0s + i`` of the source memory (or, with ``gather``, rows ``tok[i]`` of the
  expert's token list), re-streamed once per column tile; R lanes per beat;
- ``w``: from external memory (a :class:`ChunkReader` walking the K-major image: column tiles
  outer, K rows inner) or from the expert prefetcher's buffer (``w_src``);
- ``bias``: from external memory (contiguous) or from the prefetcher, if ``bias``;
- ``res`` (RESIDUAL / SCALED): the destination rows the result is added into, with the token's
  router score from the token list (SCALED);
- ``o``: written back to the destination rows (``row0d + i``, or ``tok[i]`` with ``scatter``);
  ``qkv`` splits the 3 dim columns over the Q, K and V memories, starting at column ``col0`` of
  part ``part`` (a head's Q, K or V columns alone: overlapped attention); ``router`` sends each row's
  first E lanes to the router instead (gate logits; with more experts than array columns the
  earlier column tiles wait in a ``tokens``-deep store and join the last tile's row, see
  ``_gate_logits``).

The token list (``tok``: ``tokens`` entries of {token, score}) is a small memory written through
``tok_w*`` by the sequencer (an expert's queue) and read by the three gathering ports.

Pipelines: act / res: generator -> token-list read (1 cycle) -> buffer read (:class:`ReadPipe`,
4 cycles; act + 3 for GELU with ``hw.gelu_site`` "act", where the job's ``gelu`` bit means GELU
on the activation beats instead of in the epilogue) -> engine; o: handshake -> token-list read -> buffer write (the engine's ``o`` is
always ready except towards the router). ``busy`` stays high from the job handshake until the
last output row is written. Throughput: the engine's (one act beat per cycle); every feeder
sustains one beat per cycle.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.array.epilogue import EpilogueMode
from hw.array.gemm_engine import GemmEngine
from hw.common import Loop, accept_job, count_nested, mul_const
from hw.fabric.replica import SELECT_SHARE, replicas
from hw.mem.bus import MemReadSignature
from hw.mem.credit_fifo import CreditFIFO
from hw.moe.router import router_in_layout, token_shape
from hw.top.buffers import ReadPipe, lane_write, read_port_signature, write_port_signature
from hw.top.chunk_reader import ChunkReader
from hw.top.geometry import MEM_K, MEM_Q, MEM_V, N_MEMS, TopGeometry

# words of the prefetch weight / bias FIFOs in front of the engine
PF_DEPTH = 4

__all__ = ["GemmPath", "gemm_job_layout", "tok_layout", "WSrc", "row_base", "unpack",
           "gate_store_bits"]


class WSrc(enum.Enum, shape=1):
    DRAM = 0
    PREFETCH = 1


def tok_layout(cfg) -> data.StructLayout:
    return data.StructLayout({"token": token_shape(cfg), "score": unsigned(cfg.num.exp.bits)})


def gate_store_bits(cfg) -> int:
    """Word width of the gate-logit store (a ``tokens``-deep memory; 0: none): the gate GEMM's
    column tiles before its last, ``array_cols`` activations each (``GemmPath._gate_logits``)."""
    return (cfg.gate_tiles - 1) * cfg.hw.array_cols * cfg.num.act.bits


def gemm_job_layout(geo: TopGeometry) -> data.StructLayout:
    cfg = geo.cfg
    a = cfg.hw.mem_addr_bits
    rows = range(cfg.buffer_rows + 1)
    return data.StructLayout({
        "m": range(cfg.gemm_max_m + 1), "k": range(cfg.gemm_max_k + 1),
        "n": range(cfg.gemm_max_n + 1),
        "src": range(N_MEMS), "row0s": rows, "gather": 1,
        "dst": range(N_MEMS), "row0d": rows, "scatter": 1, "qkv": 1, "router": 1,
        # qkv: first output column, as the Q / K / V part and the column within it
        "part": range(3), "col0": range(cfg.model.dim),
        "mode": EpilogueMode, "gelu": 1, "bias": 1, "w_src": WSrc,
        "w_addr": unsigned(a), "w_row_stride": unsigned(a), "w_tile_stride": unsigned(a),
        "b_addr": unsigned(a),
    })


def row_base(geo: TopGeometry, mem, row):
    """Word address of the first word of ``row`` in physical memory ``mem``."""
    strides = geo.strides
    if isinstance(mem, int):
        return mul_const(row, strides[mem])
    base = mul_const(row, strides[0])
    # one product per distinct stride (X / XN / Q; K / V with hw.kv_heads; H), as shifted adds
    for s in sorted(set(strides) - {strides[0]}):
        hit = 0
        for i, si in enumerate(strides):
            if si == s:
                hit = hit | (mem == i)
        base = Mux(hit, mul_const(row, s), base)
    return base


def unpack(raw, count: int, storage_bytes: int, bits: int) -> list:
    """``count`` little-endian values of ``storage_bytes`` each -> signed ``bits``-wide slices."""
    w = 8 * storage_bytes
    return [raw[i * w:i * w + bits].as_signed() for i in range(count)]


class GemmPath(wiring.Component):
    """GEMM engine plus its feeders and writer (module docstring).

    Parameters
    ----------
    geo : TopGeometry
        Sizes; job limits are ``Config.gemm_max_m`` / ``gemm_max_k`` / ``gemm_max_n``.
    prefetch_w_groups, prefetch_b_groups : int
        Depth (in groups of C values) of the prefetcher's weight / bias buffers. With
        ``prefetch_w_groups=0`` there is no prefetcher (streamed expert weights,
        hw/moe/expert_stream.py): every job reads its weights from external memory and the
        prefetcher reads are not built (``w_src`` must be DRAM).

    Ports
    -----
    job : In(stream.Signature(gemm_job_layout(geo)))
        One GEMM; accepted while ``busy`` is low.
    busy : Out(1)
        From the job handshake until the last output row is written.
    mac_active : Out(1)
        An activation beat entered the PE array this cycle.
    act_rd, res_rd : Out(read_port_signature)
        Buffer reads of activations and residual rows; ``o_wr``: result writes.
    w_bus, b_bus : Out(MemReadSignature)
        External-memory reads of weights and biases.
    pf_w_addr, pf_w_en, pf_w_data, pf_b_addr, pf_b_en, pf_b_data
        Reads of the prefetcher's buffers (data the cycle after the enable).
    tok_waddr, tok_wdata, tok_we : In
        Write port of the token list (the expert's queue, from the sequencer).
    router : Out(stream.Signature(router_in_layout))
        Gate logits of each row (ROUTE jobs).

    Latency: act / res reach the engine 5 cycles after their counters (token list 1, buffer
    read 4); an output row is written 2 cycles after its ``o`` beat. Throughput: one beat per
    cycle on every stream.
    """

    def __init__(self, geo: TopGeometry, prefetch_w_groups: int = 1, prefetch_b_groups: int = 1):
        self.geo = geo
        self.has_prefetch = prefetch_w_groups > 0
        cfg = geo.cfg
        n, C = cfg.num, geo.C
        self.job_layout = gemm_job_layout(geo)
        self.engine = GemmEngine(cfg)
        self.w_reader = ChunkReader(cfg, C * n.weight.storage_bytes, contig_port=True)
        self.b_reader = ChunkReader(cfg, C * n.bias.storage_bytes,
                                    depth=max(4, 2 * (C * n.bias.storage_bytes) // geo.W))
        super().__init__({
            "job": In(stream.Signature(self.job_layout)),
            "busy": Out(1),
            "mac_active": Out(1),
            "act_rd": Out(read_port_signature(geo)),
            "res_rd": Out(read_port_signature(geo)),
            "o_wr": Out(write_port_signature(geo)),
            "w_bus": Out(MemReadSignature(cfg)),
            "b_bus": Out(MemReadSignature(cfg)),
            "pf_w_addr": Out(range(max(2, prefetch_w_groups))),
            "pf_w_en": Out(1),
            "pf_w_data": In(data.ArrayLayout(signed(n.weight.bits), C)),
            "pf_b_addr": Out(range(max(2, prefetch_b_groups))),
            "pf_b_en": Out(1),
            "pf_b_data": In(data.ArrayLayout(signed(n.bias.bits), C)),
            "tok_waddr": In(range(cfg.model.tokens)),
            "tok_wdata": In(tok_layout(cfg)),
            "tok_we": In(1),
            "router": Out(stream.Signature(router_in_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, C = self.geo.cfg, self.geo.C
        m.submodules.engine = eng = self.engine
        m.submodules.w_reader = wr = self.w_reader
        m.submodules.b_reader = br = self.b_reader
        wiring.connect(m, wr.bus, wiring.flipped(self.w_bus))
        wiring.connect(m, br.bus, wiring.flipped(self.b_bus))

        # The job, latched at the handshake; the engine command is offered once per job.
        self.job_now = job = Signal(self.job_layout)
        start = accept_job(m, self.job, self.busy)
        cmd_pending = Signal()
        m.d.comb += [eng.cmd.valid.eq(cmd_pending), eng.cmd.payload.m.eq(job.m),
                     eng.cmd.payload.k.eq(job.k), eng.cmd.payload.n.eq(job.n),
                     eng.cmd.payload.bias.eq(job.bias),
                     eng.cmd.payload.gelu.eq(job.gelu & (not cfg.hw.gelu_on_reads)),
                     eng.cmd.payload.mode.eq(job.mode)]
        with m.If(eng.cmd.valid & eng.cmd.ready):
            m.d.sync += cmd_pending.eq(0)
        # The job's loop bounds, registered with the job (each was an add or subtract of the
        # job register in front of every counter's compare and enable).
        p = self.job.payload
        self.n_tiles = Signal(range(cfg.gemm_n_tiles + 1))
        self.nt_last = Signal.like(self.n_tiles)       # n_tiles - 1
        self.m_last = Signal.like(job.m)               # m - 1
        self.k_last = Signal.like(job.k)               # k - 1
        with m.If(start):
            p_tiles = (p.n + C - 1) >> (C.bit_length() - 1)
            m.d.sync += [self.n_tiles.eq(p_tiles), self.nt_last.eq(p_tiles - 1),
                         self.m_last.eq(p.m - 1), self.k_last.eq(p.k - 1)]

        # Token list: written by the sequencer, read by the three gathering ports.
        m.submodules.tok = tok = Memory(shape=tok_layout(cfg), depth=cfg.model.tokens, init=[])
        tw = tok.write_port()
        m.d.comb += [tw.addr.eq(self.tok_waddr), tw.data.eq(self.tok_wdata), tw.en.eq(self.tok_we)]

        restart = [job.eq(self.job.payload), self.busy.eq(1), cmd_pending.eq(1)]
        restart += self._act_feeder(m, tok.read_port())
        restart += self._res_feeder(m, tok.read_port())
        restart += self._weights(m, start)
        if self.has_prefetch:
            restart += self._prefetch_reads(m)
        restart += self._output_writer(m, tok.read_port())
        # Last, so that a start overrides every counter step of the same cycle.
        with m.If(start):
            m.d.sync += restart
        return m

    def _act_feeder(self, m, tok_rd):
        """``act``: rows of the source, K tiles of R lanes, re-streamed per column tile."""
        geo, job, nt = self.geo, self.job_now, self.n_tiles
        R, G = geo.R, geo.G
        # hw.gelu_site "act": the job's gelu bit applies GELU to these beats (fc2 reading
        # fc1's output), not in the epilogue
        act_gelu = geo.cfg.hw.gelu_on_reads
        m.submodules.act_pipe = pipe = ReadPipe(geo, R, gelu=act_gelu)
        wiring.connect(m, pipe.port[0], wiring.flipped(self.act_rd))
        act_on = Signal()
        act_tile = Signal.like(nt)
        act_k = Signal.like(job.k)
        act_row = Signal.like(job.m)
        # registered flag, updated with act_k (cycle-neutral): act_k + R >= k, the last k tile
        act_k_last = Signal()
        act_req_valid = Signal()            # the request stage (token list read in flight)
        act_req_k = Signal.like(job.k)
        act_req_row = Signal.like(job.m)
        act_advance = ~act_req_valid | pipe.req.ready
        m.d.comb += [tok_rd.addr.eq(act_row), tok_rd.en.eq(act_advance)]
        with m.If(act_advance):
            m.d.sync += [act_req_valid.eq(act_on), act_req_k.eq(act_k),
                         act_req_row.eq(act_row)]
            with m.If(act_on):
                count_nested(m, [Loop(act_row, last=self.m_last),
                                 Loop(act_k, is_last=act_k_last, step=R),
                                 Loop(act_tile, last=self.nt_last, first=None)],
                             done=[act_on.eq(0)])
                with m.If(act_row == self.m_last):
                    m.d.sync += act_k_last.eq(Mux(act_k_last, job.k <= R, act_k + 2 * R >= job.k))
        row = Mux(job.gather, tok_rd.data.token, job.row0s + act_req_row)
        eng = self.engine
        m.d.comb += [pipe.req.valid.eq(act_req_valid), pipe.req.payload.mem[0].eq(job.src),
                     pipe.req.payload.addr.eq(row_base(geo, job.src, row)
                                              + (act_req_k >> (G.bit_length() - 1))),
                     pipe.req.payload.off.eq((act_req_k & (G - 1)) >> (R.bit_length() - 1)),
                     *([pipe.req.payload.gelu.eq(job.gelu)] if act_gelu else []),
                     eng.act.valid.eq(pipe.o.valid), eng.act.payload.eq(pipe.o.payload.data),
                     pipe.o.ready.eq(eng.act.ready),
                     self.mac_active.eq(eng.act.valid & eng.act.ready)]
        return [act_on.eq(1), act_tile.eq(0), act_k.eq(0), act_row.eq(0),
                act_k_last.eq(self.job.payload.k <= R)]

    def _res_feeder(self, m, tok_rd):
        """``res`` (RESIDUAL / SCALED): the destination rows, with the token's router score."""
        geo, job, nt = self.geo, self.job_now, self.n_tiles
        C, G = geo.C, geo.G
        m.submodules.res_pipe = pipe = ReadPipe(geo, C, tag_shape=unsigned(geo.cfg.num.exp.bits))
        wiring.connect(m, pipe.port[0], wiring.flipped(self.res_rd))
        res_on = Signal()
        res_tile = Signal.like(nt)
        res_row = Signal.like(job.m)
        res_req_valid = Signal()
        res_req_tile = Signal.like(nt)
        res_req_row = Signal.like(job.m)
        res_advance = ~res_req_valid | pipe.req.ready
        m.d.comb += [tok_rd.addr.eq(res_row), tok_rd.en.eq(res_advance)]
        with m.If(res_advance):
            m.d.sync += [res_req_valid.eq(res_on), res_req_tile.eq(res_tile),
                         res_req_row.eq(res_row)]
            with m.If(res_on):
                count_nested(m, [Loop(res_row, last=self.m_last),
                                 Loop(res_tile, last=self.nt_last, first=None)],
                             done=[res_on.eq(0)])
        row = Mux(job.scatter, tok_rd.data.token, job.row0d + res_req_row)
        col = res_req_tile * C
        eng = self.engine
        m.d.comb += [pipe.req.valid.eq(res_req_valid), pipe.req.payload.mem[0].eq(job.dst),
                     pipe.req.payload.addr.eq(row_base(geo, job.dst, row)
                                              + (col >> (G.bit_length() - 1))),
                     pipe.req.payload.off.eq((col & (G - 1)) >> (C.bit_length() - 1)),
                     pipe.req.payload.tag.eq(tok_rd.data.score),
                     eng.res.valid.eq(pipe.o.valid), eng.res.payload.x.eq(pipe.o.payload.data),
                     eng.res.payload.score.eq(pipe.o.payload.tag), pipe.o.ready.eq(eng.res.ready)]
        return [res_on.eq(self.job.payload.mode != EpilogueMode.PLAIN), res_tile.eq(0),
                res_row.eq(0)]

    def _weights(self, m, start):
        """Weights and biases from external memory (one ChunkReader command each per job) or,
        with a prefetcher, from its FIFOs (:meth:`_prefetch_reads`)."""
        n, C = self.geo.cfg.num, self.geo.C
        job, nt, eng = self.job_now, self.n_tiles, self.engine
        wr, br = self.w_reader, self.b_reader
        weights = unpack(wr.o.payload, C, n.weight.storage_bytes, n.weight.bits)
        biases = unpack(br.o.payload, C, n.bias.storage_bytes, n.bias.bits)
        dram = [eng.w.valid.eq(wr.o.valid), eng.w.payload.eq(Cat(*weights)),
                wr.o.ready.eq(eng.w.ready),
                eng.bias.valid.eq(br.o.valid), eng.bias.payload.eq(Cat(*biases)),
                br.o.ready.eq(eng.bias.ready)]
        if not self.has_prefetch:
            m.d.comb += dram
        else:
            # room reserved before each read (``*_in_flight``): CreditFIFOs, r_rdy a register
            m.submodules.pfw_q = self.pf_w_fifo = pfw = CreditFIFO(C * n.weight.bits, PF_DEPTH)
            m.submodules.pfb_q = self.pf_b_fifo = pfb = CreditFIFO(C * n.bias.bits, PF_DEPTH)
            # The handshakes select on their own copy of the job's w_src bit: the job register's
            # bit also drives the payload muxes (~200 loads), and that net began the ULX3S
            # estimate's 12.3 ns path w_src -> w.valid -> the engine's weight loader.
            # The payload muxes too take their select from copies, one per SELECT_SHARE
            # bits: as the job register's compare it drove ~500 selects, and began the seed-4
            # ULX3S build's worst group (job_now -> the bias mux -> the rounding add -> the
            # bias queue's registers, 12.3 ns, 93 endpoints).
            pf_w = Cat(*weights)
            pf_b = Cat(*biases)
            shares = [(pfw.r_data, pf_w, len(pf_w)), (pfb.r_data, pf_b, len(pf_b))]
            n_sel = 1 + sum(-(-w // SELECT_SHARE) for *_, w in shares)
            pf, *sels = replicas(m, self.job.payload.w_src == WSrc.PREFETCH, n_sel,
                                 self.geo.cfg.hw.fanout_target, "w_src_pf", enable=start)
            outs = []
            for a, b, w in shares:
                parts = []
                for lo in range(0, w, SELECT_SHARE):
                    hi = min(w, lo + SELECT_SHARE)
                    parts.append(Mux(sels.pop(0), a[lo:hi], b[lo:hi]))
                outs.append(Cat(*parts))
            m.d.comb += [eng.w.valid.eq(Mux(pf, pfw.r_rdy, wr.o.valid)),
                         eng.w.payload.eq(outs[0]),
                         wr.o.ready.eq(eng.w.ready & ~pf), pfw.r_en.eq(eng.w.ready & pf),
                         eng.bias.valid.eq(Mux(pf, pfb.r_rdy, br.o.valid)),
                         eng.bias.payload.eq(outs[1]),
                         br.o.ready.eq(eng.bias.ready & ~pf), pfb.r_en.eq(eng.bias.ready & pf)]
        w_cmd_pending, b_cmd_pending = Signal(), Signal()
        m.d.comb += [wr.cmd.valid.eq(w_cmd_pending), wr.cmd.payload.addr.eq(job.w_addr),
                     wr.cmd.payload.outer.eq(nt), wr.cmd.payload.outer_stride.eq(job.w_tile_stride),
                     wr.cmd.payload.inner.eq(job.k),
                     wr.cmd.payload.inner_stride.eq(job.w_row_stride),
                     br.cmd.valid.eq(b_cmd_pending), br.cmd.payload.addr.eq(job.b_addr),
                     br.cmd.payload.outer.eq(1), br.cmd.payload.inner.eq(nt),
                     br.cmd.payload.inner_stride.eq(C * n.bias.storage_bytes)]
        with m.If(wr.cmd.valid & wr.cmd.ready):
            m.d.sync += w_cmd_pending.eq(0)
        # the weight rows' contiguity, registered with the job (ChunkReader contig_port)
        w_contig = Signal()
        m.d.comb += wr.cmd_contig.eq(w_contig)
        with m.If(start):
            m.d.sync += w_contig.eq(self.job.payload.w_row_stride == wr.U)
        with m.If(br.cmd.valid & br.cmd.ready):
            m.d.sync += b_cmd_pending.eq(0)
        p = self.job.payload
        if not self.has_prefetch:
            return [w_cmd_pending.eq(1), b_cmd_pending.eq(p.bias)]
        return [w_cmd_pending.eq(p.w_src == WSrc.DRAM),
                b_cmd_pending.eq((p.w_src == WSrc.DRAM) & p.bias)]

    def _prefetch_reads(self, m):
        """Prefetcher buffer reads: group (k, t) = k * (N / C) + t, t outer, k inner; data the
        cycle after the enable, into a FIFO with reserved room (``*_in_flight``)."""
        job, nt = self.job_now, self.n_tiles
        pfw, pfb = self.pf_w_fifo, self.pf_b_fifo
        pf_w_on, pf_w_k, pf_w_tile = Signal(), Signal.like(job.k), Signal.like(nt)
        # the group k * nt + t itself a register (k steps add nt; a new t restarts at t + 1):
        # as k * nt + t summed in front of the buffer's address, the add ran on through the
        # block RAMs' address decode (ULX3S routed 12.25 ns)
        pf_w_group, pf_w_in_flight = Signal.like(self.pf_w_addr), Signal()
        pf_w_go = pf_w_on & (pfw.level + pf_w_in_flight < PF_DEPTH)
        m.d.comb += [self.pf_w_addr.eq(pf_w_group), self.pf_w_en.eq(pf_w_go),
                     pfw.w_en.eq(pf_w_in_flight), pfw.w_data.eq(self.pf_w_data)]
        m.d.sync += pf_w_in_flight.eq(pf_w_go)
        with m.If(pf_w_go):
            m.d.sync += pf_w_group.eq(pf_w_group + nt)
            with m.If(pf_w_k == self.k_last):
                m.d.sync += pf_w_group.eq(pf_w_tile + 1)
            count_nested(m, [Loop(pf_w_k, last=self.k_last),
                             Loop(pf_w_tile, last=self.nt_last, first=None)], done=[pf_w_on.eq(0)])
        pf_b_on, pf_b_tile, pf_b_in_flight = Signal(), Signal.like(nt), Signal()
        pf_b_go = pf_b_on & (pfb.level + pf_b_in_flight < PF_DEPTH)
        m.d.comb += [self.pf_b_addr.eq(pf_b_tile), self.pf_b_en.eq(pf_b_go),
                     pfb.w_en.eq(pf_b_in_flight), pfb.w_data.eq(self.pf_b_data)]
        m.d.sync += pf_b_in_flight.eq(pf_b_go)
        with m.If(pf_b_go):
            count_nested(m, [Loop(pf_b_tile, last=self.nt_last, first=None)], done=[pf_b_on.eq(0)])
        p = self.job.payload
        return [pf_w_on.eq(p.w_src == WSrc.PREFETCH), pf_w_k.eq(0), pf_w_tile.eq(0),
                pf_w_group.eq(0), pf_b_on.eq((p.w_src == WSrc.PREFETCH) & p.bias),
                pf_b_tile.eq(0)]

    def _gate_logits(self, m, take, out_tile, out_row):
        """The E gate logits of the row the engine offers (``o``) in the gate GEMM's last column
        tile. With ``cfg.gate_tiles`` > 1 the earlier tiles' rows are written into a store of
        ``tokens`` words as they leave the engine (never stalled), and the store is read one
        row ahead (the row after a taken beat, or the current one), so a last-tile row and its
        earlier tiles meet in the same cycle: no added latency, no bubble. The read is
        transparent to the write (a one-row gate GEMM offers its last-tile row the cycle after
        writing the row's first tile)."""
        cfg, C, job = self.geo.cfg, self.geo.C, self.job_now
        o = self.engine.o
        lanes = [o.payload[c] for c in range(C)]
        T = cfg.gate_tiles
        if T == 1:
            return lanes
        lane_bits = cfg.num.act.bits
        m.submodules.gate_store = store = Memory(shape=unsigned(gate_store_bits(cfg)),
                                                 depth=cfg.model.tokens, init=[])
        sw = store.write_port(granularity=C * lane_bits)
        sr = store.read_port(transparent_for=(sw,))
        next_row = Mux(out_row == self.m_last, 0, out_row + 1)
        m.d.comb += [sw.addr.eq(out_row), sw.data.eq(Cat(*lanes).replicate(T - 1)),
                     sr.addr.eq(Mux(take, next_row, out_row))]
        for t in range(T - 1):
            m.d.comb += sw.en[t].eq(take & (out_tile == t))
        stored = data.ArrayLayout(signed(lane_bits), (T - 1) * C)(sr.data)
        return [stored[e] for e in range((T - 1) * C)] + lanes

    def _output_writer(self, m, tok_rd):
        """``o`` -> destination rows (``qkv`` splits the columns over Q, K, V; ``router`` sends
        the rows to the router instead); ``busy`` falls after the last write."""
        geo, job, nt = self.geo, self.job_now, self.n_tiles
        C, G = geo.C, geo.G
        o = self.engine.o
        out_tile = Signal.like(nt)
        out_row = Signal.like(job.m)
        out_col = Signal(range(geo.cfg.gemm_max_n + C + 1))   # column in the destination memory
        out_part = Signal(range(3))                            # Q / K / V part (qkv mode)
        out_done = Signal()                                    # the last beat was taken
        write_valid = Signal()
        write_data = Signal.like(o.payload)
        write_col = Signal.like(out_col)
        write_mem = Signal(range(N_MEMS))
        # Registered flags, updated with the counters (cycle-neutral): ``out_row == m_last`` and
        # ``out_tile == nt_last``. As compares in front of ``o.ready`` they were on the ULX3S
        # estimate's 12.4 ns paths (nt_last -> o.ready -> these counters and the engine's busy).
        out_row_last = Signal()
        out_tile_last = Signal()
        to_router = job.router
        # Gate logits wider than the array (E > C) leave the engine in column tiles: the earlier
        # tiles wait in a store, the last tile's rows go to the router with them.
        router_tile = out_tile_last
        m.d.comb += [o.ready.eq(Mux(to_router & router_tile, self.router.ready, 1)),
                     self.router.valid.eq(to_router & router_tile & self.busy & o.valid),
                     self.router.payload.token.eq(out_row),
                     self.router.payload.last.eq(out_row_last)]
        take = o.valid & o.ready
        logits = self._gate_logits(m, take & to_router, out_tile, out_row)
        for e in range(geo.cfg.model.experts):
            m.d.comb += self.router.payload.logits[e].eq(logits[e])
        m.d.comb += [tok_rd.addr.eq(out_row), tok_rd.en.eq(take)]
        qkv_mem = Mux(out_part == 0, MEM_Q, Mux(out_part == 1, MEM_K, MEM_V))
        m.d.sync += write_valid.eq(take & ~to_router)
        with m.If(take):
            m.d.sync += [write_data.eq(o.payload),
                         write_col.eq(out_col), write_mem.eq(Mux(job.qkv, qkv_mem, job.dst))]
            with m.If(out_row_last):
                m.d.sync += [out_col.eq(out_col + C),
                             out_row_last.eq(self.m_last == 0),
                             out_tile_last.eq(out_tile + 1 == self.nt_last)]
                with m.If(job.qkv & (out_col + C == geo.cfg.model.dim)):
                    m.d.sync += [out_col.eq(0), out_part.eq(out_part + 1)]
            with m.Else():
                m.d.sync += out_row_last.eq(out_row + 1 == self.m_last)
            count_nested(m, [Loop(out_row, is_last=out_row_last),
                             Loop(out_tile, is_last=out_tile_last, first=None)],
                         done=[out_done.eq(1)])
        # The word address: without scatter computed at the take, registered with the beat
        # (``write_addr``: row0d + row, times the memory's stride, + the column's word), so
        # only the scatter case (the token read at the take) computes it in the write cycle.
        # All in the write cycle, the row add, the scatter mux, the stride product and mux and
        # the column add sat in front of the buffer bank's write-port muxes: the ULX3S build's
        # routed 13.31 ns into the write-address registers (buffers.py:223, 17 endpoints).
        col_word = write_col >> (G.bit_length() - 1)
        next_mem = Mux(job.qkv, qkv_mem, job.dst)
        direct = row_base(geo, next_mem, job.row0d + out_row) + (out_col >> (G.bit_length() - 1))
        write_addr = Signal.like(direct, name="write_addr")
        with m.If(take):
            m.d.sync += write_addr.eq(direct)
        scattered = row_base(geo, write_mem, tok_rd.data.token) + col_word
        m.d.comb += lane_write(geo, self.o_wr, write_mem,
                               Mux(job.scatter, scattered, write_addr),
                               (write_col & (G - 1)) >> (C.bit_length() - 1), C,
                               write_data.as_value(), write_valid)
        with m.If(out_done & ~write_valid):
            m.d.sync += [self.busy.eq(0), out_done.eq(0)]
        p = self.job.payload
        return [out_tile.eq(0), out_row.eq(0), out_col.eq(Mux(p.qkv, p.col0, 0)),
                out_part.eq(Mux(p.qkv, p.part, 0)), out_done.eq(0),
                out_row_last.eq(p.m == 1), out_tile_last.eq(p.n <= C)]
