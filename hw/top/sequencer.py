"""Sequencer: fetches the frame program's descriptors from external memory and runs each one.

The program (sim/memory_image.py) is a list of 64-byte descriptors at ``prog_base``; the
sequencer walks it from index 0 until END:

- START: refused (``ErrorCode.BAD_TASK``) if ``TASK`` is not a task of the config, then
  (``ErrorCode.BAD_BASE``) if a ``*_BASE`` register is not a multiple of the memory beat (the
  bus addresses whole beats, hw/mem/bus.py, and descriptor offsets keep that alignment).
- FETCH / DECODE: descriptor ``pc`` arrives through its own :class:`ChunkReader`; it is checked
  (magic byte, check word, opcode, and every field the op decodes against
  :func:`sim.memory_image.desc_ranges`, the limits the program builder obeys too) and, if bad,
  the frame stops with ``error`` set and the :class:`~hw.top.error_codes.ErrorCode` and ``pc``
  in ``error_info`` (nothing is started, so every unit is idle). A field is never truncated into
  a job: the constructor checks that every job field holds its descriptor field's range. As
  soon as a descriptor is accepted the next one is requested, so its fetch latency hides behind
  the execution.
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
  gathered XN rows into H (with a row-tiled H, ``hw.hidden_rows``, the prefetcher grants fc1 and
  fc2 once per chunk of at most that many tokens, and only the chunk's entries are copied); for fc2 it runs ``fc2`` with the SCALED epilogue, scattering
  ``x + score * y`` back into the tokens' X rows; each grant is released when its GEMM is done,
  so the prefetcher loads the next matrix into that buffer while the other one computes.
  With streamed expert weights (``cfg.hw.expert_weights == "stream"``) the table and the
  grants come from :class:`~hw.moe.expert_stream.ExpertStreamer` instead, each grant carrying
  its matrix's weight and bias addresses, and the expert GEMMs read their weights from external
  memory like a dense GEMM (row stride N weights, column tiles C weights apart).

Timing: a fetched descriptor passes three register stages (the second holds its test
results, the third its check result) and is decoded in 1 cycle, the next fetch is requested in
the next (PREFETCH), and the job is offered in the cycle after; a path's ``busy`` falling is
seen the cycle after, so a descriptor costs about 4 cycles on top of its path's own time (the
first fetch of a frame pays the memory latency and the three stages once).

Status: ``busy`` from start to END / error, ``done`` (sticky until the next start or a clear),
``op_busy`` (one bit per op: which descriptor kind is running, up to the DECODE after it; for
the busy counters),
``fetch_wait`` (waiting for a descriptor), ``desc_count``.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from sim.config import DESC_INDEX_BITS
from sim.memory_image import (CHECK_SEED, DESC_BYTES, DESC_WORDS, FIELDS, MAGIC, Buf, EpiMode,
                              HwOp, LoadMode, desc_ranges, wired_buffers)

from hw.array.epilogue import EpilogueMode
from hw.common import Loop, count_nested
from hw.mem.bus import MemReadSignature
from hw.fabric.sum_compare import sum_at_least, sum_at_most
from hw.mem.stream_slice import StreamSlice
from hw.moe.expert_stream import stream_grant_layout
from hw.moe.patch_reorder import queue_entry_layout, queue_request_layout
from hw.moe.prefetcher import TENSORS, grant_layout
from hw.top.attn_path import attn_job_layout
from hw.top.chunk_reader import ChunkReader
from hw.top.csr import csr_bits
from hw.top.error_codes import ERROR_CODE_BITS, ERROR_DESC_SHIFT, ErrorCode
from hw.top.gemm_path import WSrc, gemm_job_layout, tok_layout
from hw.top.geometry import BUF_MEMORY, MEM_H, MEM_X, N_MEMS, TopGeometry
from hw.top.ln_path import ln_job_layout
from hw.top.load_store import load_beats, load_job_layout, store_job_layout

__all__ = ["Sequencer", "OP_BITS", "desc_layout"]

# op_busy bit of each descriptor kind (the per-unit busy counters).
OP_BITS = {HwOp.GEMM: 0, HwOp.LAYERNORM: 1, HwOp.ATTENTION: 2, HwOp.ROUTE: 3, HwOp.EXPERTS: 4,
           HwOp.LOAD: 5, HwOp.STORE: 6}

# The descriptor's check word is compared in this many parts in the test stage (an 8-bit
# compare behind the 16-word XOR is 4 LUT levels; the whole 32 bits was 6).
CHECK_PARTS = 4

# Next state after PREFETCH, per op.
_OP_STATE = {HwOp.LOAD: "LOAD", HwOp.STORE: "STORE", HwOp.GEMM: "GEMM", HwOp.LAYERNORM: "LN",
             HwOp.ATTENTION: "ATTN", HwOp.ROUTE: "ROUTE", HwOp.EXPERTS: "TABLE"}


def desc_layout() -> data.StructLayout:
    """The descriptor as a flat struct of its fields (bit offsets from sim.memory_image)."""
    fields = {}
    for name, (w, lsb, width) in sorted(FIELDS.items(), key=lambda kv: 32 * kv[1][0] + kv[1][1]):
        fields[name] = data.Field(unsigned(width), 32 * w + lsb)
    return data.FlexibleLayout(32 * DESC_WORDS, fields)


def _check_job_fields(geo: TopGeometry) -> None:
    """Raise ValueError if a job field cannot hold the range of the descriptor field copied
    into it (the job would silently truncate a descriptor the check accepted)."""
    ranges = desc_ranges(geo.cfg)

    def hi(op, name):
        return max(r.hi for r in ranges[op] if name in r.fields)

    gemm, load = gemm_job_layout(geo), load_job_layout(geo)
    copies = [(gemm, "m", hi(HwOp.GEMM, "m")), (gemm, "k", hi(HwOp.GEMM, "k")),
              (gemm, "n", hi(HwOp.GEMM, "n")), (gemm, "row0s", hi(HwOp.GEMM, "row0s")),
              (gemm, "row0d", hi(HwOp.GEMM, "row0d")), (gemm, "m", hi(HwOp.ROUTE, "m")),
              (gemm, "k", hi(HwOp.ROUTE, "k")), (gemm, "n", hi(HwOp.ROUTE, "n")),
              (gemm, "k", max(hi(HwOp.EXPERTS, "k"), hi(HwOp.EXPERTS, "n"))),
              (gemm, "n", max(hi(HwOp.EXPERTS, "k"), hi(HwOp.EXPERTS, "n"))),
              (load, "m", hi(HwOp.LOAD, "m")), (load, "n", hi(HwOp.LOAD, "n")),
              (load, "row0", hi(HwOp.LOAD, "row0d")), (load, "patch0", hi(HwOp.LOAD, "patch0")),
              (store_job_layout(geo), "m", hi(HwOp.STORE, "m")),
              (store_job_layout(geo), "n", hi(HwOp.STORE, "n")),
              (ln_job_layout(geo), "m", hi(HwOp.LAYERNORM, "m")),
              (attn_job_layout(geo), "head0", hi(HwOp.ATTENTION, "head0") - 1),
              (attn_job_layout(geo), "nheads", hi(HwOp.ATTENTION, "nheads"))]
    for layout, name, most in copies:
        width = data.Layout.cast(layout)[name].width
        if most >= 1 << width:
            raise ValueError(f"Sequencer: job field {name} ({width} bits) must hold the "
                             f"descriptor limit {most} ({geo.cfg.name})")


class Sequencer(wiring.Component):
    """Walks the frame program and hands one job at a time to the unit paths (module docstring).

    Parameters
    ----------
    geo : TopGeometry
        Sizes of the top level; the descriptor limits come from ``desc_ranges(geo.cfg)``.
    has_moe : bool
        The top level has the router / reorder / prefetcher; without them ROUTE and EXPERTS are
        rejected with ``ErrorCode.BAD_FIELD``.

    Ports
    -----
    start, clear, task, *_base : In
        From the CSR block (``start`` / ``clear`` one-cycle strobes).
    busy, done, error, error_info, op_busy, fetch_wait, desc_count : Out
        Status (``error_info``: :class:`ErrorCode` in bits 0-7, descriptor index in 16-31).
    bus : Out(MemReadSignature)
        Descriptor reads.
    gemm, ln, attn, load, store : Out(stream.Signature(job))
        One job per descriptor; the matching ``*_busy`` input says when the path is idle again.
    mem_error, overflow : In(1)
        Errors raised during a frame (flagged, not fatal).
    tok_waddr, tok_wdata, tok_we : Out
        Write port of the GEMM path's token list (an expert's queue).
    q_req, q : stream
        Queue requests to the patch reorder unit and its (token, score) entries.
    grant : In(stream), release : Out(1)
        The prefetcher's buffer grants and their release (streamed expert weights: the
        streamer's grants, :func:`~hw.moe.expert_stream.stream_grant_layout`; no release).
    tbl_addr, tbl_data, tbl_we : Out
        The prefetcher's expert address table.
    experts_open : Out(1)
        Lets the reorder unit's expert list through to the prefetcher (EXPERTS running).

    Latency: a descriptor costs about 4 cycles on top of its path's time (module docstring).
    """

    def __init__(self, geo: TopGeometry, has_moe: bool):
        self.geo, self.has_moe = geo, has_moe
        cfg = geo.cfg
        _check_job_fields(geo)
        w = csr_bits(cfg)
        self.reader = ChunkReader(cfg, DESC_BYTES, depth=2 * DESC_BYTES // geo.W)
        self.streamed = cfg.hw.expert_weights == "stream"
        self.grant_layout = stream_grant_layout(cfg) if self.streamed else grant_layout(cfg)
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
            "grant": In(stream.Signature(self.grant_layout)),
            "release": Out(1),
            "tbl_addr": Out(range(max(2, self.table_depth))), "tbl_data": Out(cfg.hw.mem_addr_bits),
            "tbl_we": Out(1),
            "experts_open": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.geo.cfg
        m.submodules.reader = rd = self.reader
        wiring.connect(m, rd.bus, wiring.flipped(self.bus))

        self.pc = Signal(DESC_INDEX_BITS)           # index of the next descriptor to fetch
        self.desc = Signal(desc_layout())           # the descriptor being executed
        # The descriptor's absolute addresses load with it (a base register + an offset, summed
        # in the check stages): as sums of the descriptor register in the job payloads, the
        # base mux and the 32-bit add ran into every JobStage register (ULX3S routed 11.3 ns,
        # 30 endpoints). The bases are written only between frames.
        abits = cfg.hw.mem_addr_bits
        self.w_addr_a = Signal(abits, name="w_addr_a")    # weight_base + addr_a
        self.w_addr_b = Signal(abits, name="w_addr_b")    # weight_base + addr_b
        self.base_addr_a = Signal(abits, name="base_addr_a")  # the descriptor's base + addr_a
        # The reader's descriptor goes through three register stages before DECODE: the first
        # takes it off the reader's FIFO (LUT RAM); the second holds it with the result of each
        # test (magic byte, check word, opcode, and per op "every field in range"), computed
        # from the first; the third with the op's field result picked from those and the
        # "bad" / "end" flags. DECODE's handshake, the status registers' enables and the
        # descriptor register's load enable then start at registers. On the ULX3S estimate
        # the check logic behind the FIFO's read port, then the error code after the tests
        # (9 LUT levels and a carry chain, 13.5 ns) and the code compared in DECODE (18.75 ns)
        # were the worst stages in turn. Cost: 3 cycles on each descriptor fetch, hidden behind
        # the running descriptor except the frame's first one and a background ATTENTION's
        # (sim.cycles.frame.DESC_FETCH_EXTRA).
        raw_shape = unsigned(8 * DESC_BYTES)
        # 512-bit payloads: the valid / skid bits in copies per 64-bit slice (hw/mem/stream_slice)
        wide = dict(copies=max(1, DESC_BYTES // 8), fanout_target=cfg.hw.fanout_target)
        m.submodules.desc_slice = raw = StreamSlice(raw_shape, **wide)
        ranged_ops = list(desc_ranges(cfg))
        tests, op_tests = self._check(raw.o.payload, desc_layout()(raw.o.payload))
        n_tests = sum(len(op_tests[op]) for op in ranged_ops)
        # the check word's compare is CHECK_PARTS bits here (each 8 bits' XOR of the words
        # equal), ANDed in the third stage
        tested_ok = data.StructLayout({"magic": 1, "check": CHECK_PARTS, "opcode": 1})
        m.submodules.desc_tested = tst = StreamSlice(data.StructLayout(
            {"raw": raw_shape, "ok": tested_ok, "op_tests": unsigned(n_tests),
             "op_hot": unsigned(len(ranged_ops)), "end": 1}), **wide)
        # The third stage holds the error code of a bad descriptor and ``stop`` (bad or END)
        # as registers: made from its check bits after it, they were 4 LUT levels between
        # its valid and the status registers (ULX3S routed 12.3 ns, error_info).
        # It also holds the descriptor's absolute addresses (base register + offset), summed
        # from the second stage: summed from the third, the base mux and the 32-bit adds ran
        # into the address registers loaded in DECODE (ULX3S routed 10.2-10.8 ns). The bases
        # are written only between frames, when no descriptor is in these stages.
        m.submodules.desc_checked = chk = StreamSlice(data.StructLayout(
            {"raw": raw_shape, "code": ERROR_CODE_BITS, "bad": 1, "end": 1, "stop": 1,
             "w_addr_a": abits, "w_addr_b": abits, "base_addr_a": abits}), **wide)
        wiring.connect(m, rd.o, raw.i)
        raw_desc = desc_layout()(raw.o.payload)
        # Each field test is its own bit in the second stage (and the opcode one-hot): the
        # per-op AND behind the compares was 8 LUT levels (the ULX3S build's routed 12.9 ns,
        # 124 endpoints); the third stage ANDs each op's bits under its one-hot bit.
        m.d.comb += [tst.i.valid.eq(raw.o.valid), raw.o.ready.eq(tst.i.ready),
                     tst.i.payload.raw.eq(raw.o.payload),
                     tst.i.payload.op_tests.eq(Cat(*(b for op in ranged_ops
                                                     for b in op_tests[op]))),
                     tst.i.payload.op_hot.eq(Cat(*(raw_desc.op == op for op in ranged_ops))),
                     tst.i.payload.end.eq(raw_desc.op == HwOp.END)]
        m.d.comb += [tst.i.payload.ok[name].eq(v) for name, v in tests.items()]
        tested = tst.o.payload
        fields_ok = Signal()
        per_op, at = [], 0
        for i, op in enumerate(ranged_ops):
            n = len(op_tests[op])
            per_op.append(tested.op_hot[i] & (tested.op_tests[at:at + n].all() if n else 1))
            at += n
        # END (and bad opcodes) decode no field: no one-hot bit set
        m.d.comb += fields_ok.eq(~tested.op_hot.any() | Cat(*per_op).any())
        t = tested.ok
        check_ok = t.check.all()
        bad = ~(t.magic & check_ok & t.opcode & fields_ok)
        m.d.comb += [chk.i.valid.eq(tst.o.valid), tst.o.ready.eq(chk.i.ready),
                     chk.i.payload.raw.eq(tested.raw), chk.i.payload.end.eq(tested.end),
                     chk.i.payload.code.eq(self._error_code(m, SimpleNamespace(
                         magic=t.magic, check=check_ok, opcode=t.opcode, fields=fields_ok))),
                     chk.i.payload.bad.eq(bad), chk.i.payload.stop.eq(bad | tested.end)]
        tested_desc = desc_layout()(tested.raw)
        m.d.comb += [
            chk.i.payload.w_addr_a.eq(self.weight_base + tested_desc.addr_a),
            chk.i.payload.w_addr_b.eq(self.weight_base + tested_desc.addr_b),
            chk.i.payload.base_addr_a.eq(self._base_of(tested_desc.base) + tested_desc.addr_a)]
        self.checked = chk.o
        fetched = desc_layout()(chk.o.payload.raw)  # the checked descriptor
        check = chk.o.payload        # its check results and the bad / end flags
        self.check_code = check.code
        self._job_payloads(m)
        self.grant_now = Signal(self.grant_layout)  # the grant being worked on
        self.table_expert = Signal(range(cfg.model.experts + 1))
        self.table_tensor = Signal(range(len(TENSORS)))
        self.table_base = Signal(cfg.hw.mem_addr_bits)
        self.queue_index = Signal(range(cfg.model.tokens + 1))
        # Row-tiled H (hw.hidden_rows): the prefetcher grants each expert's fc1 / fc2 once per
        # chunk of at most h_rows tokens; the chunk's queue entries start at chunk_base.
        self.chunk_base = Signal(range(cfg.model.tokens + 1))
        self.chunk_expert = Signal(range(cfg.model.experts + 1))   # experts: none yet
        self.job_issued = Signal()                  # the current job was handed over: wait
        # Dependency rule: a descriptor starts when no background ATTENTION runs, or, if it is
        # marked ``concurrent`` (hazard-free, sim.memory_image.check_concurrency), at once; an
        # ATTENTION always waits for the attention unit.
        self.may_start = Signal()
        self.concurrent = Signal()                  # d.concurrent and d.op != ATTENTION
        m.d.comb += self.may_start.eq(~self.attn_busy | self.concurrent)
        self._expert_bookkeeping(m)

        self.fetch_req = self._fetch_command(m, rd)
        # The descriptor register (~500 bits) loads on "in DECODE and a checked descriptor",
        # held back or not: nothing reads it in DECODE, and the accepted one is the last load.
        # ``in_decode`` is a register kept with the FSM's moves into and out of DECODE, so the
        # wide enable is one LUT from flip-flops, not the state decode, the hold (an END or an
        # error waiting for a background ATTENTION) and the handshake (ULX3S estimate: 12 ns).
        self.in_decode = Signal()
        with m.If(self.in_decode & self.checked.valid):
            m.d.sync += [self.desc.eq(fetched), self.concurrent.eq(
                fetched.concurrent & (fetched.op != HwOp.ATTENTION)),
                self.w_addr_a.eq(check.w_addr_a), self.w_addr_b.eq(check.w_addr_b),
                self.base_addr_a.eq(check.base_addr_a)]
        go, take, bad_task = self._frame_control(m, fetched, check)
        with m.FSM(name="seq"):
            self._fetch_states(m, rd, check, go, take)
            self._unit_states(m)
            self._expert_states(m)

        busy, pc = self.busy, self.pc
        with m.If(self.clear & ~busy):
            m.d.sync += [self.done.eq(0), self.error.eq(0)]
        # Errors reported by the memory or the queues during a frame: flagged, not fatal.
        with m.If(busy & (self.mem_error | self.overflow) & ~self.error):
            m.d.sync += self.error.eq(1)
        # ERROR (error_info): one write per cycle, picked apart by ``busy``. A frame's own
        # errors (the queues', the memory's, a bad descriptor's) come while it runs; start,
        # its refusals and clear while idle. As one chain of writes (start ... overflow, the
        # last one winning) it was 5 LUT levels from DECODE's handshake (ULX3S routed 11 ns).
        free = ~self.error
        with m.If(busy):
            with m.If(self.overflow & free):
                m.d.sync += self.error_info.eq(self._error_word(ErrorCode.QUEUE_OVERFLOW, pc))
            with m.Elif(self.mem_error & free):
                m.d.sync += self.error_info.eq(self._error_word(ErrorCode.MEM_ERROR, pc))
            with m.Elif(take & check.bad):
                m.d.sync += self.error_info.eq(self._error_word(self.check_code, pc))
        with m.Elif(self.clear):
            m.d.sync += self.error_info.eq(0)
        with m.Elif(self.start):
            m.d.sync += self.error_info.eq(Mux(bad_task, ErrorCode.BAD_TASK,
                                               Mux(go, 0, ErrorCode.BAD_BASE)))
        return m

    @staticmethod
    def _error_word(code, pc):
        """The ``ERROR`` register: code in bits 0-7, descriptor index in bits 16-31."""
        return Cat(Const(code, ERROR_CODE_BITS) if isinstance(code, int) else code,
                   Const(0, ERROR_DESC_SHIFT - ERROR_CODE_BITS), pc)

    def _check(self, raw, fetched):
        """The tests of the descriptor the reader delivers (combinational): ``(tests,
        op_tests)``, ``tests`` a dict of ``magic``, ``check`` (the check word) and ``opcode``,
        ``op_tests`` per op of ``desc_ranges`` the list of its field tests (the fields are in
        range for that op when all pass); each 1 when it passes. Every op's tests are built,
        the opcode picks one op's in the next stage."""
        words = [raw[32 * i:32 * (i + 1)] for i in range(DESC_WORDS)]
        check = Const(CHECK_SEED, 32)
        for wd in words[:-1]:
            check = check ^ wd
        op_tests = {}
        for op, ranges in desc_ranges(self.geo.cfg).items():
            bits = []
            # lo and hi are separate bits (the next stage ANDs them); a two-field sum is
            # compared on one carry chain (hw/fabric/sum_compare)
            for r in ranges:
                bits += self._range_tests(fetched, r)
            if op == HwOp.GEMM:      # sim.memory_image.check_desc: col0d only into QKV
                dim3 = 3 * self.geo.cfg.model.dim
                bits += [Mux(fetched.dst == Buf.QKV, sum_at_most(fetched.col0d, fetched.n, dim3),
                             fetched.col0d == 0), self._kv_cols_ok(fetched)]
            bits += [self._rows_ok(op, fetched), self._wired_ok(op, fetched)]
            if op in (HwOp.ROUTE, HwOp.EXPERTS) and not self.has_moe:
                bits = [Const(0)]
            op_tests[op] = [b for b in bits if not (isinstance(b, Const) and b.value == 1)]
        part = 32 // CHECK_PARTS
        check_parts = Cat(*(words[-1][part * i:part * (i + 1)] == check[part * i:part * (i + 1)]
                            for i in range(CHECK_PARTS)))
        return ({"magic": fetched.magic == MAGIC, "check": check_parts,
                 "opcode": fetched.op <= max(HwOp)}, op_tests)

    @staticmethod
    def _range_tests(d, r):
        """The bits of one :class:`FieldRange` test: ``lo <= sum <= hi`` (no ``lo`` bit for
        ``lo`` 0)."""
        terms = [getattr(d, f) for f in r.fields]
        if len(terms) == 1:
            v = terms[0]
            return [v <= r.hi] + ([v >= r.lo] if r.lo > 0 else [])
        if len(terms) != 2:
            raise ValueError(f"Sequencer: a field range sums one or two fields, got {r.fields}")
        return [sum_at_most(*terms, r.hi)] + ([sum_at_least(*terms, r.lo)] if r.lo > 0 else [])

    @staticmethod
    def _error_code(m, ok):
        """The :class:`ErrorCode` of the check results ``ok`` (the first failed check wins)."""
        code = Signal(ERROR_CODE_BITS)
        m.d.comb += code.eq(Mux(~ok.magic, ErrorCode.BAD_MAGIC,
                                Mux(~ok.check, ErrorCode.BAD_CHECK,
                                    Mux(~ok.opcode, ErrorCode.BAD_OPCODE,
                                        Mux(~ok.fields, ErrorCode.BAD_FIELD, ErrorCode.NONE)))))
        return code

    def _wired_ok(self, op, d):
        """sim.memory_image.check_desc: every buffer field names a buffer the bank wires for it
        (``wired_buffers``; always true with ``hw.buffer_wiring == "full"``)."""
        ok = Const(1)
        for (field_op, name), bufs in wired_buffers(self.geo.cfg).items():
            if field_op != op or bufs == frozenset(Buf):
                continue
            buf = d.dst if name == "res" else getattr(d, name)
            member = Const(sum(1 << b for b in bufs), len(Buf)).bit_select(buf[:2], 1)
            if name == "res":
                member = member | (d.epi == EpiMode.PLAIN)
            ok = ok & member
        return ok

    def _kv_cols_ok(self, d):
        """sim.memory_image.check_desc: a GEMM into K or V stays inside their ``cfg.kv_cols``
        columns (``hw.kv_heads``; all of dim otherwise, which the QKV check covers)."""
        cfg = self.geo.cfg
        if cfg.kv_cols == cfg.model.dim:
            return Const(1)
        into_kv = (d.dst == Buf.QKV) & (d.col0d >= cfg.model.dim)
        return ~into_kv | sum_at_most(self._qkv_col(d.col0d), d.n, cfg.kv_cols)

    def _rows_ok(self, op, d):
        """sim.memory_image.check_desc's per-buffer checks: the rows of a row-tiled H
        (``hw.hidden_rows``), and a LOAD's patch tile (whole rows of patches, ``patch0``)."""
        cfg = self.geo.cfg
        ok = Const(1)
        if cfg.h_rows < cfg.buffer_rows:
            pairs = {HwOp.GEMM: ((d.row0s, d.src), (d.row0d, d.dst)),
                     HwOp.LOAD: ((d.row0d, d.dst),)}.get(op, ())
            for row0, buf in pairs:
                ok = ok & ((buf != Buf.H) | sum_at_most(row0, d.m, cfg.h_rows))
        if op == HwOp.LOAD:
            md = cfg.model
            gw = md.grid[1]
            tile = ((d.patch0 % gw == 0) & (d.m % gw == 0) & sum_at_most(d.patch0, d.m, md.patches))
            ok = ok & Mux(d.mode == LoadMode.PATCHIFY, tile, d.patch0 == 0)
        return ok

    @staticmethod
    def _phys(buf):
        """Descriptor buffer id -> physical memory (``BUF_MEMORY``: QKV -> Q; the split is a
        flag)."""
        return Array(Const(mem, range(N_MEMS)) for mem in BUF_MEMORY)[buf[:2]]

    def _qkv_part(self, col0d):
        """Q / K / V part of a column of the QKV destination (0 .. 3 dim - 1)."""
        dim = self.geo.cfg.model.dim
        return Mux(col0d >= 2 * dim, 2, Mux(col0d >= dim, 1, 0))

    def _qkv_col(self, col0d):
        """Column of a QKV destination column within its Q, K or V memory."""
        dim = self.geo.cfg.model.dim
        return (col0d - Mux(col0d >= 2 * dim, 2 * dim, Mux(col0d >= dim, dim, 0)))[
            :max(1, (dim - 1).bit_length())]

    def _job_payloads(self, m):
        """Every job payload from the current descriptor (the GEMM's is overridden by ROUTE and
        the expert states)."""
        d, phys = self.desc, self._phys
        g = self.gemm.payload
        m.d.comb += [
            g.m.eq(d.m), g.k.eq(d.k), g.n.eq(d.n), g.src.eq(phys(d.src)), g.row0s.eq(d.row0s),
            g.dst.eq(phys(d.dst)), g.row0d.eq(d.row0d), g.qkv.eq(d.dst == Buf.QKV),
            g.part.eq(self._qkv_part(d.col0d)), g.col0.eq(self._qkv_col(d.col0d)),
            g.mode.eq(d.epi), g.gelu.eq(d.gelu), g.bias.eq(d.bias), g.w_src.eq(WSrc.DRAM),
            g.w_addr.eq(self.w_addr_a), g.w_row_stride.eq(d.stride_a),
            g.w_tile_stride.eq(d.stride_b), g.b_addr.eq(self.w_addr_b),
        ]
        ln = self.ln.payload
        m.d.comb += [ln.m.eq(d.m), ln.src.eq(phys(d.src)), ln.dst.eq(phys(d.dst)),
                     ln.gamma.eq(self.w_addr_a), ln.beta.eq(self.w_addr_b)]
        at = self.attn.payload
        m.d.comb += [at.head0.eq(d.head0), at.nheads.eq(d.nheads), at.dst.eq(phys(d.dst))]
        lo = self.load.payload
        m.d.comb += [lo.addr.eq(self.base_addr_a), lo.mode.eq(d.mode), lo.dst.eq(phys(d.dst)),
                     lo.row0.eq(d.row0d), lo.patch0.eq(d.patch0), lo.m.eq(d.m), lo.n.eq(d.n),
                     lo.beats.eq(load_beats(self.geo, d.m, d.n))]
        st = self.store.payload
        m.d.comb += [st.addr.eq(self.base_addr_a), st.src.eq(phys(d.src)), st.m.eq(d.m),
                     st.n.eq(d.n)]

    def _base_of(self, base):
        """The base register a descriptor's ``base`` field names."""
        return Mux(base == 0, self.weight_base, Mux(base == 1, self.prog_base,
                                                    Mux(base == 2, self.image_base,
                                                        self.out_base)))

    def _expert_bookkeeping(self, m):
        """Address table entry, token-list write and queue request of the expert states."""
        d = self.desc
        offset = Array([0, d.addr_c, d.addr_d, d.addr_e])[self.table_tensor]  # order of TENSORS
        m.d.comb += [self.tbl_addr.eq(self.table_expert * len(TENSORS) + self.table_tensor),
                     self.tbl_data.eq(self.table_base + offset),
                     self.tok_waddr.eq(self.queue_index - self.chunk_base),
                     self.tok_wdata.token.eq(self.q.payload.token),
                     self.tok_wdata.score.eq(self.q.payload.weight),
                     self.q_req.payload.expert.eq(self.grant_now.expert)]

    def _next_desc(self, m):
        m.d.sync += [self.job_issued.eq(0), self.in_decode.eq(1)]
        m.next = "DECODE"

    def _issue(self, m, port, unit_busy, then=None, detach=None):
        """Offer one job on ``port`` once :meth:`_may_start` allows it, wait until the path is
        idle again, then go to state ``then`` (default: the next descriptor). With ``detach``
        (a background ATTENTION) the next descriptor follows the handshake at once."""
        with m.If(~self.job_issued):
            m.d.comb += port.valid.eq(self.may_start)
            with m.If(port.valid & port.ready):
                if detach is None:
                    m.d.sync += self.job_issued.eq(1)
                else:
                    with m.If(detach):
                        self._next_desc(m)
                    with m.Else():
                        m.d.sync += self.job_issued.eq(1)
        with m.Elif(~unit_busy):
            if then is None:
                self._next_desc(m)
            else:
                m.next = then

    def _misaligned_base(self):
        """Some base register has a bit set below the memory beat."""
        low = exact_log2(self.geo.cfg.hw.mem_bytes_per_cycle)
        bases = (self.prog_base, self.weight_base, self.image_base, self.out_base)
        return Cat(b[:low] for b in bases).any() if low else Const(0)

    def _fetch_command(self, m, rd):
        """The reader's command: descriptor ``pc`` at ``prog_base + pc * DESC_BYTES``.

        Its valid is a register, set with the moves into FETCH / PREFETCH (``pc`` is 0 in
        FETCH): decoded from the FSM state, it reached the reader's ~180 command registers'
        enables through 5 LUT levels (ULX3S estimate, 12.6 ns). Returns the valid register.
        """
        fetch_req = Signal()
        m.d.comb += [rd.cmd.valid.eq(fetch_req),
                     rd.cmd.payload.addr.eq(self.prog_base + self.pc * DESC_BYTES),
                     rd.cmd.payload.outer.eq(1), rd.cmd.payload.inner.eq(1),
                     rd.cmd.payload.inner_stride.eq(DESC_BYTES)]
        with m.If(rd.cmd.ready):
            m.d.sync += fetch_req.eq(0)
        return fetch_req

    def _frame_control(self, m, fetched, check):
        """Start, DECODE's handshake and the frame's status registers, outside the FSM.

        The FSM (:meth:`_fetch_states`) moves on the same conditions. Here they are made of
        flags kept as registers (``busy`` is high exactly outside IDLE, ``in_decode`` in
        DECODE) rather than the FSM's decoded state: decoded, the state reached the status
        registers' enables through 8 LUT levels (ULX3S estimate, 14.9 ns). Returns
        ``(go, take, bad_task)``: a frame starts; DECODE takes the checked descriptor; TASK is out
        of range.
        """
        md = self.geo.cfg.model
        busy, pc = self.busy, self.pc
        start = self.start & ~busy
        bad_task = self.task >= md.tasks   # the gate address would point past the gate matrices
        go = Signal()
        m.d.comb += go.eq(start & ~bad_task & ~self._misaligned_base())
        # END, or an error, ends the frame only when a background ATTENTION is done
        hold = check.stop & self.attn_busy
        take = Signal()
        m.d.comb += [take.eq(self.in_decode & self.checked.valid & ~hold),
                     self.fetch_wait.eq(self.in_decode & ~self.checked.valid),
                     self.checked.ready.eq(self.in_decode & ~hold)]
        with m.If(start & bad_task):
            m.d.sync += [self.done.eq(1), self.error.eq(1), self.desc_count.eq(0)]
        with m.Elif(start & ~go):
            m.d.sync += [self.done.eq(1), self.error.eq(1), self.desc_count.eq(0)]
        with m.Elif(go):
            m.d.sync += [busy.eq(1), self.done.eq(0), self.error.eq(0), pc.eq(0),
                         self.desc_count.eq(0), self.fetch_req.eq(1)]
        # op_busy falls in DECODE (a register), not with the FSM's move there: the move's
        # condition (state, job issued, the path's busy) took 10 LUT levels to its enable.
        # The performance counters' *_BUSY then count the DECODE cycle to the descriptor before.
        with m.If(self.in_decode):
            m.d.sync += self.op_busy.eq(0)
        with m.If(take):
            m.d.sync += [pc.eq(pc + 1), self.desc_count.eq(self.desc_count + 1),
                         self.in_decode.eq(0)]
            with m.If(check.bad):
                m.d.sync += [self.error.eq(1), busy.eq(0), self.done.eq(1)]
            with m.Elif(check.end):
                m.d.sync += [busy.eq(0), self.done.eq(1)]
            with m.Else():
                m.d.sync += self.fetch_req.eq(1)
                for op, bit in OP_BITS.items():
                    with m.If(fetched.op == op):
                        m.d.sync += self.op_busy.eq(1 << bit)
        return go, take, bad_task

    def _fetch_states(self, m, rd, check, go, take):
        """IDLE, FETCH (descriptor 0), DECODE (END / error / run), PREFETCH: the moves only
        (:meth:`_frame_control` sets the registers)."""
        d = self.desc
        with m.State("IDLE"):
            with m.If(go):
                m.next = "FETCH"
        with m.State("FETCH"):
            with m.If(rd.cmd.ready):
                m.d.sync += self.in_decode.eq(1)
                m.next = "DECODE"
        with m.State("DECODE"):
            with m.If(take):
                with m.If(check.stop):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "PREFETCH"
        with m.State("PREFETCH"):
            # request descriptor pc (the next one) while this one runs
            with m.If(rd.cmd.ready):
                m.d.sync += [self.table_expert.eq(0), self.table_tensor.eq(0),
                             self.table_base.eq(self.w_addr_a),
                             self.chunk_expert.eq(self.geo.cfg.model.experts)]
                with m.Switch(d.op):
                    for op, state in _OP_STATE.items():
                        with m.Case(op):
                            m.next = state

    def _unit_states(self, m):
        """One job to a unit path per descriptor; ROUTE is the gate GEMM into the router."""
        cfg = self.geo.cfg
        d, g = self.desc, self.gemm.payload
        task = self.task[:max(1, (cfg.model.tasks - 1).bit_length())]   # checked < tasks
        for state, port, unit_busy in (("LOAD", self.load, self.load_busy),
                                       ("STORE", self.store, self.store_busy),
                                       ("GEMM", self.gemm, self.gemm_busy),
                                       ("LN", self.ln, self.ln_busy),
                                       ):
            with m.State(state):
                self._issue(m, port, unit_busy)
        with m.State("ATTN"):
            self._issue(m, self.attn, self.attn_busy, detach=d.background)
        with m.State("ROUTE"):
            m.d.comb += [g.dst.eq(MEM_X), g.qkv.eq(0), g.mode.eq(EpilogueMode.PLAIN),
                         g.gelu.eq(0), g.bias.eq(0), g.row0s.eq(0),
                         g.w_addr.eq(self.w_addr_a + task * d.stride_a),
                         g.w_row_stride.eq(d.n * cfg.num.weight.storage_bytes),
                         g.router.eq(1)]
            self._issue(m, self.gemm, self.gemm_busy)

    def _expert_weights(self, cols):
        """Weight source of an expert GEMM whose K-major matrix has ``cols`` columns: the
        prefetcher's buffer, or (streamed) external memory at the grant's addresses, read like
        a dense layer (rows ``cols`` weights apart, column tiles ``C`` weights apart)."""
        g, grant = self.gemm.payload, self.grant_now
        if not self.streamed:
            return [g.w_src.eq(WSrc.PREFETCH)]
        sw = self.geo.cfg.num.weight.storage_bytes
        return [g.w_src.eq(WSrc.DRAM), g.w_addr.eq(grant.w_addr), g.b_addr.eq(grant.b_addr),
                g.w_row_stride.eq(cols << exact_log2(sw)),
                g.w_tile_stride.eq(self.geo.C * sw)]

    def _expert_states(self, m):
        """EXPERTS: address table, then fc1 / fc2 of each grant of the prefetcher."""
        md = self.geo.cfg.model
        d, g, grant = self.desc, self.gemm.payload, self.grant_now
        # GELU between fc1 and fc2: fc1's epilogue, or fc2's activation reads (hw.gelu_site)
        gelu_fc1 = not self.geo.cfg.hw.gelu_on_reads
        phys = self._phys
        with m.State("TABLE"):
            with m.If(self.may_start):
                m.d.comb += self.tbl_we.eq(1)
                count_nested(m, [Loop(self.table_tensor, last=len(TENSORS) - 1),
                                 Loop(self.table_expert, last=md.experts - 1, first=None)])
                with m.If(self.table_tensor == len(TENSORS) - 1):
                    m.d.sync += self.table_base.eq(self.table_base + d.addr_b)
                    with m.If(self.table_expert == md.experts - 1):
                        m.next = "GRANT"
        with m.State("GRANT"):
            m.d.comb += [self.experts_open.eq(1), self.grant.ready.eq(1)]
            with m.If(self.grant.valid):
                m.d.sync += [grant.eq(self.grant.payload), self.queue_index.eq(0),
                             self.job_issued.eq(0)]
                with m.If(self.grant.payload.matrix == 0):
                    m.next = "QREQ"
                    if self.geo.cfg.h_tiled:
                        same = self.grant.payload.expert == self.chunk_expert
                        m.d.sync += [self.chunk_expert.eq(self.grant.payload.expert),
                                     self.chunk_base.eq(Mux(same,
                                                            self.chunk_base + self.geo.cfg.h_rows,
                                                            0))]
                with m.Else():
                    m.next = "FC2"
        with m.State("QREQ"):
            m.d.comb += [self.experts_open.eq(1), self.q_req.valid.eq(1)]
            with m.If(self.q_req.ready):
                m.next = "QCOPY"
        with m.State("QCOPY"):
            # the whole queue streams past; only this chunk's entries go to the token list
            window = ((self.queue_index >= self.chunk_base)
                      & (self.queue_index < self.chunk_base + grant.count))
            m.d.comb += [self.experts_open.eq(1), self.q.ready.eq(1),
                         self.tok_we.eq(self.q.valid & window)]
            with m.If(self.q.valid):
                m.d.sync += self.queue_index.eq(self.queue_index + 1)
                with m.If(self.q.payload.last):
                    m.next = "FC1"
        with m.State("FC1"):
            m.d.comb += [self.experts_open.eq(1),
                         g.m.eq(grant.count), g.k.eq(d.k), g.n.eq(d.n), g.src.eq(phys(d.src)),
                         g.row0s.eq(0), g.dst.eq(MEM_H), g.row0d.eq(0), g.qkv.eq(0),
                         g.mode.eq(EpilogueMode.PLAIN), g.gelu.eq(gelu_fc1), g.bias.eq(1),
                         g.gather.eq(1)]
            m.d.comb += self._expert_weights(d.n)
            self._issue(m, self.gemm, self.gemm_busy, then="RELEASE")
        with m.State("FC2"):
            m.d.comb += [self.experts_open.eq(1),
                         g.m.eq(grant.count), g.k.eq(d.n), g.n.eq(d.k), g.src.eq(MEM_H),
                         g.row0s.eq(0), g.dst.eq(phys(d.dst)), g.row0d.eq(0), g.qkv.eq(0),
                         g.mode.eq(EpilogueMode.SCALED), g.gelu.eq(not gelu_fc1), g.bias.eq(1),
                         g.scatter.eq(1)]
            m.d.comb += self._expert_weights(d.k)
            self._issue(m, self.gemm, self.gemm_busy, then="RELEASE")
        with m.State("RELEASE"):
            m.d.comb += [self.experts_open.eq(1), self.release.eq(1)]
            m.d.sync += self.job_issued.eq(0)
            with m.If(grant.last):
                self._next_desc(m)
            with m.Else():
                m.next = "GRANT"
