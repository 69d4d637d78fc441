"""Router: per-token softmax over the expert gate logits and top-k selection, bit-exact.

``Router(cfg)`` turns the gate logits of one token (the output of the gate GEMM
``LN2(x) @ W_gate[task]``, activation format; the task id only selects which gate weights that
GEMM reads) into the token's ``k = cfg.model.top_k`` chosen experts, best first, and their
softmax probabilities, exactly as :func:`sim.golden.router.route`:

    t      = to_score(logits, act.frac, log2 e)          # score format (log2 domain)
    probs  = softmax_rows(t)                             # integer-max online exp2 softmax
    chosen = top_k(t, k)                                 # ties to the lowest expert index
    weight = probs[chosen]                               # not renormalized

Only the k chosen probabilities are ever formed: the single pass over the E logits keeps the
running integer max M, the running sum l (rescaled by a rounding right shift when M grows), one
exp2 per logit, and a sorted k-entry list of (t, expert, e = 2^(t - M_at), M_at). Afterwards one
reciprocal r = round(2^R / l) (a restoring divider) and k multiplies give
``weight = sat(rshift_round(rshift_round(e, M - M_at) * r, R - exp.frac))``, which is the golden
``softmax_rows`` entry for that expert (the final rescale of e by the growth of M since it was
exponentiated is exactly the golden ``e_final``).

Ports (``amaranth.lib.stream``):

- ``i``: In, :func:`router_in_layout` -- ``logits`` (E x signed(act.bits)), ``token`` and
  ``last`` (end of frame) are passed through to the output unchanged.
- ``o``: Out, :func:`routing_layout` -- ``token``, ``last``, ``experts`` (k x expert index, best
  first) and ``weights`` (k x unsigned(exp.bits)).

Structure and timing: two decoupled stages.

- Stage A (softmax pass): one logit per cycle through ``to_score`` (one act x const multiply),
  max/shift logic, the shared :class:`hw.attention.exp2.Exp2` pipeline and the sum / top-k update. A new
  token's logits are accepted while the previous token's last logit enters the pipeline, so stage
  A takes E cycles per token back to back.
- Stage B (normalize): a restoring divider producing ``q_bits = recip_frac + 2`` quotient bits,
  one per cycle (the quotient is < 2^(recip_frac + 2) because the largest e of a row is at least
  2^(exp.frac - 1), so the divider skips the always-zero high quotient bits), then k cycles of
  one multiply each, then the output register.

Throughput: one token per ``max(E, q_bits + k + 1)`` cycles when ``o`` is always ready
(:attr:`Router.cycles_per_token`); latency from the accept edge of a token's beat to its output
beat is :attr:`Router.latency` cycles when stage B is idle. Stage A stalls only when a finished
token finds stage B still busy; ``o`` back-pressure stalls stage B.

Resources: two multipliers (act x log2e constant, e x reciprocal, each within 18 x 18 at the
default formats), the exp2 unit (one small multiplier), a divider subtractor of ~exp.frac +
log2(E) + 2 bits, and k sorted (t, index, e, M) registers.
"""
from __future__ import annotations

import math

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.fixed import hw_rshift_round, hw_saturate
from sim.golden.softmax import LOG2E, const_q, recip_bits

from hw.attention.exp2 import Exp2, exp2_params, hw_rshift_round_var

__all__ = ["Router", "router_in_layout", "routing_layout", "expert_shape", "token_shape"]


def expert_shape(cfg: Config):
    return unsigned(max(1, (cfg.model.experts - 1).bit_length()))


def token_shape(cfg: Config):
    return unsigned(max(1, (cfg.model.tokens - 1).bit_length()))


def router_in_layout(cfg: Config) -> data.StructLayout:
    """One token's gate logits (activation format) plus its index and an end-of-frame flag."""
    return data.StructLayout({
        "logits": data.ArrayLayout(signed(cfg.num.act.bits), cfg.model.experts),
        "token": token_shape(cfg),
        "last": unsigned(1),
    })


def routing_layout(cfg: Config) -> data.StructLayout:
    """One token's routing: k chosen experts (best first) and their probabilities (exp format)."""
    k = cfg.model.top_k
    return data.StructLayout({
        "token": token_shape(cfg),
        "last": unsigned(1),
        "experts": data.ArrayLayout(expert_shape(cfg), k),
        "weights": data.ArrayLayout(unsigned(cfg.num.exp.bits), k),
    })


def router_params(cfg: Config) -> dict:
    """Derived sizes shared by the RTL and its tests."""
    n, m = cfg.num, cfg.model
    f = n.exp.frac_bits
    R = recip_bits(cfg)
    lbits = f + 1 + max(1, math.ceil(math.log2(m.experts)))   # l <= E * 2^f
    q_bits = n.recip_frac + 2                                   # r <= 2^(R - f + 1)
    return dict(R=R, lbits=lbits, q_bits=q_bits,
                to_score_shift=n.act.frac_bits + n.const_frac - n.score.frac_bits,
                log2e=const_q(cfg, LOG2E))


class Router(wiring.Component):
    """Softmax + top-k router for one token per beat (see the module docstring).

    Parameters
    ----------
    cfg : Config
        ``cfg.model.experts``, ``top_k``, ``tokens``; formats ``act``, ``score``, ``exp``;
        ``const_frac``, ``recip_frac``, ``exp2_segments``.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.p = router_params(cfg)
        self.in_layout = router_in_layout(cfg)
        self.out_layout = routing_layout(cfg)
        n = cfg.num
        # Exp2 is fed max(t - M, score.min): below score.min every exp2 is 0 already, which
        # needs the clamp-to-zero shift of Exp2 to be reachable inside the score range.
        if (1 << (n.score.int_bits - 1)) < exp2_params(cfg)["max_shift"]:
            raise ValueError(f"Router: score format {n.score} is too narrow for the exp2 clamp")
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    @property
    def cycles_per_token(self) -> int:
        """Steady-state cycles per token with ``o`` always ready."""
        return max(self.cfg.model.experts, self.p["q_bits"] + self.cfg.model.top_k + 1)

    @property
    def latency(self) -> int:
        """Cycles from a token's accept edge to its output beat (stage B idle, ``o`` ready)."""
        # The last of E elements enters S1 E edges after the accept edge, S2 one edge later,
        # and its exp2 result (with the aligned side-band) is at the accumulator Exp2.latency
        # edges after that; then one hand-off edge into stage B, q_bits divide edges, k scale
        # edges, one edge into the output register and the transfer edge.
        return (self.cfg.model.experts + 1 + Exp2.latency + 1 + self.p["q_bits"]
                + self.cfg.model.top_k + 2)

    def elaborate(self, platform):
        m = Module()
        cfg, p = self.cfg, self.p
        n, mod = cfg.num, cfg.model
        E, K = mod.experts, mod.top_k
        fs = n.score.frac_bits
        f = n.exp.frac_bits
        score_shape = signed(n.score.bits)
        exp_shape = unsigned(n.exp.bits)
        # The integer running max M = ceil(t) lies within the score range's integer part (+1).
        mshape = signed(n.score.int_bits + 1)
        lshape = unsigned(p["lbits"])
        eidx = expert_shape(cfg)
        tok = token_shape(cfg)

        m.submodules.exp2 = exp2 = Exp2(cfg)

        # ---------------- stage A: sequencer (one logit per enabled cycle) ----------------
        en = Signal()                    # advance of the whole stage-A pipeline
        cur = Signal(self.in_layout)
        cur_valid = Signal()
        cur_j = Signal(range(E))
        last_elem = cur_j == E - 1
        m.d.comb += self.i.ready.eq(en & (~cur_valid | last_elem))
        with m.If(en & cur_valid):
            m.d.sync += cur_j.eq(cur_j + 1)
            with m.If(last_elem):
                m.d.sync += [cur_valid.eq(0), cur_j.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [cur.eq(self.i.payload), cur_valid.eq(1), cur_j.eq(0)]

        # Side-band carried with each element: index, token, last.
        side = data.StructLayout({"j": range(E), "token": tok, "last": 1})

        # S1: t = to_score(logit) = sat(rshift_round(logit * c, shift), score)
        s1_v, s1_t, s1_side = Signal(), Signal(score_shape), Signal(side)
        logit = Array(cur.logits[j] for j in range(E))[cur_j]
        prod = logit * Const(p["log2e"], unsigned(p["log2e"].bit_length()))
        with m.If(en):
            m.d.sync += [s1_v.eq(cur_valid),
                         s1_t.eq(hw_saturate(hw_rshift_round(prod, p["to_score_shift"]), n.score)),
                         s1_side.j.eq(cur_j), s1_side.token.eq(cur.token),
                         s1_side.last.eq(cur.last)]

        # S2: running integer max M, exp2 argument x = t - (M << fs), rescale shift of l.
        run_m = Signal(mshape)
        ceil_t = Signal(mshape)
        m.d.comb += ceil_t.eq((s1_t + ((1 << fs) - 1)) >> fs)
        m_new = Signal(mshape)
        m.d.comb += m_new.eq(Mux((s1_side.j == 0) | (ceil_t > run_m), ceil_t, run_m))
        shift_cap = p["lbits"] + 1          # rshift_round(l, s) == 0 for every s >= lbits + 1
        s2_v, s2_side = Signal(), Signal(side)
        s2_t, s2_x = Signal(score_shape), Signal(score_shape)
        s2_m = Signal(mshape)
        s2_shift = Signal(range(shift_cap + 1))
        x_full = s1_t - (m_new << fs)
        growth = m_new - run_m
        with m.If(en & s1_v):
            m.d.sync += run_m.eq(m_new)
        with m.If(en):
            m.d.sync += [
                s2_v.eq(s1_v), s2_side.eq(s1_side), s2_t.eq(s1_t), s2_m.eq(m_new),
                s2_x.eq(Mux(x_full < n.score.min_int, n.score.min_int, x_full)),
                s2_shift.eq(Mux(s1_side.j == 0, 0, Mux(growth > shift_cap, shift_cap, growth))),
            ]
        m.d.comb += [exp2.x.eq(s2_x), exp2.en.eq(en)]

        # Delay the side-band by the exp2 latency so it lines up with exp2.y.
        dv, dside, dt, dm, dshift = s2_v, s2_side, s2_t, s2_m, s2_shift
        for d in range(Exp2.latency):
            nv, nside = Signal(name=f"d{d}_v"), Signal(side, name=f"d{d}_side")
            nt, nm = Signal(score_shape, name=f"d{d}_t"), Signal(mshape, name=f"d{d}_m")
            nshift = Signal.like(s2_shift, name=f"d{d}_shift")
            with m.If(en):
                m.d.sync += [nv.eq(dv), nside.eq(dside), nt.eq(dt), nm.eq(dm), nshift.eq(dshift)]
            dv, dside, dt, dm, dshift = nv, nside, nt, nm, nshift
        e_y = exp2.y

        # Accumulator: l and the sorted top-k list (t, idx, e, M_at), updated combinationally
        # from the registers and the arriving element, registered on en.
        acc_l = Signal(lshape)
        top_v = Signal(K)
        top_t = Signal(data.ArrayLayout(score_shape, K))
        top_i = Signal(data.ArrayLayout(eidx, K))
        top_e = Signal(data.ArrayLayout(exp_shape, K))
        top_m = Signal(data.ArrayLayout(mshape, K))
        first = dside.j == 0
        l_next = Signal(lshape)
        m.d.comb += l_next.eq(Mux(first, 0, hw_rshift_round_var(acc_l, dshift)) + e_y)
        # Insertion of the new element: slot s keeps its entry if it is >= the new t (an equal
        # earlier expert wins the tie), takes the new element if it is the first slot that does
        # not, and otherwise takes slot s - 1's entry (shifted down).
        keep = [Signal(name=f"keep{s}") for s in range(K)]
        for s in range(K):
            m.d.comb += keep[s].eq(~first & top_v[s] & (top_t[s] >= dt))
        nv_ = Signal(K)
        nt_ = Signal.like(top_t)
        ni_ = Signal.like(top_i)
        ne_ = Signal.like(top_e)
        nm_ = Signal.like(top_m)
        for s in range(K):
            take_new = ~keep[s] & (Const(1) if s == 0 else keep[s - 1])
            with m.If(keep[s]):
                m.d.comb += [nv_[s].eq(1), nt_[s].eq(top_t[s]), ni_[s].eq(top_i[s]),
                             ne_[s].eq(top_e[s]), nm_[s].eq(top_m[s])]
            with m.Elif(take_new):
                m.d.comb += [nv_[s].eq(1), nt_[s].eq(dt), ni_[s].eq(dside.j), ne_[s].eq(e_y),
                             nm_[s].eq(dm)]
            if s > 0:
                with m.Else():
                    m.d.comb += [nv_[s].eq(top_v[s - 1] & ~first), nt_[s].eq(top_t[s - 1]),
                                 ni_[s].eq(top_i[s - 1]), ne_[s].eq(top_e[s - 1]),
                                 nm_[s].eq(top_m[s - 1])]
        with m.If(en & dv):
            m.d.sync += [acc_l.eq(l_next), top_v.eq(nv_), top_t.eq(nt_), top_i.eq(ni_),
                         top_e.eq(ne_), top_m.eq(nm_)]

        # ---------------- stage B: reciprocal and the k probabilities ----------------
        b_busy = Signal()
        b_phase = Signal(range(3))            # 0 divide, 1 scale, 2 output
        # Stage B takes a new token when idle or on the edge its result moves to the output.
        b_free = ~b_busy | ((b_phase == 2) & (~self.o.valid | self.o.ready))
        done_a = dv & (dside.j == E - 1)          # a token's last element is at the accumulator
        m.d.comb += en.eq(~done_a | b_free)

        b_l = Signal(lshape)
        b_m = Signal(mshape)
        b_i = Signal.like(top_i)
        b_e = Signal.like(top_e)
        b_mat = Signal.like(top_m)
        b_tok, b_last = Signal(tok), Signal()
        q_bits, R = p["q_bits"], p["R"]
        num_bits = R + 1                                   # N = 2^R + (l >> 1) < 2^(R+1)
        b_num = Signal(num_bits)
        b_rem = Signal(p["lbits"] + 1)
        b_q = Signal(q_bits)
        b_step = Signal(range(max(q_bits, K) + 1))
        # Divide: one quotient bit per cycle, MSB first.
        # b_num shifts left each step, so its bit q_bits - 1 is the next dividend bit.
        trial = Signal(p["lbits"] + 2)
        m.d.comb += trial.eq((b_rem << 1) | b_num[q_bits - 1])
        ge = trial >= b_l
        # Scale: one chosen expert per cycle.
        e_cap = exp2_params(cfg)["mant_bits"] + 1
        # Each chosen e's rescale by the growth of M depends only on stage B's input registers,
        # so it is registered during the q_bits-cycle divide: a scale cycle is then one multiply
        # (subtract, shift and multiply in one cycle were the ECP5 build's critical path).
        b_esh = Signal(data.ArrayLayout(exp_shape, K))
        for s in range(K):
            diff = b_m - b_mat[s]
            m.d.sync += b_esh[s].eq(hw_rshift_round_var(
                b_e[s], Mux(diff > e_cap, e_cap, diff)[:e_cap.bit_length()]))
        e_sh = Array(b_esh[s] for s in range(K))[b_step]
        prob = hw_saturate(hw_rshift_round(e_sh * b_q, R - f), n.exp)
        o_w = Signal(data.ArrayLayout(exp_shape, K))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)      # overridden below when a new beat loads
        with m.If(b_busy):
            with m.Switch(b_phase):
                with m.Case(0):
                    m.d.sync += [b_rem.eq(Mux(ge, trial - b_l, trial)), b_num.eq(b_num << 1),
                                 b_q.eq((b_q << 1) | ge), b_step.eq(b_step + 1)]
                    with m.If(b_step == q_bits - 1):
                        m.d.sync += [b_phase.eq(1), b_step.eq(0)]
                with m.Case(1):
                    for s in range(K):
                        with m.If(b_step == s):
                            m.d.sync += o_w[s].eq(prob)
                    m.d.sync += b_step.eq(b_step + 1)
                    with m.If(b_step == K - 1):
                        m.d.sync += b_phase.eq(2)
                with m.Case(2):
                    with m.If(~self.o.valid | self.o.ready):
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.token.eq(b_tok),
                                     self.o.payload.last.eq(b_last),
                                     self.o.payload.experts.eq(b_i),
                                     self.o.payload.weights.eq(o_w), b_busy.eq(0)]
        # The token's final M is the running max as of its last element (that element's M_at).
        m_final = dm
        with m.If(done_a & b_free):
            numer = (Const(1 << R, num_bits) + (l_next >> 1))[:num_bits]
            m.d.sync += [
                b_busy.eq(1), b_phase.eq(0), b_step.eq(0),
                b_l.eq(l_next), b_m.eq(m_final),
                b_i.eq(ni_), b_e.eq(ne_), b_mat.eq(nm_),
                b_tok.eq(dside.token), b_last.eq(dside.last),
                b_num.eq(numer),
                # The quotient has at most q_bits bits, so the first num_bits - q_bits long-
                # division steps produce zeros and leave N >> q_bits (< l) as the remainder.
                b_rem.eq(numer >> q_bits), b_q.eq(0),
            ]
        return m
