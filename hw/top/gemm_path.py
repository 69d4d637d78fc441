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
  ``qkv`` splits the 3 dim columns over the Q, K and V memories; ``router`` sends each row's
  first E lanes to the router instead (gate logits).

The token list (``tok``: ``tokens`` entries of {token, score}) is a small memory written through
``tok_w*`` by the sequencer (an expert's queue) and read by the three gathering ports.

Pipelines: act / res: generator -> token-list read (1 cycle) -> buffer read (:class:`ReadPipe`,
2 cycles) -> engine; o: handshake -> token-list read -> buffer write (the engine's ``o`` is
always ready except towards the router). ``busy`` stays high from the job handshake until the
last output row is written. Throughput: the engine's (one act beat per cycle); every feeder
sustains one beat per cycle.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.array.epilogue import EpilogueMode
from hw.array.gemm_engine import GemmEngine
from hw.mem.bus import MemReadSignature
from hw.moe.router import router_in_layout, token_shape
from hw.top.buffers import ReadPipe, lane_write, read_port_signature, write_port_signature
from hw.top.chunk_reader import ChunkReader
from hw.top.geometry import MEM_H, MEM_K, MEM_Q, MEM_V, N_MEMS, TopGeometry

__all__ = ["GemmPath", "gemm_job_layout", "tok_layout", "WSrc", "row_base", "unpack"]


class WSrc(enum.Enum, shape=1):
    DRAM = 0
    PREFETCH = 1


def tok_layout(cfg) -> data.StructLayout:
    return data.StructLayout({"token": token_shape(cfg), "score": unsigned(cfg.num.exp.bits)})


def gemm_job_layout(geo: TopGeometry) -> data.StructLayout:
    cfg = geo.cfg
    a = cfg.hw.mem_addr_bits
    rows = range(max(geo.rows) + 1)
    return data.StructLayout({
        "m": rows, "k": range(cfg.model.max_inner_dim + 1), "n": range(_max_n(cfg) + 1),
        "src": range(N_MEMS), "row0s": rows, "gather": 1,
        "dst": range(N_MEMS), "row0d": rows, "scatter": 1, "qkv": 1, "router": 1,
        "mode": EpilogueMode, "gelu": 1, "bias": 1, "w_src": WSrc,
        "w_addr": unsigned(a), "w_row_stride": unsigned(a), "w_tile_stride": unsigned(a),
        "b_addr": unsigned(a),
    })


def _max_n(cfg) -> int:
    md = cfg.model
    return max(3 * md.dim, md.mlp_hidden, md.expert_hidden, md.experts, md.dim)


def row_base(geo: TopGeometry, mem, row):
    """Word address of the first word of ``row`` in physical memory ``mem``."""
    sd, sh = geo.strides[0], geo.strides[MEM_H]
    if sd == sh:
        return row * sd
    return Mux(mem == MEM_H, row * sh, row * sd)


def unpack(raw, count: int, storage_bytes: int, bits: int) -> list:
    """``count`` little-endian values of ``storage_bytes`` each -> signed ``bits``-wide slices."""
    w = 8 * storage_bytes
    return [raw[i * w:i * w + bits].as_signed() for i in range(count)]


class GemmPath(wiring.Component):
    def __init__(self, geo: TopGeometry, prefetch_w_groups: int = 1, prefetch_b_groups: int = 1):
        self.geo = geo
        cfg = geo.cfg
        n, C = cfg.num, geo.C
        self.job_layout = gemm_job_layout(geo)
        self.engine = GemmEngine(cfg)
        self.w_reader = ChunkReader(cfg, C * n.weight.storage_bytes)
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
        geo = self.geo
        cfg = geo.cfg
        n = cfg.num
        R, C, G = geo.R, geo.C, geo.G
        lg = G.bit_length() - 1
        d = cfg.model.dim
        m.submodules.engine = eng = self.engine
        m.submodules.w_reader = wr = self.w_reader
        m.submodules.b_reader = br = self.b_reader
        wiring.connect(m, wr.bus, wiring.flipped(self.w_bus))
        wiring.connect(m, br.bus, wiring.flipped(self.b_bus))

        # ---------------- job ----------------
        j = Signal(self.job_layout)
        busy = self.busy
        m.d.comb += self.job.ready.eq(~busy)
        start = self.job.valid & self.job.ready
        cmd_pending = Signal()
        m.d.comb += [eng.cmd.valid.eq(cmd_pending), eng.cmd.payload.m.eq(j.m),
                     eng.cmd.payload.k.eq(j.k), eng.cmd.payload.n.eq(j.n),
                     eng.cmd.payload.bias.eq(j.bias), eng.cmd.payload.gelu.eq(j.gelu),
                     eng.cmd.payload.mode.eq(j.mode)]
        with m.If(eng.cmd.valid & eng.cmd.ready):
            m.d.sync += cmd_pending.eq(0)
        kt = Signal(range(cfg.model.max_inner_dim + 1))
        nt = Signal(range(_max_n(cfg) + 1))
        m.d.comb += [kt.eq((j.k + R - 1) >> (R.bit_length() - 1)),
                     nt.eq((j.n + C - 1) >> (C.bit_length() - 1))]

        # ---------------- token list ----------------
        m.submodules.tok = tok = Memory(shape=tok_layout(cfg), depth=cfg.model.tokens, init=[])
        tw = tok.write_port()
        m.d.comb += [tw.addr.eq(self.tok_waddr), tw.data.eq(self.tok_wdata), tw.en.eq(self.tok_we)]
        tr_act, tr_res, tr_out = tok.read_port(), tok.read_port(), tok.read_port()

        # ---------------- act feeder ----------------
        m.submodules.act_pipe = ap = ReadPipe(geo, R)
        wiring.connect(m, ap.port[0], wiring.flipped(self.act_rd))
        a_on = Signal()
        a_t = Signal.like(nt)
        a_k = Signal.like(j.k)
        a_m = Signal.like(j.m)
        a_bv = Signal()
        a_bk = Signal.like(j.k)
        a_bm = Signal.like(j.m)
        a_adv = ~a_bv | ap.req.ready
        m.d.comb += [tr_act.addr.eq(a_m), tr_act.en.eq(a_adv)]
        with m.If(a_adv):
            m.d.sync += [a_bv.eq(a_on), a_bk.eq(a_k), a_bm.eq(a_m)]
            with m.If(a_on):
                m.d.sync += a_m.eq(a_m + 1)
                with m.If(a_m == j.m - 1):
                    m.d.sync += [a_m.eq(0), a_k.eq(a_k + R)]
                    with m.If(a_k + R >= j.k):
                        m.d.sync += [a_k.eq(0), a_t.eq(a_t + 1)]
                        with m.If(a_t == nt - 1):
                            m.d.sync += a_on.eq(0)
        a_row = Mux(j.gather, tr_act.data.token, j.row0s + a_bm)
        m.d.comb += [ap.req.valid.eq(a_bv), ap.req.payload.mem[0].eq(j.src),
                     ap.req.payload.addr.eq(row_base(geo, j.src, a_row) + (a_bk >> lg)),
                     ap.req.payload.off.eq((a_bk & (G - 1)) >> (R.bit_length() - 1)),
                     eng.act.valid.eq(ap.o.valid), eng.act.payload.eq(ap.o.payload.data),
                     ap.o.ready.eq(eng.act.ready),
                     self.mac_active.eq(eng.act.valid & eng.act.ready)]

        # ---------------- res feeder ----------------
        m.submodules.res_pipe = rp = ReadPipe(geo, C, tag_shape=unsigned(n.exp.bits))
        wiring.connect(m, rp.port[0], wiring.flipped(self.res_rd))
        r_on = Signal()
        r_t = Signal.like(nt)
        r_m = Signal.like(j.m)
        r_bv = Signal()
        r_bt = Signal.like(nt)
        r_bm = Signal.like(j.m)
        r_adv = ~r_bv | rp.req.ready
        m.d.comb += [tr_res.addr.eq(r_m), tr_res.en.eq(r_adv)]
        with m.If(r_adv):
            m.d.sync += [r_bv.eq(r_on), r_bt.eq(r_t), r_bm.eq(r_m)]
            with m.If(r_on):
                m.d.sync += r_m.eq(r_m + 1)
                with m.If(r_m == j.m - 1):
                    m.d.sync += [r_m.eq(0), r_t.eq(r_t + 1)]
                    with m.If(r_t == nt - 1):
                        m.d.sync += r_on.eq(0)
        r_row = Mux(j.scatter, tr_res.data.token, j.row0d + r_bm)
        r_col = r_bt * C
        m.d.comb += [rp.req.valid.eq(r_bv), rp.req.payload.mem[0].eq(j.dst),
                     rp.req.payload.addr.eq(row_base(geo, j.dst, r_row) + (r_col >> lg)),
                     rp.req.payload.off.eq((r_col & (G - 1)) >> (C.bit_length() - 1)),
                     rp.req.payload.tag.eq(tr_res.data.score),
                     eng.res.valid.eq(rp.o.valid), eng.res.payload.x.eq(rp.o.payload.data),
                     eng.res.payload.score.eq(rp.o.payload.tag), rp.o.ready.eq(eng.res.ready)]

        # ---------------- weights: external memory or the prefetcher ----------------
        w_dram = j.w_src == WSrc.DRAM
        wv = unpack(wr.o.payload, C, n.weight.storage_bytes, n.weight.bits)
        m.submodules.pfw_q = pfw = fifo.SyncFIFO(width=C * n.weight.bits, depth=4)
        m.submodules.pfb_q = pfb = fifo.SyncFIFO(width=C * n.bias.bits, depth=4)
        with m.If(w_dram):
            m.d.comb += [eng.w.valid.eq(wr.o.valid), eng.w.payload.eq(Cat(*wv)),
                         wr.o.ready.eq(eng.w.ready)]
        with m.Else():
            m.d.comb += [eng.w.valid.eq(pfw.r_rdy), eng.w.payload.eq(pfw.r_data),
                         pfw.r_en.eq(eng.w.ready)]
        bv = unpack(br.o.payload, C, n.bias.storage_bytes, n.bias.bits)
        with m.If(w_dram):
            m.d.comb += [eng.bias.valid.eq(br.o.valid), eng.bias.payload.eq(Cat(*bv)),
                         br.o.ready.eq(eng.bias.ready)]
        with m.Else():
            m.d.comb += [eng.bias.valid.eq(pfb.r_rdy), eng.bias.payload.eq(pfb.r_data),
                         pfb.r_en.eq(eng.bias.ready)]
        # Prefetcher buffer reads: group (k, t) = k * (N / C) + t, t outer, k inner; data
        # the cycle after the enable, into a FIFO with reserved room.
        pw_on, pw_k, pw_t, pw_g, pw_fly = Signal(), Signal.like(j.k), Signal.like(nt), \
            Signal.like(self.pf_w_addr), Signal()
        pw_go = pw_on & (pfw.level + pw_fly < 4)
        m.d.comb += [self.pf_w_addr.eq(pw_g + pw_t), self.pf_w_en.eq(pw_go),
                     pfw.w_en.eq(pw_fly), pfw.w_data.eq(self.pf_w_data)]
        m.d.sync += pw_fly.eq(pw_go)
        with m.If(pw_go):
            m.d.sync += [pw_k.eq(pw_k + 1), pw_g.eq(pw_g + nt)]
            with m.If(pw_k == j.k - 1):
                m.d.sync += [pw_k.eq(0), pw_g.eq(0), pw_t.eq(pw_t + 1)]
                with m.If(pw_t == nt - 1):
                    m.d.sync += pw_on.eq(0)
        pb_on, pb_t, pb_fly = Signal(), Signal.like(nt), Signal()
        pb_go = pb_on & (pfb.level + pb_fly < 4)
        m.d.comb += [self.pf_b_addr.eq(pb_t), self.pf_b_en.eq(pb_go),
                     pfb.w_en.eq(pb_fly), pfb.w_data.eq(self.pf_b_data)]
        m.d.sync += pb_fly.eq(pb_go)
        with m.If(pb_go):
            m.d.sync += pb_t.eq(pb_t + 1)
            with m.If(pb_t == nt - 1):
                m.d.sync += pb_on.eq(0)
        # External-memory commands, issued once per job.
        wcmd_pending, bcmd_pending = Signal(), Signal()
        m.d.comb += [wr.cmd.valid.eq(wcmd_pending), wr.cmd.payload.addr.eq(j.w_addr),
                     wr.cmd.payload.outer.eq(nt), wr.cmd.payload.outer_stride.eq(j.w_tile_stride),
                     wr.cmd.payload.inner.eq(j.k), wr.cmd.payload.inner_stride.eq(j.w_row_stride),
                     br.cmd.valid.eq(bcmd_pending), br.cmd.payload.addr.eq(j.b_addr),
                     br.cmd.payload.outer.eq(1), br.cmd.payload.inner.eq(nt),
                     br.cmd.payload.inner_stride.eq(C * n.bias.storage_bytes)]
        with m.If(wr.cmd.valid & wr.cmd.ready):
            m.d.sync += wcmd_pending.eq(0)
        with m.If(br.cmd.valid & br.cmd.ready):
            m.d.sync += bcmd_pending.eq(0)

        # ---------------- output writer ----------------
        o = eng.o
        o_t = Signal.like(nt)
        o_m = Signal.like(j.m)
        o_col = Signal(range(_max_n(cfg) + C + 1))   # column inside the destination memory
        o_sub = Signal(range(3))                     # Q / K / V part (qkv mode)
        w_v = Signal()
        w_data = Signal.like(o.payload)
        w_m = Signal.like(j.m)
        w_col = Signal.like(o_col)
        w_mem = Signal(range(N_MEMS))
        to_router = j.router
        m.d.comb += [o.ready.eq(Mux(to_router, self.router.ready, 1)),
                     self.router.valid.eq(to_router & busy & o.valid),
                     self.router.payload.token.eq(o_m),
                     self.router.payload.last.eq(o_m == j.m - 1)]
        for e in range(cfg.model.experts):
            m.d.comb += self.router.payload.logits[e].eq(o.payload[e])
        o_take = o.valid & o.ready
        m.d.comb += [tr_out.addr.eq(o_m), tr_out.en.eq(o_take)]
        qkv_mem = Mux(o_sub == 0, MEM_Q, Mux(o_sub == 1, MEM_K, MEM_V))
        m.d.sync += w_v.eq(o_take & ~to_router)
        done_beats = Signal()
        with m.If(o_take):
            m.d.sync += [w_data.eq(o.payload), w_m.eq(o_m), w_col.eq(o_col),
                         w_mem.eq(Mux(j.qkv, qkv_mem, j.dst)), o_m.eq(o_m + 1)]
            with m.If(o_m == j.m - 1):
                m.d.sync += [o_m.eq(0), o_t.eq(o_t + 1), o_col.eq(o_col + C)]
                with m.If(j.qkv & (o_col + C == d)):
                    m.d.sync += [o_col.eq(0), o_sub.eq(o_sub + 1)]
                with m.If(o_t == nt - 1):
                    m.d.sync += done_beats.eq(1)
        w_row = Mux(j.scatter, tr_out.data.token, j.row0d + w_m)
        m.d.comb += lane_write(geo, self.o_wr, w_mem, row_base(geo, w_mem, w_row) + (w_col >> lg),
                               (w_col & (G - 1)) >> (C.bit_length() - 1), C, w_data.as_value(),
                               w_v)
        with m.If(done_beats & ~w_v):
            m.d.sync += [busy.eq(0), done_beats.eq(0)]

        # ---------------- start ----------------
        with m.If(start):
            p = self.job.payload
            m.d.sync += [
                j.eq(p), busy.eq(1), cmd_pending.eq(1),
                a_on.eq(1), a_t.eq(0), a_k.eq(0), a_m.eq(0),
                r_on.eq(p.mode != EpilogueMode.PLAIN), r_t.eq(0), r_m.eq(0),
                pw_on.eq(p.w_src == WSrc.PREFETCH), pw_k.eq(0), pw_t.eq(0), pw_g.eq(0),
                pb_on.eq((p.w_src == WSrc.PREFETCH) & p.bias), pb_t.eq(0),
                wcmd_pending.eq(p.w_src == WSrc.DRAM),
                bcmd_pending.eq((p.w_src == WSrc.DRAM) & p.bias),
                o_t.eq(0), o_m.eq(0), o_col.eq(0), o_sub.eq(0), done_beats.eq(0),
            ]
        return m
