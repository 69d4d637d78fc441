"""MoE layer: gate GEMM -> router -> patch reorder -> per expert fc1 + GELU, fc2, scaled combine.

``MoELayer(cfg, expert_table, gate_table)`` runs one MoE MLP of the encoder for one frame and one
task, bit-exact with :func:`sim.golden.model.moe_block` after LayerNorm (it takes ``XN = LN2(x)``
and the residual ``X`` and returns ``X + sum_k score_k * expert_k(XN)``, experts in ascending
order, each a saturating ``scaled_accumulate``). It is the integration of:

- :class:`hw.array.gemm_engine.GemmEngine` (one R x C array, fused epilogue) for every GEMM: the gate
  (``XN @ W_gate[task]``, no bias), each chosen expert's fc1 (+ bias, GELU) and fc2 (+ bias,
  SCALED epilogue: ``X[token] = sat(X[token] + round(score * y))``);
- :class:`hw.moe.router.Router` (softmax + top-k) on the gate GEMM's output rows;
- :class:`hw.moe.patch_reorder.PatchReorder` (per-expert queues, list of chosen experts);
- :class:`hw.moe.prefetcher.ExpertPrefetcher` (ping/pong buffers, one matrix each) on the memory bus;
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

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.array.epilogue import EpilogueMode
from hw.array.gemm_engine import GemmEngine
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
    """One MoE MLP layer on the GEMM engine with routing and weight prefetch (module docstring)."""

    _GATE, _FC1, _FC2 = 0, 1, 2

    def __init__(self, cfg: Config, expert_table=None, gate_table=None, layers: int | None = None):
        md, hw = cfg.model, cfg.hw
        R, C = hw.array_rows, hw.array_cols
        if md.experts > C:
            raise ValueError(f"MoELayer: experts {md.experts} > array_cols {C}")
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
        cfg = self.cfg
        md, hw, num = cfg.model, cfg.hw, cfg.num
        R, C = hw.array_rows, hw.array_cols
        T, D, Hd, E = md.tokens, md.dim, md.expert_hidden, md.experts
        kt_d, nt_d, kt_h, nt_h = D // R, D // C, Hd // R, Hd // C
        W = beat_bytes(cfg)
        act = signed(num.act.bits)
        tok = token_shape(cfg)
        rows_r, rows_c = data.ArrayLayout(act, R), data.ArrayLayout(act, C)

        m.submodules.engine = eng = self.engine
        m.submodules.router = router = self.router
        m.submodules.reorder = reorder = self.reorder
        m.submodules.prefetcher = pf = self.prefetcher
        wiring.connect(m, router.o, reorder.i)
        wiring.connect(m, reorder.experts, pf.experts)

        # ---------------- command, phases ----------------
        c_task = Signal.like(self.cmd.payload.task)
        c_layer = Signal.like(self.cmd.payload.layer)
        m.d.comb += pf.layer.eq(c_layer)
        mode = Signal(range(3))
        m_e = Signal(range(T + 1))            # tokens of the current expert
        gate_active = Signal()                # the gate weight reader owns the bus

        # ---------------- memories ----------------
        m.submodules.xn_mem = xn_mem = Memory(shape=rows_r, depth=T * kt_d, init=[])
        m.submodules.x_mem = x_mem = Memory(shape=rows_c, depth=T * nt_d, init=[])
        m.submodules.h_mem = h_mem = Memory(shape=rows_c, depth=T * nt_h, init=[])
        lent = data.StructLayout({"token": tok, "weight": unsigned(num.exp.bits)})
        m.submodules.list_mem = list_mem = Memory(shape=lent, depth=T, init=[])
        xn_w, xn_r = xn_mem.write_port(), xn_mem.read_port()
        x_w, x_r = x_mem.write_port(), x_mem.read_port()
        h_w, h_r = h_mem.write_port(), h_mem.read_port()
        l_w = list_mem.write_port()
        l_act, l_res, l_out = (list_mem.read_port(domain="comb") for _ in range(3))
        m.d.comb += [xn_r.en.eq(0), x_r.en.eq(0), h_r.en.eq(0)]   # read ports default to en=1

        # ---------------- gate weights: table -> DMA -> unpacker -> engine.w ----------------
        m.submodules.gate_dma = gdma = ReadDma(cfg, len_bits=16)
        m.submodules.gate_unpack = gunp = BeatUnpacker(cfg, E, num.weight, lanes=C, rows=D)
        gate_beats = math.ceil(D * E * num.weight.storage_bytes / W)
        gtab = Memory(shape=unsigned(hw.mem_addr_bits), depth=max(len(self.gate_table), 1),
                      init=self.gate_table or [0])
        m.submodules.gate_table = gtab
        g_rd = gtab.read_port(domain="comb")
        m.d.comb += [g_rd.addr.eq(c_layer * md.tasks + c_task),
                     gdma.cmd.payload.addr.eq(g_rd.data), gdma.cmd.payload.beats.eq(gate_beats)]
        gate_got = Signal(range(gate_beats + 1))
        # Bus: the gate reader until its last beat arrived, then the prefetcher. The prefetcher
        # cannot issue before the expert list, which needs every gate weight consumed first.
        bus = self.bus
        with m.If(gate_active):
            m.d.comb += [bus.rd_req.valid.eq(gdma.rd_req.valid),
                         bus.rd_req.payload.eq(gdma.rd_req.payload),
                         gdma.rd_req.ready.eq(bus.rd_req.ready),
                         gunp.i.valid.eq(bus.rd_data.valid), gunp.i.payload.eq(bus.rd_data.payload),
                         bus.rd_data.ready.eq(gunp.i.ready)]
            with m.If(bus.rd_data.valid & bus.rd_data.ready):
                m.d.sync += gate_got.eq(gate_got + 1)
                with m.If(gate_got == gate_beats - 1):
                    m.d.sync += [gate_active.eq(0), gate_got.eq(0)]
        with m.Else():
            wiring.connect(m, pf.bus, wiring.flipped(bus))

        # ---------------- activation feeder (engine.act) ----------------
        # Loop order of the engine: column tile (a_j), k block (a_k), row (a_i).
        a_act, a_valid = Signal(), Signal()
        a_j = Signal(range(max(nt_d, nt_h, 1) + 1))
        a_k = Signal(range(max(kt_d, kt_h) + 1))
        a_i = Signal(range(T + 1))
        h_word = Signal(range(nt_h + 1))     # H word / slice of k block a_k (FC2)
        h_slice = Signal(range(C // R + 1))
        h_sel = Signal(range(C // R + 1))
        lim_j = Mux(mode == self._GATE, 1, Mux(mode == self._FC1, nt_h, nt_d))
        lim_k = Mux(mode == self._FC2, kt_h, kt_d)
        lim_i = Mux(mode == self._GATE, T, m_e)
        a_adv = ~a_valid | eng.act.ready
        a_go = a_adv & a_act
        m.d.comb += l_act.addr.eq(a_i)
        a_tok = Mux(mode == self._GATE, a_i, l_act.data.token)
        m.d.comb += [xn_r.addr.eq(a_tok * kt_d + a_k), h_r.addr.eq(a_i * nt_h + h_word)]
        with m.If(a_go):
            with m.If(mode == self._FC2):
                m.d.comb += h_r.en.eq(1)
                m.d.sync += h_sel.eq(h_slice)
            with m.Else():
                m.d.comb += xn_r.en.eq(1)
            m.d.sync += a_i.eq(a_i + 1)
            with m.If(a_i == lim_i - 1):
                m.d.sync += [a_i.eq(0), a_k.eq(a_k + 1), h_slice.eq(h_slice + 1)]
                with m.If(h_slice == C // R - 1):
                    m.d.sync += [h_slice.eq(0), h_word.eq(h_word + 1)]
                with m.If(a_k == lim_k - 1):
                    m.d.sync += [a_k.eq(0), a_j.eq(a_j + 1), h_slice.eq(0), h_word.eq(0)]
                    with m.If(a_j == lim_j - 1):
                        m.d.sync += a_act.eq(0)
        with m.If(a_adv):
            m.d.sync += a_valid.eq(a_act)
        h_part = h_r.data.as_value().word_select(h_sel, R * num.act.bits)
        m.d.comb += [eng.act.valid.eq(a_valid),
                     eng.act.payload.eq(Mux(mode == self._FC2, h_part, xn_r.data.as_value()))]

        # ---------------- weight / bias feeders (engine.w, engine.bias) ----------------
        w_act, w_valid = Signal(), Signal()
        w_k = Signal(range(max(D, Hd) + 1))
        w_j = Signal(range(max(nt_d, nt_h) + 1))
        w_g = Signal(range(max(D * nt_h, Hd * nt_d) + 1))
        w_nt = Mux(mode == self._FC1, nt_h, nt_d)
        w_lim = Mux(mode == self._FC1, D, Hd)
        w_adv = ~w_valid | eng.w.ready
        m.d.comb += [pf.w_addr.eq(w_g), pf.w_en.eq(0)]
        with m.If(w_adv & w_act):
            # Group of W[k, n0:n0+C] in the K-major buffer: k * (N / C) + j.
            m.d.comb += pf.w_en.eq(1)
            m.d.sync += [w_k.eq(w_k + 1), w_g.eq(w_g + w_nt)]
            with m.If(w_k == w_lim - 1):
                m.d.sync += [w_k.eq(0), w_j.eq(w_j + 1), w_g.eq(w_j + 1)]
                with m.If(w_j == w_nt - 1):
                    m.d.sync += w_act.eq(0)
        with m.If(w_adv):
            m.d.sync += w_valid.eq(w_act)

        b_act, b_valid = Signal(), Signal()
        b_j = Signal(range(max(nt_d, nt_h) + 1))
        b_adv = ~b_valid | eng.bias.ready
        m.d.comb += [pf.b_addr.eq(b_j), pf.b_en.eq(b_adv & b_act)]
        with m.If(b_adv & b_act):
            m.d.sync += b_j.eq(b_j + 1)
            with m.If(b_j == w_nt - 1):
                m.d.sync += b_act.eq(0)
        with m.If(b_adv):
            m.d.sync += b_valid.eq(b_act)
        m.d.comb += [eng.bias.valid.eq(b_valid), eng.bias.payload.eq(pf.b_data)]

        with m.If(mode == self._GATE):
            wiring.connect(m, gunp.o, eng.w)
        with m.Else():
            m.d.comb += [eng.w.valid.eq(w_valid), eng.w.payload.eq(pf.w_data)]

        # ---------------- residual feeder (engine.res, FC2 only) ----------------
        r_act, r_valid = Signal(), Signal()
        r_j = Signal(range(nt_d + 1))
        r_i = Signal(range(T + 1))
        r_score = Signal(unsigned(num.exp.bits))
        r_adv = ~r_valid | eng.res.ready
        m.d.comb += [l_res.addr.eq(r_i), x_r.addr.eq(l_res.data.token * nt_d + r_j)]
        with m.If(r_adv & r_act):
            m.d.comb += x_r.en.eq(1)
            m.d.sync += [r_score.eq(l_res.data.weight), r_i.eq(r_i + 1)]
            with m.If(r_i == m_e - 1):
                m.d.sync += [r_i.eq(0), r_j.eq(r_j + 1)]
                with m.If(r_j == nt_d - 1):
                    m.d.sync += r_act.eq(0)
        with m.If(r_adv):
            m.d.sync += r_valid.eq(r_act)
        m.d.comb += [eng.res.valid.eq(r_valid), eng.res.payload.x.eq(x_r.data),
                     eng.res.payload.score.eq(r_score)]

        # ---------------- output sink (engine.o) ----------------
        o_j = Signal(range(max(nt_d, nt_h) + 1))
        o_i = Signal(range(T + 1))
        o_done = Signal()
        o_lim_j = Mux(mode == self._GATE, 1, w_nt)
        o_lim_i = Mux(mode == self._GATE, T, m_e)
        m.d.comb += l_out.addr.eq(o_i)
        o_fire = eng.o.valid & eng.o.ready
        with m.If(mode == self._GATE):
            m.d.comb += [router.i.valid.eq(eng.o.valid), eng.o.ready.eq(router.i.ready),
                         router.i.payload.token.eq(o_i), router.i.payload.last.eq(o_i == T - 1)]
            for e in range(E):
                m.d.comb += router.i.payload.logits[e].eq(eng.o.payload[e])
        with m.Else():
            m.d.comb += eng.o.ready.eq(1)
            with m.If(o_fire & (mode == self._FC1)):
                m.d.comb += [h_w.addr.eq(o_i * nt_h + o_j), h_w.data.eq(eng.o.payload),
                             h_w.en.eq(1)]
        with m.If(o_fire):
            m.d.sync += o_i.eq(o_i + 1)
            with m.If(o_i == o_lim_i - 1):
                m.d.sync += [o_i.eq(0), o_j.eq(o_j + 1)]
                with m.If(o_j == o_lim_j - 1):
                    m.d.sync += [o_j.eq(0), o_done.eq(1)]

        # ---------------- load / output streams and X writes ----------------
        ld_xn = Signal(range(T * kt_d + 1))
        ld_x = Signal(range(T * nt_d + 1))
        out_act, out_valid = Signal(), Signal()
        out_n = Signal(range(T * nt_d + 1))
        out_adv = ~out_valid | self.y.ready
        m.d.comb += [self.y.valid.eq(out_valid), self.y.payload.eq(x_r.data)]
        with m.If(out_adv & out_act):
            m.d.comb += [x_r.addr.eq(out_n), x_r.en.eq(1)]
            m.d.sync += out_n.eq(out_n + 1)
            with m.If(out_n == T * nt_d - 1):
                m.d.sync += out_act.eq(0)
        with m.If(out_adv):
            m.d.sync += out_valid.eq(out_act)

        with m.If(o_fire & (mode == self._FC2)):
            m.d.comb += [x_w.addr.eq(l_out.data.token * nt_d + o_j), x_w.data.eq(eng.o.payload),
                         x_w.en.eq(1)]

        # ---------------- sequencer ----------------
        fc_cmd = eng.cmd.payload
        g_last = Signal()
        g_expert = Signal.like(pf.grant.payload.expert)
        q_got = Signal(range(T + 1))
        y_n = Signal(range(T * nt_d + 1))
        phase = Signal(range(5))              # 0 idle, 1 load, 2 route, 3 experts, 4 output
        granted = Signal()                    # a grant was taken in this command
        with m.If(phase != 0):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(phase == 2):
            m.d.sync += self.route_cycles.eq(self.route_cycles + 1)
        with m.If(phase == 3):
            m.d.sync += self.expert_cycles.eq(self.expert_cycles + 1)
        with m.If(self.y.valid & self.y.ready):
            m.d.sync += y_n.eq(y_n + 1)

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [c_task.eq(self.cmd.payload.task),
                                 c_layer.eq(self.cmd.payload.layer), phase.eq(1),
                                 ld_xn.eq(0), ld_x.eq(0), y_n.eq(0), self.cycles.eq(0),
                                 self.route_cycles.eq(0), self.expert_cycles.eq(0),
                                 self.stall_cycles.eq(0), self.first_wait_cycles.eq(0),
                                 granted.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [self.xn.ready.eq(ld_xn < T * kt_d), self.x.ready.eq(ld_x < T * nt_d),
                             xn_w.addr.eq(ld_xn), xn_w.data.eq(self.xn.payload),
                             xn_w.en.eq(self.xn.valid & self.xn.ready)]
                with m.If(self.xn.valid & self.xn.ready):
                    m.d.sync += ld_xn.eq(ld_xn + 1)
                with m.If(self.x.valid & self.x.ready):
                    m.d.comb += [x_w.addr.eq(ld_x), x_w.data.eq(self.x.payload), x_w.en.eq(1)]
                    m.d.sync += ld_x.eq(ld_x + 1)
                with m.If((ld_xn == T * kt_d) & (ld_x == T * nt_d)):
                    m.d.sync += [phase.eq(2), mode.eq(self._GATE)]
                    m.next = "GATE_CMD"
            with m.State("GATE_CMD"):
                m.d.comb += gdma.cmd.valid.eq(1)
                with m.If(gdma.cmd.ready):
                    m.d.sync += [gate_active.eq(1), gate_got.eq(0)]
                    m.next = "GEMM_CMD"
            with m.State("GEMM_CMD"):
                # Common to the gate, fc1 and fc2 GEMMs: issue the command, start the feeders.
                m.d.comb += [eng.cmd.valid.eq(1),
                             fc_cmd.m.eq(Mux(mode == self._GATE, T, m_e)),
                             fc_cmd.k.eq(Mux(mode == self._FC2, Hd, D)),
                             fc_cmd.n.eq(Mux(mode == self._GATE, E,
                                             Mux(mode == self._FC1, Hd, D))),
                             fc_cmd.bias.eq(mode != self._GATE),
                             fc_cmd.gelu.eq(mode == self._FC1),
                             fc_cmd.mode.eq(Mux(mode == self._FC2, EpilogueMode.SCALED,
                                                EpilogueMode.PLAIN))]
                with m.If(eng.cmd.ready):
                    m.d.sync += [a_act.eq(1), a_j.eq(0), a_k.eq(0), a_i.eq(0), h_word.eq(0),
                                 h_slice.eq(0), o_i.eq(0), o_j.eq(0), o_done.eq(0),
                                 w_act.eq(mode != self._GATE), w_k.eq(0), w_j.eq(0), w_g.eq(0),
                                 b_act.eq(mode != self._GATE), b_j.eq(0),
                                 r_act.eq(mode == self._FC2), r_i.eq(0), r_j.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(o_done):
                    with m.If(mode == self._GATE):
                        m.d.sync += phase.eq(3)
                        m.next = "EXP_WAIT"
                    with m.Elif(g_last):
                        m.d.comb += pf.release.eq(1)
                        m.d.sync += [phase.eq(4), out_act.eq(1), out_n.eq(0)]
                        m.next = "OUTPUT"
                    with m.Else():
                        m.d.comb += pf.release.eq(1)
                        m.next = "EXP_WAIT"
            with m.State("EXP_WAIT"):
                m.d.comb += pf.grant.ready.eq(1)
                with m.If(pf.grant.valid):
                    m.d.sync += [m_e.eq(pf.grant.payload.count), g_last.eq(pf.grant.payload.last),
                                 g_expert.eq(pf.grant.payload.expert), granted.eq(1),
                                 mode.eq(Mux(pf.grant.payload.matrix, self._FC2, self._FC1))]
                    with m.If(pf.grant.payload.matrix == 0):
                        m.d.sync += q_got.eq(0)
                        m.next = "COPY_REQ"
                    with m.Else():
                        m.next = "GEMM_CMD"
                with m.Else():
                    m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
                    with m.If(~granted):
                        m.d.sync += self.first_wait_cycles.eq(self.first_wait_cycles + 1)
            with m.State("COPY_REQ"):
                m.d.comb += [reorder.q_req.valid.eq(1), reorder.q_req.payload.expert.eq(g_expert)]
                with m.If(reorder.q_req.ready):
                    m.next = "COPY"
            with m.State("COPY"):
                m.d.comb += [reorder.q.ready.eq(1),
                             l_w.addr.eq(q_got), l_w.data.token.eq(reorder.q.payload.token),
                             l_w.data.weight.eq(reorder.q.payload.weight),
                             l_w.en.eq(reorder.q.valid)]
                with m.If(reorder.q.valid):
                    m.d.sync += q_got.eq(q_got + 1)
                    with m.If(reorder.q.payload.last):
                        m.next = "GEMM_CMD"
            with m.State("OUTPUT"):
                with m.If(self.y.valid & self.y.ready & (y_n == T * nt_d - 1)):
                    m.d.sync += phase.eq(0)
                    m.next = "IDLE"
        return m
