"""Sequencer: fetches the frame program's descriptors from external memory and runs each one.

The program (sim/memory_image.py) is a list of 64-byte descriptors at ``prog_base``; the
sequencer walks it from index 0 until END:

- START: refused (error code 7) if ``TASK`` is not a task of the config.
- FETCH / DECODE: descriptor ``pc`` arrives through its own :class:`ChunkReader`; it is checked
  (magic byte, check word, opcode, buffer ids and sizes against the hardware's maxima) and, if
  bad, the frame stops with ``error`` set and the code and ``pc`` in ``error_info`` (nothing is
  started, so every unit is idle). As soon as a descriptor is accepted the next one is requested,
  so its fetch latency hides behind the execution.
- EXECUTE: one *job* to the unit path of the op (GemmPath, LayerNormPath, AttentionPath,
  LoadPath, StorePath), then wait until that path is idle again. Addresses get their base register
  added here (weights for tensors; the descriptor's ``base`` field for LOAD / STORE; ROUTE adds
  ``TASK * stride_a`` to pick the task's gate matrix).
- ROUTE: the gate GEMM sends each token's logits to the router; the router feeds the patch
  reorder unit, which builds the per-expert queues.
- EXPERTS: writes the prefetcher's address table (4 addresses per expert: ``addr_a + e * addr_b``
  plus the fc1-bias / fc2-weight / fc2-bias offsets), then opens the gate between the reorder
  unit's expert list and the prefetcher, and follows the prefetcher's grants: for fc1 of expert e
  it copies e's queue (token, score) into the GEMM path's token list and runs ``fc1 + GELU`` on the
  gathered XN rows into H; for fc2 it runs ``fc2`` with the SCALED epilogue, scattering
  ``x + score * y`` back into the tokens' X rows; each grant is released when its GEMM is done,
  so the prefetcher loads the next matrix into that buffer while the other one computes.

Timing: a prefetched descriptor is decoded in 1 cycle, the next fetch is requested in the next
(PREFETCH), and the job is offered in the cycle after; a path's ``busy`` falling is seen the
cycle after, so a descriptor costs about 4 cycles on top of its path's own time (the first
fetch of a frame pays the memory latency once).

Status: ``busy`` from start to END / error, ``done`` (sticky until the next start or a clear),
``op_busy`` (one bit per op: which descriptor kind is running, for the busy counters),
``fetch_wait`` (waiting for a descriptor), ``desc_count``.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.memory_image import CHECK_SEED, DESC_BYTES, DESC_WORDS, FIELDS, MAGIC, Buf, HwOp

from hw.array.epilogue import EpilogueMode
from hw.mem.bus import MemReadSignature
from hw.moe.patch_reorder import queue_entry_layout, queue_request_layout
from hw.moe.prefetcher import TENSORS, grant_layout
from hw.top.attn_path import attn_job_layout
from hw.top.chunk_reader import ChunkReader
from hw.top.csr import csr_bits
from hw.top.gemm_path import WSrc, gemm_job_layout, tok_layout
from hw.top.geometry import MEM_H, MEM_Q, MEM_X, MEM_XN, TopGeometry
from hw.top.ln_path import ln_job_layout
from hw.top.load_store import load_job_layout, store_job_layout

__all__ = ["Sequencer", "OP_BITS"]

# op_busy bit of each descriptor kind (the per-unit busy counters).
OP_BITS = {HwOp.GEMM: 0, HwOp.LAYERNORM: 1, HwOp.ATTENTION: 2, HwOp.ROUTE: 3, HwOp.EXPERTS: 4,
           HwOp.LOAD: 5, HwOp.STORE: 6}


def desc_layout() -> data.StructLayout:
    """The descriptor as a flat struct of its fields (bit offsets from sim.memory_image)."""
    fields = {}
    for name, (w, lsb, width) in sorted(FIELDS.items(), key=lambda kv: 32 * kv[1][0] + kv[1][1]):
        fields[name] = data.Field(unsigned(width), 32 * w + lsb)
    return data.FlexibleLayout(32 * DESC_WORDS, fields)


class Sequencer(wiring.Component):
    def __init__(self, geo: TopGeometry, has_moe: bool):
        self.geo, self.has_moe = geo, has_moe
        cfg = geo.cfg
        w = csr_bits(cfg)
        self.reader = ChunkReader(cfg, DESC_BYTES, depth=2 * DESC_BYTES // geo.W)
        self.table_depth = cfg.model.experts * len(TENSORS)
        super().__init__({
            "start": In(1), "clear": In(1), "task": In(w),
            "prog_base": In(w), "weight_base": In(w), "image_base": In(w), "out_base": In(w),
            "busy": Out(1), "done": Out(1), "error": Out(1), "error_info": Out(w),
            "op_busy": Out(len(OP_BITS)), "fetch_wait": Out(1), "desc_count": Out(w),
            "bus": Out(MemReadSignature(cfg)),
            "gemm": Out(stream.Signature(gemm_job_layout(geo))), "gemm_busy": In(1),
            "ln": Out(stream.Signature(ln_job_layout(geo))), "ln_busy": In(1),
            "attn": Out(stream.Signature(attn_job_layout(geo))), "attn_busy": In(1),
            "load": Out(stream.Signature(load_job_layout(geo))), "load_busy": In(1),
            "store": Out(stream.Signature(store_job_layout(geo))), "store_busy": In(1),
            "mem_error": In(1), "overflow": In(1),
            "tok_waddr": Out(range(cfg.model.tokens)), "tok_wdata": Out(tok_layout(cfg)),
            "tok_we": Out(1),
            "q_req": Out(stream.Signature(queue_request_layout(cfg))),
            "q": In(stream.Signature(queue_entry_layout(cfg))),
            "grant": In(stream.Signature(grant_layout(cfg))),
            "release": Out(1),
            "tbl_addr": Out(range(max(2, self.table_depth))), "tbl_data": Out(cfg.hw.mem_addr_bits),
            "tbl_we": Out(1),
            "experts_open": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self.geo
        cfg, md = geo.cfg, geo.cfg.model
        sw = cfg.num.weight.storage_bytes
        m.submodules.reader = rd = self.reader
        wiring.connect(m, rd.bus, wiring.flipped(self.bus))

        busy = self.busy
        pc = Signal(16)
        d = Signal(desc_layout())
        raw = rd.o.payload
        words = [raw[32 * i:32 * (i + 1)] for i in range(DESC_WORDS)]
        check = Const(CHECK_SEED, 32)
        for wd in words[:-1]:
            check = check ^ wd
        nd = desc_layout()(raw)

        # ---- descriptor checks ----
        max_rows = max(geo.rows)
        op_ok = nd.op <= max(HwOp)
        bufs_ok = (nd.src <= max(Buf)) & (nd.dst <= max(Buf))
        sizes_ok = (nd.m <= max_rows) & (nd.k <= md.max_inner_dim) & (nd.n <= max(
            3 * md.dim, md.mlp_hidden, md.expert_hidden, md.patch_dim))
        heads_ok = nd.head0 + nd.nheads <= md.heads
        moe_ok = Const(1) if self.has_moe else \
            ~((nd.op == HwOp.ROUTE) | (nd.op == HwOp.EXPERTS))
        code = Signal(8)
        m.d.comb += code.eq(Mux(nd.magic != MAGIC, 1, Mux(words[-1] != check, 2,
                            Mux(~op_ok, 3, Mux(~(bufs_ok & sizes_ok & heads_ok & moe_ok), 4, 0)))))

        def phys(buf):
            """Descriptor buffer id -> physical memory (QKV -> Q; the split is a flag)."""
            return Mux(buf == Buf.X, MEM_X, Mux(buf == Buf.XN, MEM_XN,
                                                Mux(buf == Buf.QKV, MEM_Q, MEM_H)))

        base_of = Mux(d.base == 0, self.weight_base, Mux(d.base == 1, self.prog_base,
                                                         Mux(d.base == 2, self.image_base,
                                                             self.out_base)))
        wb = self.weight_base
        task = self.task[:max(1, (md.tasks - 1).bit_length())]   # checked < tasks at start

        # ---- jobs (payloads from the current descriptor) ----
        g = self.gemm.payload
        m.d.comb += [
            g.m.eq(d.m), g.k.eq(d.k), g.n.eq(d.n), g.src.eq(phys(d.src)), g.row0s.eq(d.row0s),
            g.dst.eq(phys(d.dst)), g.row0d.eq(d.row0d), g.qkv.eq(d.dst == Buf.QKV),
            g.mode.eq(d.epi), g.gelu.eq(d.gelu), g.bias.eq(d.bias), g.w_src.eq(WSrc.DRAM),
            g.w_addr.eq(wb + d.addr_a), g.w_row_stride.eq(d.stride_a),
            g.w_tile_stride.eq(d.stride_b), g.b_addr.eq(wb + d.addr_b),
        ]
        ln = self.ln.payload
        m.d.comb += [ln.m.eq(d.m), ln.src.eq(phys(d.src)), ln.dst.eq(phys(d.dst)),
                     ln.gamma.eq(wb + d.addr_a), ln.beta.eq(wb + d.addr_b)]
        at = self.attn.payload
        m.d.comb += [at.head0.eq(d.head0), at.nheads.eq(d.nheads), at.dst.eq(phys(d.dst))]
        lo = self.load.payload
        m.d.comb += [lo.addr.eq(base_of + d.addr_a), lo.mode.eq(d.mode), lo.dst.eq(phys(d.dst)),
                     lo.row0.eq(d.row0d), lo.m.eq(d.m), lo.n.eq(d.n)]
        st = self.store.payload
        m.d.comb += [st.addr.eq(base_of + d.addr_a), st.src.eq(phys(d.src)), st.m.eq(d.m),
                     st.n.eq(d.n)]

        # ---- expert bookkeeping ----
        gr = Signal(grant_layout(cfg))           # the grant being worked on
        t_e = Signal(range(md.experts + 1))
        t_t = Signal(range(len(TENSORS)))
        t_base = Signal(cfg.hw.mem_addr_bits)
        rel_sel = Array([0, d.addr_c, d.addr_d, d.addr_e])[t_t]   # order of TENSORS
        q_i = Signal(range(md.tokens + 1))
        m.d.comb += [self.tbl_addr.eq(t_e * len(TENSORS) + t_t), self.tbl_data.eq(t_base + rel_sel),
                     self.tok_waddr.eq(q_i), self.tok_wdata.token.eq(self.q.payload.token),
                     self.tok_wdata.score.eq(self.q.payload.weight),
                     self.q_req.payload.expert.eq(gr.expert)]

        issue_done = Signal()          # the current job was handed over: wait for idle
        op_busy = self.op_busy
        m.d.comb += self.fetch_wait.eq(0)

        def next_desc():
            m.d.sync += [op_busy.eq(0), issue_done.eq(0)]
            m.next = "DECODE"

        def run_job(port, unit_busy):
            with m.If(~issue_done):
                m.d.comb += port.valid.eq(1)
                with m.If(port.ready):
                    m.d.sync += issue_done.eq(1)
            with m.Elif(~unit_busy):
                next_desc()

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                with m.If(self.start & (self.task >= md.tasks)):
                    # refused: the gate address would point past the task's gate matrices
                    m.d.sync += [self.done.eq(1), self.error.eq(1), self.error_info.eq(7),
                                 self.desc_count.eq(0)]
                with m.Elif(self.start):
                    m.d.sync += [busy.eq(1), self.done.eq(0), self.error.eq(0),
                                 self.error_info.eq(0), pc.eq(0), self.desc_count.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [rd.cmd.valid.eq(1), rd.cmd.payload.addr.eq(self.prog_base),
                             rd.cmd.payload.outer.eq(1), rd.cmd.payload.inner.eq(1),
                             rd.cmd.payload.inner_stride.eq(DESC_BYTES)]
                with m.If(rd.cmd.ready):
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.comb += [self.fetch_wait.eq(~rd.o.valid), rd.o.ready.eq(1)]
                with m.If(rd.o.valid):
                    m.d.sync += [d.eq(nd), pc.eq(pc + 1), self.desc_count.eq(self.desc_count + 1)]
                    with m.If(code != 0):
                        m.d.sync += [self.error.eq(1), self.error_info.eq(Cat(code, Const(0, 8),
                                                                              pc)),
                                     busy.eq(0), self.done.eq(1)]
                        m.next = "IDLE"
                    with m.Elif(nd.op == HwOp.END):
                        m.d.sync += [busy.eq(0), self.done.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "PREFETCH"
                        for op, bit in OP_BITS.items():
                            with m.If(nd.op == op):
                                m.d.sync += op_busy.eq(1 << bit)
            with m.State("PREFETCH"):
                # request descriptor pc (the next one) while this one runs
                m.d.comb += [rd.cmd.valid.eq(1),
                             rd.cmd.payload.addr.eq(self.prog_base + pc * DESC_BYTES),
                             rd.cmd.payload.outer.eq(1), rd.cmd.payload.inner.eq(1),
                             rd.cmd.payload.inner_stride.eq(DESC_BYTES)]
                with m.If(rd.cmd.ready):
                    m.d.sync += [t_e.eq(0), t_t.eq(0), t_base.eq(wb + d.addr_a)]
                    with m.Switch(d.op):
                        with m.Case(HwOp.LOAD):
                            m.next = "LOAD"
                        with m.Case(HwOp.STORE):
                            m.next = "STORE"
                        with m.Case(HwOp.GEMM):
                            m.next = "GEMM"
                        with m.Case(HwOp.LAYERNORM):
                            m.next = "LN"
                        with m.Case(HwOp.ATTENTION):
                            m.next = "ATTN"
                        with m.Case(HwOp.ROUTE):
                            m.next = "ROUTE"
                        with m.Case(HwOp.EXPERTS):
                            m.next = "TABLE"
            with m.State("LOAD"):
                run_job(self.load, self.load_busy)
            with m.State("STORE"):
                run_job(self.store, self.store_busy)
            with m.State("GEMM"):
                run_job(self.gemm, self.gemm_busy)
            with m.State("LN"):
                run_job(self.ln, self.ln_busy)
            with m.State("ATTN"):
                run_job(self.attn, self.attn_busy)
            with m.State("ROUTE"):
                m.d.comb += [g.dst.eq(MEM_X), g.qkv.eq(0), g.mode.eq(EpilogueMode.PLAIN),
                             g.gelu.eq(0), g.bias.eq(0), g.row0s.eq(0),
                             g.w_addr.eq(wb + d.addr_a + task * d.stride_a),
                             g.w_row_stride.eq(d.n * sw), g.router.eq(1)]
                run_job(self.gemm, self.gemm_busy)
            with m.State("TABLE"):
                m.d.comb += self.tbl_we.eq(1)
                m.d.sync += t_t.eq(t_t + 1)
                with m.If(t_t == len(TENSORS) - 1):
                    m.d.sync += [t_t.eq(0), t_e.eq(t_e + 1), t_base.eq(t_base + d.addr_b)]
                    with m.If(t_e == md.experts - 1):
                        m.next = "GRANT"
            with m.State("GRANT"):
                m.d.comb += [self.experts_open.eq(1), self.grant.ready.eq(1)]
                with m.If(self.grant.valid):
                    m.d.sync += [gr.eq(self.grant.payload), q_i.eq(0), issue_done.eq(0)]
                    with m.If(self.grant.payload.matrix == 0):
                        m.next = "QREQ"
                    with m.Else():
                        m.next = "FC2"
            with m.State("QREQ"):
                m.d.comb += [self.experts_open.eq(1), self.q_req.valid.eq(1)]
                with m.If(self.q_req.ready):
                    m.next = "QCOPY"
            with m.State("QCOPY"):
                m.d.comb += [self.experts_open.eq(1), self.q.ready.eq(1),
                             self.tok_we.eq(self.q.valid)]
                with m.If(self.q.valid):
                    m.d.sync += q_i.eq(q_i + 1)
                    with m.If(self.q.payload.last):
                        m.next = "FC1"
            with m.State("FC1"):
                m.d.comb += [self.experts_open.eq(1),
                             g.m.eq(gr.count), g.k.eq(d.k), g.n.eq(d.n), g.src.eq(phys(d.src)),
                             g.row0s.eq(0), g.dst.eq(MEM_H), g.row0d.eq(0), g.qkv.eq(0),
                             g.mode.eq(EpilogueMode.PLAIN), g.gelu.eq(1), g.bias.eq(1),
                             g.w_src.eq(WSrc.PREFETCH), g.gather.eq(1)]
                self._expert_gemm(m, issue_done, gr)
            with m.State("FC2"):
                m.d.comb += [self.experts_open.eq(1),
                             g.m.eq(gr.count), g.k.eq(d.n), g.n.eq(d.k), g.src.eq(MEM_H),
                             g.row0s.eq(0), g.dst.eq(phys(d.dst)), g.row0d.eq(0), g.qkv.eq(0),
                             g.mode.eq(EpilogueMode.SCALED), g.gelu.eq(0), g.bias.eq(1),
                             g.w_src.eq(WSrc.PREFETCH), g.scatter.eq(1)]
                self._expert_gemm(m, issue_done, gr)
            with m.State("RELEASE"):
                m.d.comb += [self.experts_open.eq(1), self.release.eq(1)]
                m.d.sync += issue_done.eq(0)
                with m.If(gr.last):
                    next_desc()
                with m.Else():
                    m.next = "GRANT"

        with m.If(self.clear & ~busy):
            m.d.sync += [self.done.eq(0), self.error.eq(0), self.error_info.eq(0)]
        # Errors reported by the memory or the queues during a frame: flagged, not fatal.
        with m.If(busy & self.mem_error & ~self.error):
            m.d.sync += [self.error.eq(1), self.error_info.eq(Cat(Const(5, 8), Const(0, 8), pc))]
        with m.If(busy & self.overflow & ~self.error):
            m.d.sync += [self.error.eq(1), self.error_info.eq(Cat(Const(6, 8), Const(0, 8), pc))]
        return m

    def _expert_gemm(self, m, issue_done, gr):
        with m.If(~issue_done):
            m.d.comb += self.gemm.valid.eq(1)
            with m.If(self.gemm.ready):
                m.d.sync += issue_done.eq(1)
        with m.Elif(~self.gemm_busy):
            m.next = "RELEASE"
