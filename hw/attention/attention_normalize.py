"""AttentionNormalizer: the attention unit's shared output stage, out = sat(o * r >> R).

Visits the lanes' finished rows in query-row order (lane 0 .. nrows-1 of group 0, then group 1,
..., wrapping every G groups = one head) and turns each into ``hd / nw`` output beats of ``nw``
activations: ``out = saturate(rshift_round(o * r, R), act)`` (``R = recip_bits(cfg)``), exactly
the last line of ``sim.golden.softmax.attention_head``. It takes the lane's reciprocal ``r`` with
the row's first beat and clears the lane's ``hold_full`` with its last, so the lane can finish its
next row.

Ports::

    holds      In(ArrayLayout(ArrayLayout(signed(o_bits), hd), p))   the lanes' hold registers
    hold_full  In(p)           hold_clear Out(p)
    r          In(stream(ArrayLayout(unsigned(q_bits), 1))).array(p)  the lanes' divider outputs
    o          Out(stream({"o": ArrayLayout(signed(act.bits), nw), "last": 1}))
               ``last`` on the final beat of each head

Pipeline (stall-all on ``o`` back-pressure): N1 select nw accumulators of the current row and
latch r; N2 nw multiplies (o_bits x q_bits, ~40 x 18) as partial products of 17-bit pieces of o,
each in a multiplier's output register; N3 two sums of them (the rounding half in one); round
+ saturate into the output register. Latency 4 cycles, one beat per cycle, no bubble between
rows whose r is ready.
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.fixed import hw_saturate
from sim.golden.softmax import recip_bits
from hw.attention.attention_lane import AttentionParams
from hw.common import Loop, count_nested
from hw.fabric.multiplier import MULT18_WIDTH, Multiplier
from hw.fabric.replica import replicas

__all__ = ["AttentionNormalizer", "out_layout"]


def out_layout(cfg: Config, ap: AttentionParams) -> data.StructLayout:
    return data.StructLayout({"o": data.ArrayLayout(signed(cfg.num.act.bits), ap.norm_width),
                              "last": 1})


class AttentionNormalizer(wiring.Component):
    """Shared normalizer of the attention lanes (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Formats (``num.act``, R = ``recip_bits(cfg)``).
    ap : AttentionParams
        Lanes p, head dimension, ``norm_width`` nw, accumulator and reciprocal widths.

    Ports
    -----
    holds : In(p x hd accumulators); hold_full : In(p); hold_clear : Out(p)
        The lanes' finished rows; ``hold_clear[k]`` with the last beat of lane k's row.
    r : In(stream(q_bits)) x p
        The lanes' reciprocals, taken with the row's first beat.
    o : Out(stream(out_layout))
        ``hd / nw`` beats per row, rows in query order, ``last`` on a head's final beat.

    Attributes
    ----------
    latency : int
        Cycles from issuing a beat (N1) to ``o.valid`` (4); throughput one beat per cycle.
    """

    latency = 4

    def __init__(self, cfg: Config, ap: AttentionParams):
        self.cfg, self.ap = cfg, ap
        super().__init__({
            "holds": In(data.ArrayLayout(data.ArrayLayout(signed(ap.o_bits), ap.hd), ap.p)),
            "hold_full": In(ap.p),
            "hold_clear": Out(ap.p),
            "r": In(stream.Signature(data.ArrayLayout(unsigned(ap.q_bits), 1))).array(ap.p),
            "o": Out(stream.Signature(out_layout(cfg, ap))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, ap, n = self.cfg, self.ap, self.cfg.num
        p, nw, ob = ap.p, ap.norm_width, ap.o_bits
        beats = ap.hd // nw
        R = recip_bits(cfg)

        lane = Signal(range(p))
        beat = Signal(range(beats))
        group = Signal(range(ap.G))
        last_rows = ap.N - (ap.G - 1) * p
        nrows = Signal(range(p + 1))
        m.d.comb += nrows.eq(Mux(group == ap.G - 1, last_rows, p))

        full = Signal()
        r_valid = Signal()
        r_data = Signal(ap.q_bits)
        m.d.comb += [
            full.eq(self.hold_full.bit_select(lane, 1)),
            r_valid.eq(Array(self.r[k].valid for k in range(p))[lane]),
            r_data.eq(Array(self.r[k].payload[0] for k in range(p))[lane]),
        ]
        adv = Signal()
        issue = Signal()
        first_beat = Signal()
        last_beat = Signal()
        m.d.comb += [
            adv.eq(~self.o.valid | self.o.ready),
            issue.eq(adv & full & (~first_beat | r_valid)),
        ]
        if beats == 1:
            m.d.comb += [first_beat.eq(1), last_beat.eq(1)]
        else:
            # ``beat == 0`` / ``beat == beats - 1`` kept as registers beside ``beat`` (stepped
            # with it on ``issue``): the compares behind ``beat``, whose net also selects every
            # accumulator of the N1 mux, led the lanes' divider start (ULX3S estimate, 14 ns).
            first_r, last_r = Signal(init=1), Signal()
            with m.If(issue):
                m.d.sync += [first_r.eq(last_beat), last_r.eq(beat == beats - 2)]
            m.d.comb += [first_beat.eq(first_r), last_beat.eq(last_r)]
        for k in range(p):
            m.d.comb += [self.r[k].ready.eq(issue & first_beat & (lane == k)),
                         self.hold_clear[k].eq(issue & last_beat & (lane == k))]

        # N1: nw accumulators of (lane, beat) and r.
        flat = [self.holds[k].as_value() for k in range(p)]
        lane_flat = Signal(ap.hd * ob)
        sel = Signal(nw * ob)
        m.d.comb += lane_flat.eq(Array(flat)[lane])
        # The beat select of the N1 mux uses copies of ``beat`` (loaded with its next value),
        # each for a share of the word's bits: ``beat`` itself drove ~230 mux inputs (ULX3S
        # estimate, 11.5 ns to n1_o).
        W = nw * ob
        words = [lane_flat[w * W:(w + 1) * W] for w in range(beats)]
        if beats == 1:
            m.d.comb += sel.eq(words[0])
        else:
            beat_next = Mux(issue, Mux(last_beat, 0, beat + 1), beat)
            ncop = max(1, min(4, W // 8))
            beat_c = replicas(m, beat_next[:len(beat)], ncop, cfg.hw.fanout_target, "beat_sel")
            for k in range(ncop):
                lo, hi = k * W // ncop, (k + 1) * W // ncop
                m.d.comb += sel[lo:hi].eq(Array(wd[lo:hi] for wd in words)[beat_c[k]])
        r_cur = Signal(ap.q_bits)
        n1_valid, n1_last = Signal(), Signal()
        n1_o = Signal(nw * ob)
        n1_r = Signal(ap.q_bits)
        r_use = Mux(first_beat, r_data, r_cur)
        # N2: partial products o_k * r (o = sum_k o_k 2^(17 k), every o_k within one
        # MULT18X18D operand: 17-bit unsigned pieces, the top one signed), each in its
        # multiplier's output register (hw.fabric.Multiplier). As one o_bits x q_bits product
        # the MULT18X18Ds without registers and the adders joining them fed the rounding in one
        # cycle: the ULX3S routed 12.89 ns group (n1_r -> mult -> 19 carries -> n2_prod).
        # N3: A = sum_{k >= 1} P_k 2^(17 (k - 1)) and B = P_0 + 2^(R-1) (the rounding half);
        # output register: sat((A 2^17 + B) >> R), the golden sat(rshift_round(o * r, R)).
        n2_valid, n2_last = Signal(), Signal()
        n3_valid, n3_last = Signal(), Signal()
        head_last = Signal()
        row = Signal(range(ap.N))
        m.d.comb += head_last.eq((row == ap.N - 1) & last_beat)
        piece = MULT18_WIDTH - 1
        npieces = max(1, -(-(ob - 1) // piece))
        half = (1 << (R - 1)) if R > 0 else 0
        out_expr, n3_regs = [], []
        for i in range(nw):
            o_i = n1_o.word_select(i, ob)
            parts = [o_i[k * piece:(k + 1) * piece] if k < npieces - 1
                     else o_i[k * piece:].as_signed() for k in range(npieces)]
            prods = []
            for k, part in enumerate(parts):
                mul = Multiplier(part.shape(), unsigned(ap.q_bits), output_reg=True,
                                 target=(cfg.hw.dsp_target if ap.q_bits <= MULT18_WIDTH
                                         else "generic"))
                m.submodules[f"mul{i}_{k}"] = mul
                m.d.comb += [mul.a.eq(part), mul.b.eq(n1_r), mul.en.eq(adv)]
                prods.append(mul.p)
            b_expr = prods[0] + half
            n3_b = Signal(b_expr.shape(), name=f"n3_b{i}")
            n3_regs.append(n3_b.eq(b_expr))
            if npieces > 1:
                a_expr = prods[-1]
                for pk in reversed(prods[1:-1]):
                    a_expr = (a_expr << piece) + pk
                n3_a = Signal(a_expr.shape(), name=f"n3_a{i}")
                n3_regs.append(n3_a.eq(a_expr))
                total = (n3_a << piece) + n3_b
            else:
                total = n3_b
            out_expr.append(hw_saturate(total >> R, n.act))
        with m.If(adv):
            m.d.sync += [
                n1_valid.eq(issue), n1_last.eq(head_last), n1_o.eq(sel), n1_r.eq(r_use),
                n2_valid.eq(n1_valid), n2_last.eq(n1_last),
                n3_valid.eq(n2_valid), n3_last.eq(n2_last), *n3_regs,
                self.o.valid.eq(n3_valid), self.o.payload.last.eq(n3_last),
                *[self.o.payload.o[i].eq(out_expr[i]) for i in range(nw)],
            ]
        with m.If(issue):
            m.d.sync += r_cur.eq(r_use)
            # beat of the row; the row's last beat steps both the query row of the head and the
            # (lane, group) position of that row
            count_nested(m, [Loop(beat, last=beats - 1), Loop(lane, last=nrows - 1),
                             Loop(group, last=ap.G - 1)])
            with m.If(last_beat):
                count_nested(m, [Loop(row, last=ap.N - 1)])
        return m
