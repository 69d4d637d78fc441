"""Fused GEMM epilogue: + bias, requantize, optional PWL GELU, optional residual / MoE combine.

Per output row (C lanes, C = cfg.hw.array_cols), bit-exact with sim/golden/linear.py:

    y   = requantize(acc + bias, acc_frac, act)          # round half up, saturate
    y   = gelu_pwl(y)                if gelu              # sim/golden/gelu.py
    out = y                          if mode == PLAIN
    out = residual_add(x, y)         if mode == RESIDUAL  # saturate(x + y)
    out = scaled_accumulate(x, y, s) if mode == SCALED    # saturate(x + round(y * s >> exp.frac))

The score product uses C DSP multipliers, or shift-add LUT logic when the target's multiplier
budget is taken by the PE array (:func:`score_on_dsp`, ``cfg.hw.epilogue_score_dsp``).

RESIDUAL and SCALED share one datapath: ``t = y * s`` with ``s = 2^exp.frac`` (1.0 in the UQ1.15
score format) for RESIDUAL, then ``out = saturate(x + round_half_up(t, exp.frac))``; PLAIN uses
``x = 0``, so all three modes take the same cycles. ``x`` and ``s`` come from the ``res`` stream
(one beat per output row in RESIDUAL and SCALED mode, none in PLAIN mode).

Lanes whose ``mask`` bit is 0 (columns beyond N of a partial tile) output 0.

Pipeline, 10 register stages, one row per cycle:
  0. the input beat        1. acc + bias            2. requantize (shift, saturate)
  3-7. GELU lane (or bypass)                        8. t = y * s
  9. saturate(x + round(t)), mask
The ``res`` beat is taken into registers beside stage 7 (stage 2 without GELU lanes), so the
score reaches the multipliers from flip-flops (one copy per lane).
Latency :attr:`Epilogue.latency` = 10 cycles from an ``i`` handshake to ``o.valid``; throughput
one row per cycle. With ``cfg.hw.gelu_site`` "act" GELU runs on fc2's activation reads instead
(hw/top/buffers.py ``ReadPipe``): no GELU lanes, stages 3-7 drop out, the ``gelu`` bit is
ignored and the latency is 5. The output register is the main register of a two-entry skid buffer, so the
pipeline's enable never depends on ``o.ready``: back-pressure on ``o`` stalls the pipeline a
cycle later (one more row goes to the skid register), a missing ``res`` beat at once.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.fixed import (hw_add_rshift_round, hw_requantize, hw_requantize_prerounded, hw_saturate,
                       round_half)

from hw.array.gelu import GeluLane, shift_add_mul
from hw.fabric.global_buffer import on_global
from hw.fabric.replica import replicas
from hw.mem.stream_slice import StreamSlice

__all__ = ["EpilogueMode", "Epilogue", "score_on_dsp", "epilogue_in_layout", "residual_layout",
           "row_layout", "bias_shape", "rounding_half"]


class EpilogueMode(enum.Enum, shape=2):
    """What happens to a requantized (and optionally GELU'd) row ``y``."""

    PLAIN = 0       # out = y
    RESIDUAL = 1    # out = saturate(x + y)
    SCALED = 2      # out = saturate(x + round(score * y))  (MoE combine)


def row_layout(cfg: Config) -> data.ArrayLayout:
    """C activations: an output row, or the row ``x`` added in RESIDUAL / SCALED mode."""
    return data.ArrayLayout(signed(cfg.num.act.bits), cfg.hw.array_cols)


def residual_layout(cfg: Config) -> data.StructLayout:
    """One ``res`` beat: the existing row ``x`` and the per-row score (``cfg.num.exp``)."""
    return data.StructLayout({"x": row_layout(cfg), "score": unsigned(cfg.num.exp.bits)})


def rounding_half(cfg: Config) -> int:
    """Half an activation LSB in accumulator scale: what the requantize's round half up adds
    before its shift (0 if it does not shift right)."""
    return round_half(cfg.num.acc_frac - cfg.num.act.frac_bits)


def bias_shape(cfg: Config, bias_rounded: bool = False):
    """The ``bias`` lanes of an ``i`` beat: ``cfg.num.bias``, or with ``bias_rounded`` wide
    enough for bias + :func:`rounding_half`."""
    bits = cfg.num.bias.bits
    half = rounding_half(cfg)
    if bias_rounded and half:
        bits = max(bits, half.bit_length()) + 1
    return signed(bits)


def epilogue_in_layout(cfg: Config, bias_rounded: bool = False) -> data.StructLayout:
    """One ``i`` beat: C accumulators, C biases, the lane mask and the mode of this row."""
    C = cfg.hw.array_cols
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(cfg.num.acc_bits), C),
        "bias": data.ArrayLayout(bias_shape(cfg, bias_rounded), C),
        "mask": unsigned(C),
        "gelu": unsigned(1),
        "mode": EpilogueMode,
    })


def score_on_dsp(cfg: Config) -> bool:
    """Whether the C score multipliers use DSPs (``cfg.hw.epilogue_score_dsp``; auto if None).

    Auto: DSPs unless the target's ``mult_budget`` cannot hold them next to the array and the
    attention unit (the multipliers ``Config`` already counts): on 156 MULT18X18D with an 8 x 16
    array (128 + 16 taken) the 16 score multipliers go to LUTs.
    """
    h = cfg.hw
    if h.epilogue_score_dsp is not None:
        return bool(h.epilogue_score_dsp)
    if h.mult_budget is None:
        return True
    used = h.macs_per_cycle + 2 * h.attn_parallel * h.attn_dot_width
    return used + h.array_cols <= h.mult_budget


class Epilogue(wiring.Component):
    """The fused epilogue (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Row width (``hw.array_cols`` C), formats, ``hw.epilogue_score_dsp``.
    bias_rounded : bool
        The ``bias`` lanes carry bias + :func:`rounding_half` (:func:`bias_shape` wide), so the
        requantize stage only shifts and saturates (the GEMM engine adds the half as a bias beat
        enters its queue, and passes the half alone when a command has no bias).

    Ports
    -----
    i : In(stream(epilogue_in_layout))
        One output row per beat: C accumulators, C biases, lane mask, gelu bit, mode.
    res : In(stream(residual_layout))
        One beat per row in RESIDUAL / SCALED mode (the row x and the score), none in PLAIN.
    o : Out(stream(row_layout))
        The rows in input order.

    Attributes
    ----------
    latency : int
        Cycles from an ``i`` handshake to ``o.valid`` (10; 5 with ``hw.gelu_site`` "act");
        throughput one row per cycle.
    """

    latency = 5 + GeluLane.latency      # with the GELU lanes (the instance's may be less)

    def __init__(self, cfg: Config, bias_rounded: bool = False):
        self._cfg = cfg
        self.bias_rounded = bias_rounded
        self.has_gelu = not cfg.hw.gelu_on_reads
        self.latency = 5 + (GeluLane.latency if self.has_gelu else 0)
        super().__init__({
            "i": In(stream.Signature(epilogue_in_layout(cfg, bias_rounded))),
            "res": In(stream.Signature(residual_layout(cfg))),
            "o": Out(stream.Signature(row_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        n = cfg.num
        C = cfg.hw.array_cols
        act, acc_bits, sf = n.act, n.acc_bits, n.exp.frac_bits
        G = GeluLane.latency if self.has_gelu else 0
        dsp = score_on_dsp(cfg)

        # The input beat is registered first (stage 0): the GEMM engine's sum FIFO and bias
        # queue feed it, and the sum FIFO's LUT-RAM read ran through the 25-bit bias add into
        # the sum registers (ULX3S routed 12.4 ns, 36 endpoints, epilogue.py:202).
        # Stage bookkeeping: valid, mode, mask travel with each row. Index s = content of the
        # register after stage s (s = 1 .. L; index 0: the registered input beat); stage L's
        # valid is o.valid.
        L = self.latency - 1
        inp = Signal(epilogue_in_layout(cfg, self.bias_rounded), name="in_row")
        in_valid = Signal(name="v0")
        valid = [in_valid] + [Signal(name=f"v{s}") for s in range(1, L)]
        mode = [inp.mode] + [Signal(EpilogueMode, name=f"mode{s}") for s in range(1, L)]
        mask = [inp.mask] + [Signal(C, name=f"mask{s}") for s in range(1, L)]
        gelu1 = Signal()

        res_stage = 3 + G     # the stage whose registers compute t = y * s
        # The res beat is taken one stage earlier, into registers beside stage res_stage - 1
        # (the score already muxed, one copy per lane next to its multiplier): the product
        # then starts at flip-flops; read straight from the residual FIFO's LUT RAM, through
        # the score mux and a fan-out to every lane's multiplier, it was the ULX3S build's
        # critical path (11.9 ns routed, 3.9 ns of it one net). Same latency; the beat is
        # wanted a cycle sooner, and the residual reader keeps it queued well ahead.
        # needs_res: valid & mode != PLAIN of stage res_stage - 2, registered with that stage
        # (the enable starts one gate after a flip-flop)
        needs_res = Signal()
        # Stage L is the main register of a StreamSlice (a skid buffer) fed with the row
        # computed from stage L - 1: the pipeline advances while the slice's skid register is
        # empty, so ``o.ready`` never reaches the enable (it fanned out to every register of
        # the engine behind a chain through the consumer: the router's, or the buffer
        # writer's, ready; the ULX3S build's critical path). On a stall one more row moves into
        # the skid register, then the pipeline holds.
        m.submodules.out_slice = out = StreamSlice(row_layout(cfg))
        wiring.connect(m, out.o, wiring.flipped(self.o))
        out_row = out.i.payload                 # stage L's row, computed from stage L - 1
        res_ok = ~needs_res | self.res.valid
        # The handshakes use en_raw; the registers' clock enables en, the same value over a
        # global network with hw.fanout_target "ecp5" (it reaches every register of the C lanes).
        en_raw = Signal()
        en = on_global(m, en_raw, cfg.hw.fanout_target, "en_global")
        m.d.comb += [
            en_raw.eq(out.i.ready & res_ok),
            out.i.valid.eq(valid[L - 1] & res_ok),
            self.i.ready.eq(en_raw),
            self.res.ready.eq(en_raw & needs_res),
        ]
        with m.If(en):
            m.d.sync += [inp.eq(self.i.payload), in_valid.eq(self.i.valid)]
            m.d.sync += gelu1.eq(inp.gelu)
            for s in range(1, L):
                m.d.sync += [valid[s].eq(valid[s - 1]), mode[s].eq(mode[s - 1]),
                             mask[s].eq(mask[s - 1])]
            m.d.sync += needs_res.eq(valid[res_stage - 3]
                                     & (mode[res_stage - 3] != EpilogueMode.PLAIN))

        # The GELU bypass bit follows its row: the lane's input register captures y2 (stage 2),
        # so the lane needs the stage-2 copy of the command's gelu bit.
        gelu2 = Signal()
        with m.If(en):
            m.d.sync += gelu2.eq(gelu1)
        # the score of the row entering stage res_stage - 1 (2^sf = 1.0 unless SCALED, so
        # PLAIN and RESIDUAL pass y through the product unchanged), one register per lane
        score_in = Mux(mode[res_stage - 2] == EpilogueMode.SCALED, self.res.payload.score,
                       1 << sf)
        scores = replicas(m, score_in, C, cfg.hw.fanout_target, "score", enable=en)
        for c in range(C):
            # 1: bias (already in accumulator scale, so a plain add)
            s1 = Signal(signed(acc_bits + 1), name=f"sum{c}")
            # 2: requantize to act (round half up, saturate)
            y2 = Signal(signed(act.bits), name=f"y{c}")
            # 3..2+G: GELU or bypass
            if self.has_gelu:
                g = m.submodules[f"gelu{c}"] = GeluLane(cfg)
                m.d.comb += [g.en.eq(en), g.x.eq(y2), g.bypass.eq(~gelu2)]
                y = g.y
            else:
                y = y2
            # res_stage: t = y * score, and the row x it will be added to (0 in PLAIN mode)
            t = Signal(signed(act.bits + n.exp.bits + 1), name=f"t{c}")
            # the row x: taken with the res beat (stage res_stage - 1), then beside t
            x1 = Signal(signed(act.bits), name=f"x1_{c}")
            xr = Signal(signed(act.bits), name=f"xr{c}")
            prod = y * scores[c] if dsp else shift_add_mul(m, y, scores[c], f"t{c}")
            # With bias_rounded the rounding half came with the bias: only the shift and the
            # saturation are left (the rounding add, then the saturation's AND / OR over its top
            # bits, were the ULX3S build's routed 11.2 ns group epilogue.py:204).
            requantize = hw_requantize_prerounded if self.bias_rounded else hw_requantize
            with m.If(en):
                m.d.sync += [
                    s1.eq(inp.acc[c] + inp.bias[c]),
                    y2.eq(requantize(s1, n.acc_frac, act)),
                    t.eq(prod),
                    x1.eq(Mux(mode[res_stage - 2] == EpilogueMode.PLAIN, 0,
                              self.res.payload.x[c])),
                    xr.eq(x1),
                ]
            # x + round(t / 2^sf) as one adder (the rounding add and the x add in series were
            # a second carry chain deep in the output stage)
            v = hw_add_rshift_round(xr, t, sf)
            m.d.comb += out_row[c].eq(Mux(mask[L - 1][c], hw_saturate(v, act), 0))
        return m
