"""MoE layer: gate GEMM -> router -> patch reorder -> per expert fc1 + GELU, fc2, scaled combine.

``MoELayer(cfg, expert_table, gate_table)`` runs one MoE MLP of the encoder for one frame and one
task, bit-exact with :func:`sim.golden.model.moe_block` after LayerNorm (it takes ``XN = LN2(x)``
and the residual ``X`` and returns ``X + sum_k score_k * expert_k(XN)``, experts in ascending
order, each a saturating ``scaled_accumulate``). It is the integration of:

- :class:`hw.array.gemm_engine.GemmEngine` (one R x C array, fused epilogue) for every GEMM: the
  gate (``XN @ W_gate[task]``, no bias), each chosen expert's fc1 (+ bias, GELU) and fc2 (+ bias,
  SCALED epilogue: ``X[token] = sat(X[token] + round(score * y))``);
- :class:`hw.moe.router.Router` (softmax + top-k) on the gate GEMM's output rows;
- :class:`hw.moe.patch_reorder.PatchReorder` (per-expert queues, list of chosen experts);
- :class:`hw.moe.prefetcher.ExpertPrefetcher` (ping/pong buffers, one matrix each) on the memory
  bus;
- a :class:`hw.mem.dma.ReadDma` + :class:`hw.mem.unpack.BeatUnpacker` streaming the task's gate
  weights from memory straight into the engine's weight port.

On-chip buffers (sized from the config): ``XN`` (tokens x dim, rows of R), ``X`` (tokens x dim,
rows of C; updated in place by the fc2 epilogue), ``H`` (tokens x expert_hidden, the current
expert's fc1 output, rows of C), and the current expert's token list (copied from its queue once
per expert, so the activation, residual and output paths can each walk it independently).

Sequence for one command ``{task, layer}``:

1. LOAD: accept ``tokens * dim / R`` beats on ``xn`` (token-major, R values each) and
   ``tokens * dim / C`` beats on ``x`` (C values each).
2. ROUTE: gate GEMM (M = tokens, K = dim, N = E); its output rows go to the router, whose
   routing goes to the reorder unit, whose expert list goes to the prefetcher (which starts
   loading fc1 of the first chosen expert as soon as the list arrives).
3. EXPERTS: for each grant of the prefetcher: on an fc1 grant, copy the expert's queue into the
   token list; run the GEMM with the granted buffer's weights and bias (fc1: activations are the
   XN rows of the listed tokens, output to H; fc2: activations from H, residual rows and scores
   from X and the list, output back into X); release the buffer.
4. OUTPUT: stream X (``tokens * dim / C`` beats of C values) on ``y``.

Ports: ``cmd`` (In stream ``{task, layer}``), ``xn``, ``x`` (In streams), ``y`` (Out stream),
``bus`` (Out :func:`hw.mem.bus.MemReadSignature`), status counters (``cfg.hw.moe_counter_bits``,
per command): ``cycles`` (command accept to last ``y`` beat), ``route_cycles`` (ROUTE phase),
``expert_cycles`` (EXPERTS phase), ``stall_cycles`` (EXPERTS cycles spent waiting for a weight
buffer), ``first_wait_cycles`` (the part of ``stall_cycles`` before the first grant: routing
drain plus the first matrix's load, which nothing can hide; the rest is prefetch the double
buffer failed to hide).

Timing: ROUTE takes the gate GEMM's cycles plus the router/reorder drain; EXPERTS takes, per
chosen expert, two GEMMs (``sim.cycles.gemm.gemm_cycles``) plus a few cycles of hand-over and the
queue copy, plus any prefetch stall; :mod:`sim.cycles.moe` models it.

Requirements (checked): ``experts <= array_cols`` (a token's logits are one output row),
``dim`` and ``expert_hidden`` multiples of ``array_cols``, ``array_cols`` a multiple of
``array_rows`` (H rows of C are read as activation beats of R).
"""
from __future__ import annotations

import math
from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.array.epilogue import EpilogueMode
from hw.array.gemm_engine import GemmEngine
from hw.common import Loop, count_nested
from hw.mem.bus import MemReadSignature, beat_bytes
from hw.mem.dma import ReadDma
from hw.mem.unpack import BeatUnpacker
from hw.moe.patch_reorder import PatchReorder
from hw.moe.prefetcher import ExpertPrefetcher
from hw.moe.router import Router, token_shape

__all__ = ["MoELayer", "moe_cmd_layout", "gate_address_table"]


def gate_address_table(cfg: Config, tensors, base: int = 0) -> list[int]:
    """Gate-weight addresses, MoE layer-major then task, from manifest tensor entries."""
    off = {t["name"]: int(t["offset"]) for t in tensors}
    return [base + off[f"blocks.{b}.mlp.gates.{t}.weight"]
            for b in cfg.model.moe_blocks for t in range(cfg.model.tasks)]


def moe_cmd_layout(cfg: Config, layers: int) -> data.StructLayout:
    return data.StructLayout({"task": range(max(cfg.model.tasks, 2)),
                              "layer": range(max(layers, 2))})


class MoELayer(wiring.Component):
    """One MoE MLP layer on the GEMM engine with routing and weight prefetch (module docstring).

    Parameters
    ----------
    cfg : Config
        Model sizes (tokens, dim, expert_hidden, experts, top_k), array size, formats.
    expert_table : list[int], optional
        The prefetcher's address table (:func:`hw.moe.prefetcher.expert_address_table`).
    gate_table : list[int], optional
        Gate-weight addresses, layer-major then task (:func:`gate_address_table`).
    layers : int, optional
        MoE layers in the tables (default ``len(cfg.model.moe_blocks)``).

    Ports
    -----
    cmd : In stream, :func:`moe_cmd_layout`
        ``{task, layer}``; taken while idle.
    xn : In stream of R activations
        ``LN2(x)``, token-major, ``tokens * dim / R`` beats per command.
    x : In stream of C activations
        The residual, token-major, ``tokens * dim / C`` beats per command.
    y : Out stream of C activations
        The layer's output in the order of ``x``, after the last expert.
    bus : Out :func:`hw.mem.bus.MemReadSignature`
        Gate weights, then the prefetcher's expert weights.
    cycles, route_cycles, expert_cycles, stall_cycles, first_wait_cycles : Out counters
        Per command (see the module docstring).

    Latency: one command takes the LOAD beats, the gate GEMM plus the router / reorder drain,
    two GEMMs per chosen expert plus hand-over and prefetch stalls, and the ``y`` beats
    (:func:`sim.cycles.moe.moe_layer_cycles`). Throughput: one command at a time.
    """

    _GATE, _FC1, _FC2 = 0, 1, 2

    def __init__(self, cfg: Config, expert_table=None, gate_table=None, layers: int | None = None):
        md, hw = cfg.model, cfg.hw
        R, C = hw.array_rows, hw.array_cols
        if md.experts > C:
            raise ValueError(f"MoELayer: experts {md.experts} > array_cols {C}")
        if hw.gelu_on_reads:
            raise ValueError(f"MoELayer: hw.gelu_site {hw.gelu_site!r}: this bench applies GELU "
                             f"in fc1's epilogue (its activation feeder has no GELU lanes); "
                             f"the top level (hw/top) runs either site")
        for v, what in ((md.dim, "dim"), (md.expert_hidden, "expert_hidden")):
            if v % C or v % R:
                raise ValueError(f"MoELayer: {what} {v} is not a multiple of the array size")
        if C % R:
            raise ValueError(f"MoELayer: array_cols {C} is not a multiple of array_rows {R}")
        self.cfg = cfg
        self.layers = len(md.moe_blocks) if layers is None else layers
        self.gate_table = list(gate_table or [])
        self.engine = GemmEngine(cfg)
        self.router = Router(cfg)
        self.reorder = PatchReorder(cfg)
        self.prefetcher = ExpertPrefetcher(cfg, expert_table, layers=self.layers)
        act = signed(cfg.num.act.bits)
        cb = hw.moe_counter_bits
        super().__init__({
            "cmd": In(stream.Signature(moe_cmd_layout(cfg, self.layers))),
            "xn": In(stream.Signature(data.ArrayLayout(act, R))),
            "x": In(stream.Signature(data.ArrayLayout(act, C))),
            "y": Out(stream.Signature(data.ArrayLayout(act, C))),
            "bus": Out(MemReadSignature(cfg)),
            "cycles": Out(cb),
            "route_cycles": Out(cb),
            "expert_cycles": Out(cb),
            "stall_cycles": Out(cb),
            "first_wait_cycles": Out(cb),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        m.submodules.router = router = self.router
        m.submodules.reorder = reorder = self.reorder
        m.submodules.prefetcher = pf = self.prefetcher
        wiring.connect(m, router.o, reorder.i)
        wiring.connect(m, reorder.experts, pf.experts)

        # Command and phase registers shared by the feeders and the sequencer.
        s = SimpleNamespace(eng=eng, router=router, reorder=reorder, pf=pf)
        s.cmd_task = Signal.like(self.cmd.payload.task)
        s.cmd_layer = Signal.like(self.cmd.payload.layer)
        m.d.comb += pf.layer.eq(s.cmd_layer)
        s.mode = Signal(range(3))
        s.expert_tokens = Signal(range(self.cfg.model.tokens + 1))   # of the current expert
        s.gate_active = Signal()              # the gate weight reader owns the bus

        self._memories(m, s)
        self._gate_reader(m, s)
        self._act_feeder(m, s)
        self._weight_feeders(m, s)
        self._res_feeder(m, s)
        self._out_sink(m, s)
        self._io_streams(m, s)
        self._sequencer(m, s)
        return m

    def _memories(self, m, s):
        """XN, X, H and the current expert's token list, with their ports."""
        md, num = self.cfg.model, self.cfg.num
        R, C = self.cfg.hw.array_rows, self.cfg.hw.array_cols
        T, D, Hd = md.tokens, md.dim, md.expert_hidden
        act = signed(num.act.bits)
        rows_r, rows_c = data.ArrayLayout(act, R), data.ArrayLayout(act, C)
        m.submodules.xn_mem = xn_mem = Memory(shape=rows_r, depth=T * (D // R), init=[])
        m.submodules.x_mem = x_mem = Memory(shape=rows_c, depth=T * (D // C), init=[])
        m.submodules.h_mem = h_mem = Memory(shape=rows_c, depth=T * (Hd // C), init=[])
        lent = data.StructLayout({"token": token_shape(self.cfg),
                                  "weight": unsigned(num.exp.bits)})
        m.submodules.list_mem = list_mem = Memory(shape=lent, depth=T, init=[])
        s.xn_w, s.xn_r = xn_mem.write_port(), xn_mem.read_port()
        s.x_w, s.x_r = x_mem.write_port(), x_mem.read_port()
        s.h_w, s.h_r = h_mem.write_port(), h_mem.read_port()
        s.l_w = list_mem.write_port()
        s.l_act, s.l_res, s.l_out = (list_mem.read_port(domain="comb") for _ in range(3))
        # read ports default to en=1
        m.d.comb += [s.xn_r.en.eq(0), s.x_r.en.eq(0), s.h_r.en.eq(0)]

    def _gate_reader(self, m, s):
        """Gate weights: table -> DMA -> unpacker -> engine.w; owns the bus until done."""
        cfg = self.cfg
        md, num = cfg.model, cfg.num
        D, E = md.dim, md.experts
        m.submodules.gate_dma = gdma = ReadDma(cfg, len_bits=16)
        m.submodules.gate_unpack = s.gate_unpack = BeatUnpacker(cfg, E, num.weight,
                                                                 lanes=cfg.hw.array_cols, rows=D)
        gate_beats = math.ceil(D * E * num.weight.storage_bytes / beat_bytes(cfg))
        gtab = Memory(shape=unsigned(cfg.hw.mem_addr_bits), depth=max(len(self.gate_table), 1),
                      init=self.gate_table or [0])
        m.submodules.gate_table = gtab
        g_rd = gtab.read_port(domain="comb")
        m.d.comb += [g_rd.addr.eq(s.cmd_layer * md.tasks + s.cmd_task),
                     gdma.cmd.payload.addr.eq(g_rd.data), gdma.cmd.payload.beats.eq(gate_beats)]
        s.gate_dma = gdma
        s.gate_beats_got = gate_beats_got = Signal(range(gate_beats + 1))
        # Bus: the gate reader until its last beat arrived, then the prefetcher. The prefetcher
        # cannot issue before the expert list, which needs every gate weight consumed first.
        bus, gunp = self.bus, s.gate_unpack
        with m.If(s.gate_active):
            m.d.comb += [bus.rd_req.valid.eq(gdma.rd_req.valid),
                         bus.rd_req.payload.eq(gdma.rd_req.payload),
                         gdma.rd_req.ready.eq(bus.rd_req.ready),
                         gunp.i.valid.eq(bus.rd_data.valid), gunp.i.payload.eq(bus.rd_data.payload),
                         bus.rd_data.ready.eq(gunp.i.ready)]
            with m.If(bus.rd_data.valid & bus.rd_data.ready):
                count_nested(m, [Loop(gate_beats_got, last=gate_beats - 1)],
                             done=[s.gate_active.eq(0)])
        with m.Else():
            wiring.connect(m, s.pf.bus, wiring.flipped(bus))

    def _act_feeder(self, m, s):
        """engine.act: XN rows (gate, fc1) or H slices (fc2) of the listed tokens.

        Loop order of the engine: column tile, k block, row. For fc2 the k block is also
        walked as (H word, slice of R values in it).
        """
        md, num = self.cfg.model, self.cfg.num
        R, C = self.cfg.hw.array_rows, self.cfg.hw.array_cols
        T, D, Hd = md.tokens, md.dim, md.expert_hidden
        kt_d, nt_d, kt_h, nt_h = D // R, D // C, Hd // R, Hd // C
        mode, eng = s.mode, s.eng
        s.act_active = act_active = Signal()
        act_valid = Signal()
        s.act_col_tile = act_col_tile = Signal(range(max(nt_d, nt_h, 1) + 1))
        s.act_k_block = act_k_block = Signal(range(max(kt_d, kt_h) + 1))
        s.act_row = act_row = Signal(range(T + 1))
        s.h_word = h_word = Signal(range(nt_h + 1))     # H word / slice of the k block (FC2)
        s.h_slice = h_slice = Signal(range(C // R + 1))
        h_slice_sel = Signal(range(C // R + 1))
        lim_j = Mux(mode == self._GATE, 1, Mux(mode == self._FC1, nt_h, nt_d))
        lim_k = Mux(mode == self._FC2, kt_h, kt_d)
        lim_i = Mux(mode == self._GATE, T, s.expert_tokens)
        act_row_last, act_k_last = Signal(), Signal()
        m.d.comb += [act_row_last.eq(act_row == lim_i - 1), act_k_last.eq(act_k_block == lim_k - 1)]
        a_adv = ~act_valid | eng.act.ready
        a_go = a_adv & act_active
        m.d.comb += s.l_act.addr.eq(act_row)
        a_tok = Mux(mode == self._GATE, act_row, s.l_act.data.token)
        m.d.comb += [s.xn_r.addr.eq(a_tok * kt_d + act_k_block),
                     s.h_r.addr.eq(act_row * nt_h + h_word)]
        with m.If(a_go):
            with m.If(mode == self._FC2):
                m.d.comb += s.h_r.en.eq(1)
                m.d.sync += h_slice_sel.eq(h_slice)
            with m.Else():
                m.d.comb += s.xn_r.en.eq(1)
            count_nested(m, [Loop(act_row, is_last=act_row_last),
                             Loop(act_k_block, is_last=act_k_last),
                             Loop(act_col_tile, last=lim_j - 1, first=None)],
                         done=[act_active.eq(0)])
            with m.If(act_row_last):
                count_nested(m, [Loop(h_slice, last=C // R - 1),
                                 Loop(h_word, last=nt_h - 1, first=None)])
                with m.If(act_k_last):
                    m.d.sync += [h_slice.eq(0), h_word.eq(0)]
        with m.If(a_adv):
            m.d.sync += act_valid.eq(act_active)
        h_part = s.h_r.data.as_value().word_select(h_slice_sel, R * num.act.bits)
        m.d.comb += [eng.act.valid.eq(act_valid),
                     eng.act.payload.eq(Mux(mode == self._FC2, h_part,
                                            s.xn_r.data.as_value()))]

    def _weight_feeders(self, m, s):
        """engine.w and engine.bias from the granted prefetch buffer (gate: from the unpacker)."""
        md = self.cfg.model
        C = self.cfg.hw.array_cols
        D, Hd = md.dim, md.expert_hidden
        nt_d, nt_h = D // C, Hd // C
        mode, eng, pf = s.mode, s.eng, s.pf
        s.w_active = w_active = Signal()
        w_valid = Signal()
        s.w_row = w_row = Signal(range(max(D, Hd) + 1))
        s.w_col_tile = w_col_tile = Signal(range(max(nt_d, nt_h) + 1))
        s.w_group = w_group = Signal(range(max(D * nt_h, Hd * nt_d) + 1))
        s.w_tiles = w_tiles = Mux(mode == self._FC1, nt_h, nt_d)
        w_rows = Mux(mode == self._FC1, D, Hd)
        w_row_last = Signal()
        m.d.comb += w_row_last.eq(w_row == w_rows - 1)
        w_adv = ~w_valid | eng.w.ready
        m.d.comb += [pf.w_addr.eq(w_group), pf.w_en.eq(0)]
        with m.If(w_adv & w_active):
            # Group of W[k, n0:n0+C] in the K-major buffer: k * (N / C) + j.
            m.d.comb += pf.w_en.eq(1)
            count_nested(m, [Loop(w_group, is_last=w_row_last, step=w_tiles,
                                  first=w_col_tile + 1)])
            count_nested(m, [Loop(w_row, is_last=w_row_last),
                             Loop(w_col_tile, last=w_tiles - 1, first=None)],
                         done=[w_active.eq(0)])
        with m.If(w_adv):
            m.d.sync += w_valid.eq(w_active)

        s.bias_active = bias_active = Signal()
        bias_valid = Signal()
        s.bias_group = bias_group = Signal(range(max(nt_d, nt_h) + 1))
        b_adv = ~bias_valid | eng.bias.ready
        m.d.comb += [pf.b_addr.eq(bias_group), pf.b_en.eq(b_adv & bias_active)]
        with m.If(b_adv & bias_active):
            count_nested(m, [Loop(bias_group, last=w_tiles - 1, first=None)],
                         done=[bias_active.eq(0)])
        with m.If(b_adv):
            m.d.sync += bias_valid.eq(bias_active)
        m.d.comb += [eng.bias.valid.eq(bias_valid), eng.bias.payload.eq(pf.b_data)]

        with m.If(mode == self._GATE):
            wiring.connect(m, s.gate_unpack.o, eng.w)
        with m.Else():
            m.d.comb += [eng.w.valid.eq(w_valid), eng.w.payload.eq(pf.w_data)]

    def _res_feeder(self, m, s):
        """engine.res (FC2 only): the listed tokens' X rows and router weights."""
        md, num = self.cfg.model, self.cfg.num
        T, nt_d = md.tokens, md.dim // self.cfg.hw.array_cols
        eng = s.eng
        s.res_active = res_active = Signal()
        res_valid = Signal()
        s.res_col_tile = res_col_tile = Signal(range(nt_d + 1))
        s.res_row = res_row = Signal(range(T + 1))
        res_score = Signal(unsigned(num.exp.bits))
        r_adv = ~res_valid | eng.res.ready
        m.d.comb += [s.l_res.addr.eq(res_row),
                     s.x_r.addr.eq(s.l_res.data.token * nt_d + res_col_tile)]
        with m.If(r_adv & res_active):
            m.d.comb += s.x_r.en.eq(1)
            m.d.sync += res_score.eq(s.l_res.data.weight)
            count_nested(m, [Loop(res_row, last=s.expert_tokens - 1),
                             Loop(res_col_tile, last=nt_d - 1, first=None)],
                         done=[res_active.eq(0)])
        with m.If(r_adv):
            m.d.sync += res_valid.eq(res_active)
        m.d.comb += [eng.res.valid.eq(res_valid), eng.res.payload.x.eq(s.x_r.data),
                     eng.res.payload.score.eq(res_score)]

    def _out_sink(self, m, s):
        """engine.o: gate rows to the router, fc1 rows to H (fc2 rows go to X, _io_streams)."""
        md = self.cfg.model
        T, E = md.tokens, md.experts
        C = self.cfg.hw.array_cols
        nt_d, nt_h = md.dim // C, md.expert_hidden // C
        mode, eng, router = s.mode, s.eng, s.router
        s.sink_col_tile = sink_col_tile = Signal(range(max(nt_d, nt_h) + 1))
        s.sink_row = sink_row = Signal(range(T + 1))
        s.sink_done = sink_done = Signal()
        sink_tiles = Mux(mode == self._GATE, 1, s.w_tiles)
        sink_rows = Mux(mode == self._GATE, T, s.expert_tokens)
        m.d.comb += s.l_out.addr.eq(sink_row)
        s.o_fire = o_fire = eng.o.valid & eng.o.ready
        with m.If(mode == self._GATE):
            m.d.comb += [router.i.valid.eq(eng.o.valid), eng.o.ready.eq(router.i.ready),
                         router.i.payload.token.eq(sink_row),
                         router.i.payload.last.eq(sink_row == T - 1)]
            for e in range(E):
                m.d.comb += router.i.payload.logits[e].eq(eng.o.payload[e])
        with m.Else():
            m.d.comb += eng.o.ready.eq(1)
            with m.If(o_fire & (mode == self._FC1)):
                m.d.comb += [s.h_w.addr.eq(sink_row * nt_h + sink_col_tile),
                             s.h_w.data.eq(eng.o.payload), s.h_w.en.eq(1)]
        with m.If(o_fire):
            count_nested(m, [Loop(sink_row, last=sink_rows - 1),
                             Loop(sink_col_tile, last=sink_tiles - 1)],
                         done=[sink_done.eq(1)])

    def _io_streams(self, m, s):
        """Load counters, the ``y`` output stream (X rows in order) and the fc2 writes to X."""
        md = self.cfg.model
        T, R, C = md.tokens, self.cfg.hw.array_rows, self.cfg.hw.array_cols
        nt_d = md.dim // C
        s.load_xn = Signal(range(T * (md.dim // R) + 1))
        s.load_x = Signal(range(T * nt_d + 1))
        s.y_active = y_active = Signal()
        y_valid = Signal()
        s.y_addr = y_addr = Signal(range(T * nt_d + 1))
        y_adv = ~y_valid | self.y.ready
        m.d.comb += [self.y.valid.eq(y_valid), self.y.payload.eq(s.x_r.data)]
        with m.If(y_adv & y_active):
            m.d.comb += [s.x_r.addr.eq(y_addr), s.x_r.en.eq(1)]
            count_nested(m, [Loop(y_addr, last=T * nt_d - 1, first=None)],
                         done=[y_active.eq(0)])
        with m.If(y_adv):
            m.d.sync += y_valid.eq(y_active)

        with m.If(s.o_fire & (s.mode == self._FC2)):
            m.d.comb += [s.x_w.addr.eq(s.l_out.data.token * nt_d + s.sink_col_tile),
                         s.x_w.data.eq(s.eng.o.payload), s.x_w.en.eq(1)]

    def _status_counters(self, m, s):
        """Per-command cycle counters by phase; the ``y`` beat count."""
        T, nt_d = self.cfg.model.tokens, self.cfg.model.dim // self.cfg.hw.array_cols
        s.y_sent = y_sent = Signal(range(T * nt_d + 1))
        s.phase = phase = Signal(range(5))    # 0 idle, 1 load, 2 route, 3 experts, 4 output
        with m.If(phase != 0):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(phase == 2):
            m.d.sync += self.route_cycles.eq(self.route_cycles + 1)
        with m.If(phase == 3):
            m.d.sync += self.expert_cycles.eq(self.expert_cycles + 1)
        with m.If(self.y.valid & self.y.ready):
            m.d.sync += y_sent.eq(y_sent + 1)

    def _gemm_command(self, m, s):
        """The engine command of the current mode (gate, fc1 or fc2)."""
        md = self.cfg.model
        mode, fc_cmd = s.mode, s.eng.cmd.payload
        m.d.comb += [s.eng.cmd.valid.eq(1),
                     fc_cmd.m.eq(Mux(mode == self._GATE, md.tokens, s.expert_tokens)),
                     fc_cmd.k.eq(Mux(mode == self._FC2, md.expert_hidden, md.dim)),
                     fc_cmd.n.eq(Mux(mode == self._GATE, md.experts,
                                     Mux(mode == self._FC1, md.expert_hidden, md.dim))),
                     fc_cmd.bias.eq(mode != self._GATE),
                     fc_cmd.gelu.eq(mode == self._FC1),
                     fc_cmd.mode.eq(Mux(mode == self._FC2, EpilogueMode.SCALED,
                                        EpilogueMode.PLAIN))]

    def _start_feeders(self, s):
        """Statements that start the feeders and the sink of one GEMM."""
        mode = s.mode
        return [s.act_active.eq(1), s.act_col_tile.eq(0), s.act_k_block.eq(0),
                s.act_row.eq(0), s.h_word.eq(0), s.h_slice.eq(0), s.sink_row.eq(0),
                s.sink_col_tile.eq(0), s.sink_done.eq(0),
                s.w_active.eq(mode != self._GATE), s.w_row.eq(0), s.w_col_tile.eq(0),
                s.w_group.eq(0), s.bias_active.eq(mode != self._GATE), s.bias_group.eq(0),
                s.res_active.eq(mode == self._FC2), s.res_row.eq(0), s.res_col_tile.eq(0)]

    def _load_state(self, m, s):
        """LOAD: XN and X rows from their streams into the memories."""
        md = self.cfg.model
        T = md.tokens
        xn_beats = T * (md.dim // self.cfg.hw.array_rows)
        x_beats = T * (md.dim // self.cfg.hw.array_cols)
        load_xn, load_x = s.load_xn, s.load_x
        m.d.comb += [self.xn.ready.eq(load_xn < xn_beats), self.x.ready.eq(load_x < x_beats),
                     s.xn_w.addr.eq(load_xn), s.xn_w.data.eq(self.xn.payload),
                     s.xn_w.en.eq(self.xn.valid & self.xn.ready)]
        with m.If(self.xn.valid & self.xn.ready):
            m.d.sync += load_xn.eq(load_xn + 1)
        with m.If(self.x.valid & self.x.ready):
            m.d.comb += [s.x_w.addr.eq(load_x), s.x_w.data.eq(self.x.payload), s.x_w.en.eq(1)]
            m.d.sync += load_x.eq(load_x + 1)
        return (load_xn == xn_beats) & (load_x == x_beats)

    def _copy_state(self, m, s, copied):
        """COPY: the granted expert's queue into the token list (one entry per cycle)."""
        reorder = s.reorder
        m.d.comb += [reorder.q.ready.eq(1),
                     s.l_w.addr.eq(copied), s.l_w.data.token.eq(reorder.q.payload.token),
                     s.l_w.data.weight.eq(reorder.q.payload.weight),
                     s.l_w.en.eq(reorder.q.valid)]
        with m.If(reorder.q.valid):
            m.d.sync += copied.eq(copied + 1)

    def _sequencer(self, m, s):
        """Command FSM: LOAD, gate GEMM, per grant (queue copy,) GEMM, release, OUTPUT."""
        T, nt_d = self.cfg.model.tokens, self.cfg.model.dim // self.cfg.hw.array_cols
        pf, reorder, mode = s.pf, s.reorder, s.mode
        self._status_counters(m, s)
        phase = s.phase
        grant_last = Signal()
        grant_expert = Signal.like(pf.grant.payload.expert)
        copied = Signal(range(T + 1))
        granted = Signal()                    # a grant was taken in this command
        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [s.cmd_task.eq(self.cmd.payload.task),
                                 s.cmd_layer.eq(self.cmd.payload.layer), phase.eq(1),
                                 s.load_xn.eq(0), s.load_x.eq(0), s.y_sent.eq(0),
                                 self.cycles.eq(0), self.route_cycles.eq(0),
                                 self.expert_cycles.eq(0), self.stall_cycles.eq(0),
                                 self.first_wait_cycles.eq(0), granted.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                with m.If(self._load_state(m, s)):
                    m.d.sync += [phase.eq(2), mode.eq(self._GATE)]
                    m.next = "GATE_CMD"
            with m.State("GATE_CMD"):
                m.d.comb += s.gate_dma.cmd.valid.eq(1)
                with m.If(s.gate_dma.cmd.ready):
                    m.d.sync += [s.gate_active.eq(1), s.gate_beats_got.eq(0)]
                    m.next = "GEMM_CMD"
            with m.State("GEMM_CMD"):
                # Common to the gate, fc1 and fc2 GEMMs: issue the command, start the feeders.
                self._gemm_command(m, s)
                with m.If(s.eng.cmd.ready):
                    m.d.sync += self._start_feeders(s)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(s.sink_done):
                    with m.If(mode == self._GATE):
                        m.d.sync += phase.eq(3)
                        m.next = "EXP_WAIT"
                    with m.Elif(grant_last):
                        m.d.comb += pf.release.eq(1)
                        m.d.sync += [phase.eq(4), s.y_active.eq(1), s.y_addr.eq(0)]
                        m.next = "OUTPUT"
                    with m.Else():
                        m.d.comb += pf.release.eq(1)
                        m.next = "EXP_WAIT"
            with m.State("EXP_WAIT"):
                m.d.comb += pf.grant.ready.eq(1)
                with m.If(pf.grant.valid):
                    m.d.sync += [s.expert_tokens.eq(pf.grant.payload.count),
                                 grant_last.eq(pf.grant.payload.last),
                                 grant_expert.eq(pf.grant.payload.expert), granted.eq(1),
                                 mode.eq(Mux(pf.grant.payload.matrix, self._FC2, self._FC1))]
                    with m.If(pf.grant.payload.matrix == 0):
                        m.d.sync += copied.eq(0)
                        m.next = "COPY_REQ"
                    with m.Else():
                        m.next = "GEMM_CMD"
                with m.Else():
                    m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
                    with m.If(~granted):
                        m.d.sync += self.first_wait_cycles.eq(self.first_wait_cycles + 1)
            with m.State("COPY_REQ"):
                m.d.comb += [reorder.q_req.valid.eq(1),
                             reorder.q_req.payload.expert.eq(grant_expert)]
                with m.If(reorder.q_req.ready):
                    m.next = "COPY"
            with m.State("COPY"):
                self._copy_state(m, s, copied)
                with m.If(reorder.q.valid):
                    with m.If(reorder.q.payload.last):
                        m.next = "GEMM_CMD"
            with m.State("OUTPUT"):
                with m.If(self.y.valid & self.y.ready & (s.y_sent == T * nt_d - 1)):
                    m.d.sync += phase.eq(0)
                    m.next = "IDLE"
