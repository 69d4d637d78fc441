"""EdgeMoeTop: the whole accelerator for one frame, driven by a program in external memory.

Blocks (each in its own file):

- :class:`~hw.top.sequencer.Sequencer` walks the descriptors (sim/memory_image.py);
- :class:`~hw.top.gemm_path.GemmPath` (PE array + fused epilogue, hw/array/gemm_engine.py, with its
  activation / residual feeders, weight and bias readers and output writer);
- :class:`~hw.top.ln_path.LayerNormPath`, :class:`~hw.top.attn_path.AttentionPath`,
  :class:`~hw.top.load_store.LoadPath`, :class:`~hw.top.load_store.StorePath`;
- MoE (configs with MoE blocks): hw/moe/router.py, hw/moe/patch_reorder.py, and the source of
  the expert weights: hw/moe/prefetcher.py (``hw.expert_weights == "prefetch"``: ping/pong
  buffers) or hw/moe/expert_stream.py (``"stream"``: the GEMM path reads the weights itself);
- :class:`~hw.top.buffers.BufferBank` (X, XN/ATT, Q, K, V, H/IMG);
- :class:`~hw.mem.read_arbiter.ReadArbiter`: every reader shares the one memory read port,
  each reader's requests through a :class:`~hw.mem.stream_slice.StreamSlice` (one cycle);
  only the StorePath writes;
- :class:`~hw.top.csr.CsrBlock`: start / task / status / base addresses / counters.

Ports: ``csr`` (In :func:`~hw.top.csr.csr_signature`), ``mem_rd`` (Out MemReadSignature),
``mem_wr`` (Out MemWriteSignature), ``busy`` / ``done`` / ``error`` (Out, mirrors of STATUS),
``desc_index`` (Out: descriptors decoded so far in this frame; a trace hook for per-descriptor
timing), ``bus_error`` (In: a memory error seen outside the burst bus, e.g. an AXI error
response; flags error code 5 during a frame).

A frame: the host writes the base registers and TASK, then CTRL.start; the sequencer runs the
program to END (``done``); the output tokens are in the out region. Latency: a frame is the sum
of its descriptors (each its path's time plus ~4 cycles, see sequencer.py); measured figures
(tiny ~30 k cycles, 85 % MAC-active) in docs/top_level.md. Throughput: one frame at a time.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.memory_image import HwOp

from hw.mem.bus import MemReadSignature, MemWriteSignature, req_layout
from hw.mem.read_arbiter import ReadArbiter
from hw.mem.stream_slice import StreamSlice
from hw.moe.expert_stream import ExpertStreamer
from hw.moe.patch_reorder import PatchReorder
from hw.moe.prefetcher import ExpertPrefetcher, prefetch_geometry
from hw.moe.router import Router
from hw.top.attn_path import AttentionPath
from hw.top.buffer_wiring import READERS, WRITERS, client_memories
from hw.top.buffers import BufferBank
from hw.top.csr import COUNTERS, CsrBlock, csr_bits, csr_signature
from hw.top.gemm_path import GemmPath
from hw.top.geometry import TopGeometry
from hw.top.job_stage import JobStage
from hw.top.ln_path import LayerNormPath
from hw.top.load_store import LoadPath, StorePath
from hw.top.sequencer import OP_BITS, Sequencer

__all__ = ["EdgeMoeTop"]


class EdgeMoeTop(wiring.Component):
    """The whole accelerator: sequencer, paths, buffers, MoE blocks, memory arbiter, CSRs.

    Parameters
    ----------
    cfg : Config
        The model and hardware config; the MoE blocks (router, reorder unit, prefetcher) are
        built only if ``cfg.model.moe_blocks`` is not empty.

    Ports
    -----
    csr : In :func:`~hw.top.csr.csr_signature`
        Register port (start, task, base addresses, status, counters); ``rdata``
        :attr:`csr_read_latency` cycles after ``addr``.
    mem_rd : Out :func:`~hw.mem.bus.MemReadSignature`
        The one external read port, shared by every reader through the read arbiter.
    mem_wr : Out :func:`~hw.mem.bus.MemWriteSignature`
        External writes (only the STORE path writes).
    busy, done, error : Out(1)
        Mirrors of the STATUS register.
    desc_index : Out(16)
        Descriptors decoded so far in this frame (a trace hook for per-descriptor timing).
    bus_error : In(1)
        An error reported by the memory system outside the burst bus (an AXI bridge's sticky
        RRESP / BRESP error, hw/link/axi4_master.py): during a frame it flags error code 5 like
        a failed write. Leave it unconnected (0) on the native bus.

    ``read_data_reg``: the read arbiter hands read data to the readers through that many
    register stages, 0-2 (:class:`~hw.mem.read_arbiter.ReadArbiter` ``data_reg``): as many
    cycles more from ``mem_rd``'s data to the readers, which
    :class:`~hw.top.top_with_memory.TopWithMemory` takes out of its DRAM model's latency (so
    the frame's cycles do not change).

    Latency: one frame is the sum of its descriptors, each its path's time plus about 4
    cycles (sim/cycles/frame.py models it). Throughput: one frame at a time.
    """

    csr_read_latency = CsrBlock.read_latency

    def __init__(self, cfg: Config, *, read_data_reg: int = 0):
        self.cfg = cfg
        self.read_data_reg = int(read_data_reg)
        self.geo = TopGeometry.of(cfg)
        self.has_moe = bool(cfg.model.moe_blocks)
        super().__init__({
            "csr": In(csr_signature(cfg)),
            "mem_rd": Out(MemReadSignature(cfg)),
            "mem_wr": Out(MemWriteSignature(cfg)),
            "busy": Out(1), "done": Out(1), "error": Out(1),
            "desc_index": Out(16),
            "bus_error": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, geo = self.cfg, self.geo
        if self.has_moe and cfg.hw.expert_weights == "stream":
            gemm = GemmPath(geo, prefetch_w_groups=0)
        elif self.has_moe:
            pg = prefetch_geometry(cfg)
            gemm = GemmPath(geo, pg["w_groups"], pg["b_groups"])
        else:
            gemm = GemmPath(geo)
        m.submodules.gemm = gemm
        m.submodules.ln = ln = LayerNormPath(geo)
        m.submodules.attn = attn = AttentionPath(geo)
        m.submodules.load = load = LoadPath(geo)
        m.submodules.store = store = StorePath(geo)
        m.submodules.seq = seq = Sequencer(geo, self.has_moe)
        m.submodules.csr = csr = CsrBlock(cfg)   # reads: CSR_READ_LATENCY cycles
        wiring.connect(m, wiring.flipped(self.csr), csr.bus)

        self._buffers(m, gemm, ln, attn, load, store)
        masters = [seq.bus, gemm.w_bus, gemm.b_bus, ln.g_bus, ln.b_bus, load.bus]
        # a read-data beat the prefetcher had no load for (its rd_data is always ready): a
        # memory error like the store's
        overrun = 0
        if self.has_moe:
            pf = self._moe(m, gemm, seq)
            if cfg.hw.expert_weights == "prefetch":     # the streamer reads no memory
                masters.append(pf.bus)
                overrun = pf.overrun
            stall = pf.stall_cycles
        else:
            stall = Const(0)
        self._memory(m, masters, store)
        self._sequencer_wiring(m, seq, csr, gemm, ln, attn, load, store, overrun)
        self._counters(m, seq, csr, gemm, attn, stall)
        return m

    def _buffers(self, m, gemm, ln, attn, load, store):
        """The buffer bank and its read / write clients."""
        readers = [gemm.act_rd, gemm.res_rd, ln.rd, attn.q_rd, attn.k_rd, attn.v_rd, store.rd]
        writers = [gemm.o_wr, ln.wr, attn.wr, load.wr]
        # each client's mux covers only the memories it can address (hw/top/buffer_wiring.py)
        read_mems, write_mems = client_memories(self.cfg)
        assert len(READERS) == len(readers) and len(WRITERS) == len(writers)
        m.submodules.bufs = bufs = BufferBank(self.geo, len(readers), len(writers), read_mems,
                                              write_mems)
        for i, r in enumerate(readers):
            wiring.connect(m, r, bufs.rd[i])
        for i, w in enumerate(writers):
            wiring.connect(m, w, bufs.wr[i])

    def _moe(self, m, gemm, seq):
        """Router, reorder unit and prefetcher (or streamer) between the GEMM path and the
        sequencer; returns the prefetcher or streamer."""
        cfg = self.cfg
        m.submodules.router = router = Router(cfg)
        m.submodules.reorder = reorder = PatchReorder(cfg)
        streamed = cfg.hw.expert_weights == "stream"
        if streamed:
            m.submodules.expert_stream = pf = ExpertStreamer(cfg, layers=1)
        else:
            m.submodules.prefetch = pf = ExpertPrefetcher(cfg, layers=1)
        # Register slices on both sides of the router: the router's stall reached back
        # through the gate GEMM's epilogue to every pipeline enable of the engine, and
        # forward from the reorder unit (the ECP5 build's critical path once the memory
        # requests were sliced).
        m.submodules.gate_slice = gate_sl = StreamSlice(router.in_layout)
        # Two payload slices with their own valid / skid copies: the skid bit is the router's
        # o.ready and also selected every payload bit (ULX3S estimate, 14 ns path).
        m.submodules.route_slice = route_sl = StreamSlice(
            router.out_layout, copies=2, fanout_target=cfg.hw.fanout_target)
        wiring.connect(m, gemm.router, gate_sl.i)
        wiring.connect(m, gate_sl.o, router.i)
        wiring.connect(m, router.o, route_sl.i)
        wiring.connect(m, route_sl.o, reorder.i)
        # The expert list reaches the prefetcher only once the sequencer has written the
        # address table of this MoE block (EXPERTS descriptor).
        m.d.comb += [pf.experts.valid.eq(reorder.experts.valid & seq.experts_open),
                     pf.experts.payload.eq(reorder.experts.payload),
                     reorder.experts.ready.eq(pf.experts.ready & seq.experts_open),
                     pf.layer.eq(0)]
        wiring.connect(m, seq.q_req, reorder.q_req)
        wiring.connect(m, reorder.q, seq.q)
        wiring.connect(m, pf.grant, seq.grant)
        m.d.comb += [pf.tbl_addr.eq(seq.tbl_addr), pf.tbl_data.eq(seq.tbl_data),
                     pf.tbl_we.eq(seq.tbl_we), seq.overflow.eq(reorder.overflow)]
        if not streamed:
            m.d.comb += [pf.release.eq(seq.release),
                         pf.w_addr.eq(gemm.pf_w_addr), pf.w_en.eq(gemm.pf_w_en),
                         gemm.pf_w_data.eq(pf.w_data),
                         pf.b_addr.eq(gemm.pf_b_addr), pf.b_en.eq(gemm.pf_b_en),
                         gemm.pf_b_data.eq(pf.b_data)]
        return pf

    def _memory(self, m, masters, store):
        """Every reader on the read arbiter (through a request slice each); STORE writes."""
        m.submodules.arb = arb = ReadArbiter(self.cfg, len(masters),
                                             data_reg=self.read_data_reg)
        for i, b in enumerate(masters):
            # A register slice on each request: the masters' credit logic and the arbiter's
            # round-robin pick were one combinational path (the ECP5 builds' critical path).
            m.submodules[f"rd_req_slice{i}"] = sl = StreamSlice(req_layout(self.cfg))
            wiring.connect(m, b.rd_req, sl.i)
            wiring.connect(m, sl.o, arb.masters[i].rd_req)
            wiring.connect(m, arb.masters[i].rd_data, b.rd_data)
        wiring.connect(m, arb.mem, wiring.flipped(self.mem_rd))
        wiring.connect(m, store.bus, wiring.flipped(self.mem_wr))

    def _sequencer_wiring(self, m, seq, csr, gemm, ln, attn, load, store, overrun=0):
        """Sequencer jobs and status to the paths; CSRs to the sequencer and the status ports."""
        # Each job through a JobStage: the job's payload is the sequencer's FSM state muxed
        # through its fields, and the path's start logic was 6-8 LUT levels behind it.
        # (hw.job_stage; the cycle models: sim.cycles.jobs)
        for name, path in (("gemm", gemm), ("ln", ln), ("attn", attn), ("load", load),
                           ("store", store)):
            port, busy = getattr(seq, name), path.busy
            busy_next = getattr(path, "busy_next", None)
            if self.cfg.hw.job_stage:
                m.submodules[f"{name}_job"] = stage = JobStage(port.payload.shape())
                wiring.connect(m, port, stage.i)
                wiring.connect(m, stage.o, path.job)
                busy = busy | stage.held
                if busy_next is not None:
                    busy_next = busy_next | stage.held_next
            else:
                wiring.connect(m, port, path.job)
            if busy_next is not None:
                # The sequencer reads the attention path's busy from a register of its own, loaded
                # with the value the OR of the path's and its job stage's busy registers will
                # have after the edge (so it is that OR, cycle for cycle): read across the die
                # into the FSM's move and DECODE's take, they were the ULX3S build's routed
                # critical path (attn.busy -> seq_state, 11.7 ns, 9.5 of it routing).
                near = Signal(name=f"{name}_busy_seq")
                m.d.sync += near.eq(busy_next)
                busy = near
            m.d.comb += getattr(seq, f"{name}_busy").eq(busy)
        m.d.comb += [seq.mem_error.eq(store.error | self.bus_error | overrun),
                     gemm.tok_waddr.eq(seq.tok_waddr), gemm.tok_wdata.eq(seq.tok_wdata),
                     gemm.tok_we.eq(seq.tok_we)]
        m.d.comb += [seq.start.eq(csr.start), seq.clear.eq(csr.clear), seq.task.eq(csr.task),
                     seq.prog_base.eq(csr.prog_base), seq.weight_base.eq(csr.weight_base),
                     seq.image_base.eq(csr.image_base), seq.out_base.eq(csr.out_base),
                     csr.busy.eq(seq.busy), csr.done.eq(seq.done), csr.error.eq(seq.error),
                     csr.error_info.eq(seq.error_info), self.busy.eq(seq.busy),
                     self.done.eq(seq.done), self.error.eq(seq.error),
                     self.desc_index.eq(seq.desc_count)]

    def _counters(self, m, seq, csr, gemm, attn, stall):
        """Performance counters of the CSR block (restart with each frame)."""
        w = csr_bits(self.cfg)
        W = self.geo.W
        rd, wr = self.mem_rd.rd_data, self.mem_wr.wr_data
        op_busy = {op: seq.op_busy[OP_BITS[HwOp[op]]]
                   for op in ("LAYERNORM", "ATTENTION", "ROUTE", "EXPERTS", "LOAD", "STORE")}
        events = {
            "CYCLES": seq.busy,
            "MAC_ACTIVE": gemm.mac_active,
            "GEMM_BUSY": gemm.busy,
            "LN_BUSY": op_busy["LAYERNORM"],
            "ATTN_BUSY": attn.busy,          # the unit: a background ATTENTION outlives its
            #                                  descriptor
            "ROUTE_BUSY": op_busy["ROUTE"],
            "EXPERTS_BUSY": op_busy["EXPERTS"],
            "LOAD_BUSY": op_busy["LOAD"],
            "STORE_BUSY": op_busy["STORE"],
            "FETCH_WAIT": seq.fetch_wait,
        }
        start = csr.start & ~seq.busy
        for name, ev in events.items():
            c = Signal(w, name=f"cnt_{name.lower()}")
            with m.If(start):
                m.d.sync += c.eq(0)
            with m.Elif(ev):
                m.d.sync += c.eq(c + 1)
            m.d.comb += getattr(csr, name.lower()).eq(c)
        for name, beat, amount in (("BYTES_READ", rd, W), ("BYTES_WRITTEN", wr, W)):
            c = Signal(w, name=f"cnt_{name.lower()}")
            with m.If(start):
                m.d.sync += c.eq(0)
            with m.Elif(beat.valid & beat.ready):
                m.d.sync += c.eq(c + amount)
            m.d.comb += getattr(csr, name.lower()).eq(c)
        m.d.comb += [csr.prefetch_stall.eq(stall), csr.descriptors.eq(seq.desc_count)]
        assert set(events) | {"BYTES_READ", "BYTES_WRITTEN", "PREFETCH_STALL",
                              "DESCRIPTORS"} == set(COUNTERS)
