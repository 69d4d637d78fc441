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
  max/shift logic, the shared :class:`hw.attention.exp2.Exp2` pipeline and the sum / top-k
  update. A new token's logits are accepted while the previous token's last logit enters the
  pipeline, so stage A takes E cycles per token back to back.
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

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.fixed import hw_rshift_round, hw_saturate
from sim.golden.softmax import LOG2E, const_q, recip_bits

from hw.attention.exp2 import Exp2, exp2_params, hw_rshift_round_var
from hw.common import Loop, count_nested
from hw.fabric.multiplier import MULT18_WIDTH, Multiplier
from hw.fabric.replica import replicas

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

    Ports
    -----
    i : In stream, :func:`router_in_layout`
        One token per beat: ``logits`` (E values), ``token``, ``last``; tokens in any order.
    o : Out stream, :func:`routing_layout`
        One beat per input beat, same order: ``token``, ``last``, ``experts`` (best first),
        ``weights``.

    Attributes
    ----------
    latency : int
        Cycles from a token's accept edge to its output beat with stage B idle.
    cycles_per_token : int
        Steady-state cycles per token, ``max(E, q_bits + k + 1)``.
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
        m.submodules.exp2 = exp2 = Exp2(self.cfg, dsp_target=self.cfg.hw.dsp_target)
        # The advance of the whole stage-A pipeline, as one copy per group of registers it
        # enables (all equal, see _stage_b): one net to ~240 enables was 4 ns of the ULX3S
        # estimate's 13-14 ns paths from the output slice's skid bit.
        advance = {g: Signal(name=f"advance_{g}") for g in
                   ("in", "s1", "s2", "exp2", *(f"d{d}" for d in range(Exp2.latency)), "acc",
                    "b")}
        s1 = self._stage_a_to_score(m, advance["in"], advance["s1"])
        s2 = self._stage_a_max(m, advance["s2"], s1)
        m.d.comb += [exp2.x.eq(s2["exp_arg"]), exp2.en.eq(advance["exp2"])]
        at_acc = self._stage_a_delay(m, [advance[f"d{d}"] for d in range(Exp2.latency)], s2)
        acc = self._stage_a_accumulate(m, advance["acc"], at_acc, exp2.y)
        self._stage_b(m, advance, at_acc, acc)
        return m

    def _shapes(self):
        n = self.cfg.num
        # The integer running max M = ceil(t) lies within the score range's integer part (+1).
        return signed(n.score.bits), unsigned(n.exp.bits), signed(n.score.int_bits + 1)

    def _side_layout(self):
        """Side-band carried with each element: index, token, last."""
        return data.StructLayout({"j": range(self.cfg.model.experts),
                                  "token": token_shape(self.cfg), "last": 1})

    def _stage_a_to_score(self, m, advance, advance_s1):
        """Stage A sequencer (one logit per enabled cycle) and S1: t = to_score(logit)."""
        n, p, E = self.cfg.num, self.p, self.cfg.model.experts
        score_shape, _, _ = self._shapes()
        cur = Signal(self.in_layout)
        cur_valid = Signal()
        cur_index = Signal(range(E))
        # "a new token may enter" (~cur_valid | cur_index == E - 1) as a register of its own:
        # decoded from cur_valid / cur_index it was a LUT level more on the way to the ~70
        # enables of ``cur`` (ULX3S routed 13.7 ns on one seed, router.py:194)
        cur_free = Signal(init=1)
        m.d.comb += self.i.ready.eq(advance & cur_free)
        logits = Value.cast(cur.logits)
        with m.If(advance & cur_valid):
            count_nested(m, [Loop(cur_index, last=E - 1)], done=[cur_valid.eq(0)])
            # the logits shift down one per step, so the current one is always logits[0]: the
            # E-way select by cur_index sat in front of the multiply (ULX3S estimate, 11.6 ns)
            m.d.sync += logits.eq(logits >> n.act.bits)
            m.d.sync += cur_free.eq((cur_index == E - 2) | (cur_index == E - 1))
        accept = self.i.valid & self.i.ready
        with m.If(accept):
            m.d.sync += [cur.eq(self.i.payload), cur_valid.eq(1), cur_index.eq(0),
                         cur_free.eq(E == 1)]

        # S1: t = to_score(logit) = sat(rshift_round(logit * c, shift), score)
        s1_valid, s1_score = Signal(), Signal(score_shape)
        s1_side = Signal(self._side_layout())
        logit = cur.logits[0]
        prod = logit * Const(p["log2e"], unsigned(p["log2e"].bit_length()))
        with m.If(advance_s1):
            m.d.sync += [s1_valid.eq(cur_valid),
                         s1_score.eq(hw_saturate(hw_rshift_round(prod, p["to_score_shift"]),
                                                 n.score)),
                         s1_side.j.eq(cur_index), s1_side.token.eq(cur.token),
                         s1_side.last.eq(cur.last)]
        return dict(valid=s1_valid, score=s1_score, side=s1_side)

    def _stage_a_max(self, m, advance, s1):
        """S2: running integer max M, exp2 argument x = t - (M << fs), rescale shift of l."""
        n, p = self.cfg.num, self.p
        fs = n.score.frac_bits
        score_shape, _, mshape = self._shapes()
        s1_score, s1_side = s1["score"], s1["side"]
        shift_cap = p["lbits"] + 1          # rshift_round(l, s) == 0 for every s >= lbits + 1
        run_max = Signal(mshape)
        # run_max + shift_cap, kept beside run_max: "the growth exceeds the cap" is then one
        # compare of registers (the chain ceil, compare, mux, subtract, compare was 11.9 ns)
        run_cap = Signal(signed(mshape.width + shift_cap.bit_length() + 1), init=shift_cap)
        frac, t_hi = s1_score[:fs], s1_score[fs:].as_signed()
        up = frac != 0                      # ceil(t) = t_hi + up
        ceil_t = Signal(mshape)
        m.d.comb += ceil_t.eq(t_hi + up)
        # ceil(t) > M exactly when t > M << fs (M is an integer): compares of the registers,
        # written as the sign of a difference so that they stay carry chains (as ``>`` the
        # synthesis made one a 4-LUT tree)
        gt = ((run_max << fs) - s1_score)[-1]
        gt_cap = ((run_cap << fs) - s1_score)[-1]      # ceil(t) - M > shift_cap
        # and run_max + (score.min_int >> fs), so the clamp of x below is a compare too
        lo_off = n.score.min_int >> fs
        assert lo_off << fs == n.score.min_int
        run_lo = Signal(signed(mshape.width + max(1, (-lo_off).bit_length()) + 1), init=lo_off)
        below = (t_hi - run_lo)[-1]                    # (t_hi - M, frac) < score.min_int
        grow = (s1_side.j == 0) | gt
        max_new = Signal(mshape)
        m.d.comb += max_new.eq(Mux(grow, ceil_t, run_max))
        s2_valid, s2_side = Signal(), Signal(self._side_layout())
        s2_score, s2_exp_arg = Signal(score_shape), Signal(score_shape)
        s2_max = Signal(mshape)
        shift_shape = unsigned(shift_cap.bit_length())     # 0 .. shift_cap
        # x = t - (max_new << fs): t - (ceil(t) << fs) = frac - 2^fs (or 0) when M grows, in
        # (-1, 0]; else (t_hi - M, frac), clamped to the score range
        x_ceil = Mux(frac == 0, 0, Cat(frac, Const(1, 1)).as_signed())
        x_keep = Cat(frac, t_hi - run_max).as_signed()[:len(s2_exp_arg)]
        # ceil(t) + const as one carry chain (t_hi + (const or const + 1)), not the ceil's
        # increment and then the add in series
        with m.If(advance & s1["valid"]):
            # run_max + const, without an add behind the max_new mux
            m.d.sync += [run_max.eq(max_new),
                         run_cap.eq(Mux(grow, t_hi + Mux(up, shift_cap + 1, shift_cap), run_cap)),
                         run_lo.eq(Mux(grow, t_hi + Mux(up, lo_off + 1, lo_off), run_lo))]
        # The rescale shift of l is wanted only at the accumulator, Exp2.latency stages on: S2
        # registers its parts (no shift; capped; the max before it grew) and the first delay
        # stage forms it. As ceil(t) - M behind the compares and muxes it was the ULX3S build's
        # routed 11.7 ns path (s1_score -> the shift register). When M grows past the cap test, the new
        # M (s2_max) is ceil(t), so the growth is s2_max - s2_prev.
        s2_noshift, s2_capped = Signal(), Signal()
        s2_prev = Signal(mshape)
        with m.If(advance):
            m.d.sync += [
                s2_valid.eq(s1["valid"]), s2_side.eq(s1_side), s2_score.eq(s1_score),
                s2_max.eq(max_new),
                s2_exp_arg.eq(Mux(grow, x_ceil, Mux(below, n.score.min_int, x_keep))),
                s2_noshift.eq((s1_side.j == 0) | ~gt), s2_capped.eq(gt_cap),
                s2_prev.eq(run_max),
            ]
        # used only when 0 < growth <= shift_cap
        shift = Mux(s2_noshift, 0, Mux(s2_capped, shift_cap,
                                        (s2_max - s2_prev)[:shift_shape.width]))
        return dict(valid=s2_valid, side=s2_side, score=s2_score, max=s2_max,
                    shift_shape=shift_shape, shift_next=shift, exp_arg=s2_exp_arg)

    def _stage_a_delay(self, m, advance, s2):
        """Delay the side-band by the exp2 latency so it lines up with exp2.y."""
        score_shape, _, mshape = self._shapes()
        # the shift enters the first delay stage from S2's parts (see _stage_a_max)
        dv, dside, dt, dm, dshift = (s2["valid"], s2["side"], s2["score"], s2["max"],
                                     s2["shift_next"])
        for d in range(Exp2.latency):
            # ends as the stage before the last (look-ahead)
            pre_valid, pre_j, pre_score = dv, dside.j, dt
            nv, nside = Signal(name=f"d{d}_valid"), Signal(self._side_layout(), name=f"d{d}_side")
            nt = Signal(score_shape, name=f"d{d}_score")
            nm = Signal(mshape, name=f"d{d}_max")
            nshift = Signal(s2["shift_shape"], name=f"d{d}_shift")
            with m.If(advance[d]):
                m.d.sync += [nv.eq(dv), nside.eq(dside), nt.eq(dt), nm.eq(dm), nshift.eq(dshift)]
            dv, dside, dt, dm, dshift = nv, nside, nt, nm, nshift
        return dict(valid=dv, side=dside, score=dt, max=dm, shift=dshift,
                    pre_valid=pre_valid, pre_j=pre_j, pre_score=pre_score)

    def _stage_a_accumulate(self, m, advance, at_acc, e_y):
        """Accumulator: l and the sorted top-k list (t, idx, e, M_at), updated combinationally
        from the registers and the arriving element, registered on ``advance``."""
        K = self.cfg.model.top_k
        score_shape, exp_shape, mshape = self._shapes()
        lshape = unsigned(self.p["lbits"])
        dside, dt, dm = at_acc["side"], at_acc["score"], at_acc["max"]
        acc_sum = Signal(lshape)
        top_valid = Signal(K)
        top_score = Signal(data.ArrayLayout(score_shape, K))
        top_expert = Signal(data.ArrayLayout(expert_shape(self.cfg), K))
        top_exp = Signal(data.ArrayLayout(exp_shape, K))
        top_max_at = Signal(data.ArrayLayout(mshape, K))
        first = dside.j == 0
        sum_next = Signal(lshape)
        # rshift_round(l, s) + e as one shift and one add (the + 1 of the rounding is the low
        # bit of 2 e + 1, see hw_rshift_round_var): one carry chain fewer in front of stage B
        m.d.comb += sum_next.eq((Mux(first, 0, (acc_sum << 1) >> at_acc["shift"])
                                 + ((e_y << 1) | 1)) >> 1)
        # Insertion of the new element: slot s keeps its entry if it is >= the new t (an equal
        # earlier expert wins the tie), takes the new element if it is the first slot that does
        # not, and otherwise takes slot s - 1's entry (shifted down).
        # ``top_score[s] >= dt`` comes from a register (ge_r) loaded with the compare of the
        # next values: the compare of the arriving score in front of the insertion muxes was the
        # ULX3S routed 12.85 ns path (d2_score -> 9 carries -> 4 LUTs -> top_*, b_*). The next
        # top_score[s] is top_score[s], dt or top_score[s - 1] (the muxes below) and the next dt
        # is the score entering the last delay stage (pre_score), so the next compare is one of
        # K + 1 compares of registers with pre_score, picked by the same keep / take_new.
        # Invariant: ge_r[s] == (top_score[s] >= dt) in every cycle (both 0 after reset).
        ge_r = Signal(K, init=(1 << K) - 1)
        keep = [Signal(name=f"keep{s}") for s in range(K)]
        for s in range(K):
            m.d.comb += keep[s].eq(~first & top_valid[s] & ge_r[s])
        next_valid = Signal(K)
        next_score = Signal.like(top_score)
        next_expert = Signal.like(top_expert)
        next_exp = Signal.like(top_exp)
        next_max_at = Signal.like(top_max_at)
        for s in range(K):
            take_new = ~keep[s] & (Const(1) if s == 0 else keep[s - 1])
            with m.If(keep[s]):
                m.d.comb += [next_valid[s].eq(1), next_score[s].eq(top_score[s]),
                             next_expert[s].eq(top_expert[s]), next_exp[s].eq(top_exp[s]),
                             next_max_at[s].eq(top_max_at[s])]
            with m.Elif(take_new):
                m.d.comb += [next_valid[s].eq(1), next_score[s].eq(dt),
                             next_expert[s].eq(dside.j), next_exp[s].eq(e_y),
                             next_max_at[s].eq(dm)]
            if s > 0:
                with m.Else():
                    m.d.comb += [next_valid[s].eq(top_valid[s - 1] & ~first),
                                 next_score[s].eq(top_score[s - 1]),
                                 next_expert[s].eq(top_expert[s - 1]),
                                 next_exp[s].eq(top_exp[s - 1]),
                                 next_max_at[s].eq(top_max_at[s - 1])]
        pre_t = at_acc["pre_score"]
        ge_top = [top_score[s] >= pre_t for s in range(K)]
        ge_new = dt >= pre_t
        ge_next = Signal(K)
        for s in range(K):
            take_new = ~keep[s] & (Const(1) if s == 0 else keep[s - 1])
            m.d.comb += ge_next[s].eq(Mux(keep[s], ge_top[s],
                                          Mux(take_new, ge_new,
                                              ge_top[s - 1] if s > 0 else ge_top[s])))
        with m.If(advance):
            # dt loads pre_score on every advance; top_score only with a valid element
            m.d.sync += ge_r.eq(Mux(at_acc["valid"], ge_next, Cat(*ge_top)))
        with m.If(advance & at_acc["valid"]):
            m.d.sync += [acc_sum.eq(sum_next), top_valid.eq(next_valid),
                         top_score.eq(next_score), top_expert.eq(next_expert),
                         top_exp.eq(next_exp), top_max_at.eq(next_max_at)]
        return dict(sum_next=sum_next, expert=next_expert, exp=next_exp, max_at=next_max_at,
                    top_expert=top_expert, top_exp=top_exp, top_max_at=top_max_at)

    def _stage_b(self, m, advance, at_acc, acc):
        """Stage B: reciprocal of l (restoring divider), the k probabilities, the output beat."""
        cfg, p = self.cfg, self.p
        n, E, K = cfg.num, cfg.model.experts, cfg.model.top_k
        f = n.exp.frac_bits
        _, exp_shape, mshape = self._shapes()
        b_busy = Signal()
        b_phase = Signal(range(3))            # 0 divide, 1 scale, 2 output
        # Stage B takes a new token when idle or on the edge its result moves to the output.
        b_free = ~b_busy | ((b_phase == 2) & (~self.o.valid | self.o.ready))
        done_a = at_acc["valid"] & (at_acc["side"].j == E - 1)   # a token's last element
        q_bits = p["q_bits"]
        b_step = Signal(range(max(q_bits, K) + 1))
        self._advance(m, advance, at_acc, b_free, b_busy, b_phase, b_step)
        # the formula the copies stand for (no loads: tests compare the copies with it)
        advance_ref = Signal()
        m.d.comb += advance_ref.eq(~done_a | b_free)

        b_sum = Signal(unsigned(p["lbits"]))
        b_max = Signal(mshape)
        b_experts = Signal.like(acc["top_expert"])
        b_exps = Signal.like(acc["top_exp"])
        b_max_at = Signal.like(acc["top_max_at"])
        b_token, b_last = Signal(token_shape(cfg)), Signal()
        R = p["R"]
        num_bits = R + 1                                   # N = 2^R + (l >> 1) < 2^(R+1)
        b_numer = Signal(num_bits)
        b_remainder = Signal(p["lbits"] + 1)
        b_quotient = Signal(q_bits)
        # Divide: one quotient bit per cycle, MSB first.
        # b_numer shifts left each step, so its bit q_bits - 1 is the next dividend bit.
        trial = Signal(p["lbits"] + 2)
        m.d.comb += trial.eq((b_remainder << 1) | b_numer[q_bits - 1])
        ge = trial >= b_sum
        # Scale: one chosen expert per cycle.
        e_cap = exp2_params(cfg)["mant_bits"] + 1
        # Each chosen e's rescale by the growth of M depends only on stage B's input registers,
        # so it is registered during the q_bits-cycle divide: a scale cycle is then one multiply
        # (subtract, shift and multiply in one cycle were the ECP5 build's critical path).
        # The clamped shift and the shift itself are two free-running stages (one was 13 carry
        # levels): the result is taken on the divide's last step, q_bits >= 3 cycles later.
        # The rounding of the shift is a third stage ((2 e) >> sh, then (. + 1) >> 1, as
        # hw_rshift_round_var): shift and increment in one were the ULX3S routed 10.07 ns group.
        b_exp_rescaled = Signal(data.ArrayLayout(exp_shape, K))
        for s in range(K):
            diff = b_max - b_max_at[s]
            b_shift = Signal(range(e_cap + 1), name=f"b_shift{s}")
            b_twice = Signal(unsigned(exp_shape.width + 1), name=f"b_twice{s}")
            m.d.sync += b_shift.eq(Mux(diff > e_cap, e_cap, diff)[:e_cap.bit_length()])
            if q_bits >= 4:
                m.d.sync += [b_twice.eq((b_exps[s] << 1) >> b_shift),
                             b_exp_rescaled[s].eq((b_twice + 1) >> 1)]
            else:
                m.d.sync += b_exp_rescaled[s].eq(hw_rshift_round_var(b_exps[s], b_shift))
        # The scale steps take the rescaled e's from a shift register loaded on the divide's
        # last step, and shift each probability into ``out_weights`` from the top: the step
        # counter no longer selects the multiplier's operand or the register written (that
        # select and its decode were the ULX3S build's critical path, in front of the
        # multiply and the rounding). Needs q_bits >= 4 (>= 3 without the third stage):
        # b_exp_rescaled settles three edges after stage B's input registers, and is loaded at
        # the end of divide step q_bits.
        assert q_bits >= 3, "the rescaled e's must settle before the divide ends"
        e_queue = Signal(data.ArrayLayout(exp_shape, K))
        # The product e * r is registered (the multiplier's output register, enabled in the
        # scale phase), and rounded + saturated one cycle later: multiply, rounding and
        # saturation in one cycle were the ULX3S routed 12.26 ns path (b_quotient -> mult -> 10
        # carries -> out_weights). Scale step s shifts in the probability of step s - 1 (step
        # 0's, from the previous token's product, falls off the end) and the output beat takes
        # the last one straight from the register: the same K cycles.
        scale = b_busy & (b_phase == 1)
        fits = max(exp_shape.width, q_bits) <= MULT18_WIDTH     # else built from LUTs / `*`
        m.submodules.b_mul = b_mul = Multiplier(exp_shape, unsigned(q_bits), output_reg=True,
                                                target=cfg.hw.dsp_target if fits else "generic")
        m.d.comb += [b_mul.a.eq(e_queue[0]), b_mul.b.eq(b_quotient), b_mul.en.eq(scale)]
        prob = Signal(exp_shape)
        m.d.comb += prob.eq(hw_saturate(hw_rshift_round(b_mul.p, R - f), n.exp))
        out_weights = Signal(data.ArrayLayout(exp_shape, K))
        weights_final = Cat(*(out_weights[s] for s in range(1, K)), prob)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)      # overridden below when a new beat loads
        with m.If(b_busy):
            with m.Switch(b_phase):
                with m.Case(0):
                    m.d.sync += [b_remainder.eq(Mux(ge, trial - b_sum, trial)),
                                 b_numer.eq(b_numer << 1),
                                 b_quotient.eq((b_quotient << 1) | ge)]
                    count_nested(m, [Loop(b_step, last=q_bits - 1)],
                                 done=[b_phase.eq(1), e_queue.eq(b_exp_rescaled)])
                with m.Case(1):
                    # after K steps out_weights[s] holds step s - 1's probability (s >= 1)
                    m.d.sync += [Value.cast(out_weights).eq(Cat(
                                     *(out_weights[s] for s in range(1, K)), prob)),
                                 Value.cast(e_queue).eq(Cat(
                                     *(e_queue[s] for s in range(1, K)), e_queue[K - 1]))]
                    count_nested(m, [Loop(b_step, last=K - 1, first=None)],
                                 done=[b_phase.eq(2)])
                with m.Case(2):
                    with m.If(~self.o.valid | self.o.ready):
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.token.eq(b_token),
                                     self.o.payload.last.eq(b_last),
                                     self.o.payload.experts.eq(b_experts),
                                     self.o.payload.weights.eq(weights_final),
                                     b_busy.eq(0)]
        # The token's final M is the running max as of its last element (that element's M_at).
        max_final = at_acc["max"]
        # Stage B's start ``done_a & b_free`` == ``done_a & advance`` (advance = ~done_a |
        # b_free), from a copy of the advance of its own and done_a as a register (loaded with
        # the look-ahead of the last delay stage, as that stage is): b_free's decode of o.ready
        # and the compare of the last element's index sat in front of ~140 load enables (the
        # ULX3S estimate: route_slice.skid_v -> 5 LUTs -> b_*, 12.15 ns).
        done_r = Signal(name="b_done_a")
        with m.If(advance["b"]):
            m.d.sync += done_r.eq(at_acc["pre_valid"] & (at_acc["pre_j"] == E - 1))
        with m.If(done_r & advance["b"]):
            numer = (Const(1 << R, num_bits) + (acc["sum_next"] >> 1))[:num_bits]
            m.d.sync += [
                b_busy.eq(1), b_phase.eq(0), b_step.eq(0),
                b_sum.eq(acc["sum_next"]), b_max.eq(max_final),
                b_experts.eq(acc["expert"]), b_exps.eq(acc["exp"]), b_max_at.eq(acc["max_at"]),
                b_token.eq(at_acc["side"].token), b_last.eq(at_acc["side"].last),
                b_numer.eq(numer),
                # The quotient has at most q_bits bits, so the first num_bits - q_bits long-
                # division steps produce zeros and leave N >> q_bits (< l) as the remainder.
                b_remainder.eq(numer >> q_bits), b_quotient.eq(0),
            ]

    def _advance(self, m, advance, at_acc, b_free, b_busy, b_phase, b_step):
        """Drive the copies of stage A's advance, ``~done_a | b_free`` with
        ``done_a = at_acc.valid & (at_acc.j == E - 1)`` and
        ``b_free = ~b_busy | (b_phase == 2) & (~o.valid | o.ready)``.

        Each copy is ``~stall | (ph2 & o.ready)`` of two registers of its own, loaded with the
        next values of ``stall = done_a & b_busy & ~(b_phase == 2 & ~o.valid)`` and
        ``ph2 = b_phase == 2``: one LUT after ``o.ready`` (the output slice's skid bit) instead
        of two LUTs and a 240-load net. Same values every cycle, so the same cycles.

        The next values are split on ``done_a`` instead of using stage B's start (``done_a &
        b_free``, the enable of all its input registers: that net was on the path)."""
        K, E = self.cfg.model.top_k, self.cfg.model.experts
        o = self.o
        ph2 = b_phase == 2
        done_a = at_acc["valid"] & (at_acc["side"].j == E - 1)
        pre_done = at_acc["pre_valid"] & (at_acc["pre_j"] == E - 1)
        out_load = b_busy & ph2 & (~o.valid | o.ready)          # stage B's output beat loads
        # next values when stage B does not start a token this cycle
        busy_ns = b_busy & ~out_load
        ph2_ns = ph2 | ((b_phase == 1) & (b_step == K - 1))     # phase 1 is always busy
        hold_ns = ~(ph2_ns & ~(out_load | (o.valid & ~o.ready)))
        # done_a: stage A advances unless it is stalled (done_a & ~b_free), when done_a stays
        # 1; on a start (done_a & b_free) stage B becomes busy in phase 0.
        stall_nx = Mux(done_a, Mux(b_free, pre_done, hold_ns), pre_done & busy_ns & hold_ns)
        ph2_nx = ph2_ns & ~(done_a & b_free)
        target = self.cfg.hw.fanout_target
        stall = replicas(m, stall_nx, len(advance), target, "adv_stall")
        ph2_r = replicas(m, ph2_nx, len(advance), target, "adv_ph2")
        for k, a in enumerate(advance.values()):
            m.d.comb += a.eq(~stall[k] | (ph2_r[k] & o.ready))
