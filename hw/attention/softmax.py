"""Softmax: streaming single-pass exp2 softmax of score rows, bit-exact with ``softmax_rows``.

``Softmax(cfg, lanes=1, max_len=None)`` computes ``sim.golden.softmax.softmax_rows(cfg, t)`` for
``lanes`` rows at once (lane k of every beat belongs to row k of the current group of rows; all
rows of a group have the same length, marked by ``last`` on their final beat).

Algorithm (one exponential per score, no second pass over the scores):

1. *Accumulate* (one beat per cycle): per lane, the integer running max ``M`` becomes
   ``max(M, ceil(t))``; ``d`` is its growth; ``e = exp2(t - M)`` (``hw.attention.exp2.Exp2``,
   3 cycles);
   the running sum ``l = rshift_round(l, d) + e`` (a shift, no multiplier). ``(e, M)`` of every
   score goes into a circular buffer.
2. *Reciprocal* once per row: ``r = round(2^R / l)`` (``hw.attention.reciprocal.Reciprocal``,
   sequential).
3. *Normalize* (one beat per cycle): read ``(e_j, M_j)`` back, ``e_j`` is corrected by the max
   growth after it, ``rshift_round(e_j, M_final - M_j)``, multiplied by ``r``, rounded by
   ``recip_frac`` bits and saturated to ``cfg.num.exp``.

Rows overlap: row k+1 accumulates while row k is divided and normalized; the buffer holds
``max_len + latency of the divider + 16`` entries so that rows of ``max_len`` stream at one beat
per cycle.

Ports (``amaranth.lib.stream``):

- ``i``: payload ``{"t": ArrayLayout(signed(score.bits), lanes), "last": 1}``
- ``o``: payload ``{"p": ArrayLayout(unsigned(exp.bits), lanes), "last": 1}``; beats come out
  in the input order, ``last`` on the final beat of each row.

Timing: **throughput** one beat per cycle in steady state for rows of 1 .. ``max_len`` beats
(the divider retires enough quotient bits per cycle to finish a row in ``max_len`` cycles;
rows shorter than its ``latency + 1`` are limited to one row per ``latency + 1`` cycles).
**Latency** of a row, from accepting its last input beat to its first output transfer (idle
output): ``Softmax.latency`` = 11 + divider latency cycles (accumulate stages, row FIFO,
divider, 3 normalize stages). Rows longer than ``max_len`` deadlock (the buffer cannot hold
them).

Resources per lane: one Exp2 (a ~11 x 5 multiplier), one divider, one exp.bits x q_bits
multiplier (16 x 18 at the default formats: one DSP), two barrel shifters; buffer of
``depth x lanes x (exp.bits + score.int_bits + 1)`` bits (block RAM).
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.cycles.attention import divider_bits_per_cycle
from sim.fixed import hw_rshift_round, hw_saturate
from hw.attention.exp2 import Exp2, hw_rshift_round_var
from hw.attention.reciprocal import Reciprocal
from hw.common import Loop, count_nested

__all__ = ["Softmax", "softmax_widths", "divider_bits_per_cycle"]


def softmax_widths(cfg: Config, max_len: int) -> dict:
    """Widths shared by the softmax and attention units.

    ``m_bits``: signed integer max ceil(t) in [-2^(ib-1), 2^(ib-1)];
    ``l_bits``: running sum <= max_len * 2^exp.frac (each e <= 1; rounding shifts never grow it).
    """
    n = cfg.num
    return dict(m_bits=n.score.int_bits + 1,
                l_bits=(max_len << n.exp.frac_bits).bit_length())


class Softmax(wiring.Component):
    """Streaming online softmax over rows of scores (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Formats ``cfg.num.score`` (in), ``cfg.num.exp`` (out), ``recip_frac``, exp2 table.
    lanes : int
        Rows processed side by side (one score per lane per cycle).
    max_len : int, optional
        Longest row; default ``cfg.model.tokens``.
    div_bits_per_cycle : int, optional
        Quotient bits per cycle of the reciprocal divider; default: the fewest that let the
        divider (one row per ``latency + 1`` cycles) keep up with rows of ``max_len`` beats.

    Ports
    -----
    i : In(stream({"t": ArrayLayout(signed(score.bits), lanes), "last": 1}))
        Beat j carries score j of each of the ``lanes`` rows of a group; ``last`` on the final
        beat of the rows.
    o : Out(stream({"p": ArrayLayout(unsigned(exp.bits), lanes), "last": 1}))
        The probabilities in the input order, ``last`` on the final beat of each row.

    Attributes
    ----------
    latency : int
        Cycles from accepting a row's last input beat to its first output transfer (idle
        output): 11 + the divider's latency. Throughput one beat per cycle for rows of
        1 .. ``max_len`` beats (shorter than ``divider latency + 1``: one row per
        ``divider latency + 1`` cycles).
    """

    def __init__(self, cfg: Config, lanes: int = 1, max_len: int | None = None,
                 div_bits_per_cycle: int | None = None):
        self.cfg = cfg
        self.lanes = int(lanes)
        self.max_len = int(cfg.model.tokens if max_len is None else max_len)
        if self.lanes < 1 or self.max_len < 1:
            raise ValueError("Softmax: lanes and max_len must be >= 1")
        n = cfg.num
        w = softmax_widths(cfg, self.max_len)
        self.m_bits, self.l_bits = w["m_bits"], w["l_bits"]
        if div_bits_per_cycle is None:
            div_bits_per_cycle = divider_bits_per_cycle(cfg, self.max_len)
        self._div = Reciprocal(cfg, self.l_bits, self.lanes, div_bits_per_cycle)
        self.depth = self.max_len + self._div.latency + 16
        # latency: clock edges from accepting a row's last beat to its first output transfer
        # (o.ready high): F0 1 + Exp2 3 + buffer write / row FIFO push 1 + buffered FIFO 1 +
        # divider accept 1 + divider + load row 1 + issue, read, shift, output register 3.
        self.latency = 1 + Exp2.latency + 1 + 1 + 1 + self._div.latency + 1 + 3
        self.in_layout = data.StructLayout({
            "t": data.ArrayLayout(signed(n.score.bits), self.lanes), "last": 1})
        self.out_layout = data.StructLayout({
            "p": data.ArrayLayout(unsigned(n.exp.bits), self.lanes), "last": 1})
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        L, mb, lb = self.lanes, self.m_bits, self.l_bits

        entry = data.ArrayLayout(data.StructLayout({"e": unsigned(self.cfg.num.exp.bits),
                                                    "m": signed(mb)}), L)
        m.submodules.buf = buf = Memory(shape=entry, depth=self.depth, init=[])
        m.submodules.div = self._div
        row_rec = data.StructLayout({"l": data.ArrayLayout(unsigned(lb), L),
                                     "m": data.ArrayLayout(signed(mb), L),
                                     "len": range(self.max_len + 1)})
        m.submodules.rowq = rowq = SyncFIFOBuffered(width=row_rec.size, depth=2)

        issue = Signal()                          # an entry is read back this cycle
        front = self._accumulate_front(m, rowq)
        self._accumulate_sum(m, front, buf.write_port(), rowq, row_rec, issue)
        div_m, div_len = self._start_reciprocal(m, rowq, row_rec)
        rd = buf.read_port()   # synchronous; en = output pipeline advance
        adv, last_read, cur_r, cur_m = self._issue_reads(m, rd, div_m, div_len, issue)
        self._normalize(m, adv, issue, last_read, rd, cur_r, cur_m)
        return m

    def _accumulate_front(self, m, rowq):
        """Accumulate, F0 .. F3: max, d, x = t - M, then Exp2 (tags travel alongside).

        ``en`` stalls the whole front only when a row ends while the row queue is full.
        """
        cfg, n, L, mb = self.cfg, self.cfg.num, self.lanes, self.m_bits
        fs = n.score.frac_bits
        f = SimpleNamespace(
            en=Signal(name="en_f"), accept=Signal(name="accept"),
            # entries accepted but not yet read back
            used=Signal(range(self.depth + 1), name="used"),
            valid=[Signal(name=f"f{s}_valid") for s in range(4)],
            first=[Signal(name=f"f{s}_first") for s in range(4)],
            last=[Signal(name=f"f{s}_last") for s in range(4)],
            d=[[Signal(range(1 << (mb + 1)), name=f"f{s}_d{k}") for k in range(L)]
               for s in range(4)],
            m=[[Signal(signed(mb), name=f"f{s}_m{k}") for k in range(L)] for s in range(4)],
            exps=[])
        row_start = Signal(init=1)
        run_m = [Signal(signed(mb), name=f"run_m{k}") for k in range(L)]
        m.d.comb += [
            f.en.eq(~(f.valid[3] & f.last[3] & ~rowq.w_rdy)),
            self.i.ready.eq(f.en & (f.used < self.depth)),
            f.accept.eq(self.i.valid & self.i.ready),
        ]
        for k in range(L):
            t = self.i.payload.t[k]
            ceil_t = Signal(signed(mb), name=f"ceil_t{k}")
            m_new = Signal(signed(mb), name=f"m_new{k}")
            m.d.comb += [
                ceil_t.eq(-((-t) >> fs)),
                m_new.eq(Mux(row_start | (ceil_t > run_m[k]), ceil_t, run_m[k])),
            ]
            x0 = Signal(signed(n.score.bits + 1), name=f"x0_{k}")
            exp = Exp2(cfg)
            m.submodules[f"exp{k}"] = exp
            f.exps.append(exp)
            m.d.comb += [exp.x.eq(x0), exp.en.eq(f.en)]
            with m.If(f.en):
                m.d.sync += [
                    x0.eq(t - (m_new << fs)),
                    f.d[0][k].eq(Mux(row_start, 0, m_new - run_m[k])),
                    f.m[0][k].eq(m_new),
                ]
                with m.If(f.accept):
                    m.d.sync += run_m[k].eq(m_new)
        with m.If(f.en):
            m.d.sync += [f.valid[0].eq(f.accept), f.first[0].eq(row_start),
                         f.last[0].eq(self.i.payload.last)]
            # x0 is sampled by Exp2 on the next enabled edge, so the tags trail it by one stage.
            for s in range(1, 4):
                m.d.sync += [f.valid[s].eq(f.valid[s - 1]), f.first[s].eq(f.first[s - 1]),
                             f.last[s].eq(f.last[s - 1])]
                for k in range(L):
                    m.d.sync += [f.d[s][k].eq(f.d[s - 1][k]), f.m[s][k].eq(f.m[s - 1][k])]
            with m.If(f.accept):
                m.d.sync += row_start.eq(self.i.payload.last)
        return f

    def _accumulate_sum(self, m, f, wr, rowq, row_rec, issue):
        """F4: sum update and buffer write (``Exp2.latency`` == 3 enabled edges after x0); a
        row's last entry pushes its record (l, M, length) into the row queue."""
        assert Exp2.latency == 3
        L, lb, depth = self.lanes, self.l_bits, self.depth
        run_l = [Signal(lb, name=f"run_l{k}") for k in range(L)]
        l_new = [Signal(lb, name=f"l_new{k}") for k in range(L)]
        row_len = Signal(range(self.max_len + 1))
        for k in range(L):
            d = f.d[3][k]
            d_cl = Mux(d > lb + 1, lb + 1, d)   # beyond l_bits + 1 the shifted sum is 0
            m.d.comb += l_new[k].eq(Mux(f.first[3], 0, hw_rshift_round_var(run_l[k], d_cl))
                                    + f.exps[k].y)
            m.d.comb += [wr.data[k].e.eq(f.exps[k].y), wr.data[k].m.eq(f.m[3][k])]
        write_addr = Signal(range(depth))
        write = Signal()
        m.d.comb += [write.eq(f.en & f.valid[3]), wr.en.eq(write), wr.addr.eq(write_addr)]
        rec_in = Signal(row_rec)
        for k in range(L):
            m.d.comb += [rec_in.l[k].eq(l_new[k]), rec_in.m[k].eq(f.m[3][k])]
        m.d.comb += [rec_in.len.eq(Mux(f.first[3], 1, row_len + 1)),
                     rowq.w_data.eq(rec_in), rowq.w_en.eq(write & f.last[3])]
        with m.If(write):
            count_nested(m, [Loop(write_addr, last=depth - 1)])
            m.d.sync += row_len.eq(rec_in.len)
            for k in range(L):
                m.d.sync += run_l[k].eq(l_new[k])
        m.d.sync += f.used.eq(f.used + f.accept - issue)

    def _start_reciprocal(self, m, rowq, row_rec):
        """Reciprocal: one division per row record; its M and length wait beside the divider."""
        div, L = self._div, self.lanes
        rec_out = Signal(row_rec)
        m.d.comb += rec_out.eq(rowq.r_data)
        div_m = [Signal(signed(self.m_bits), name=f"div_m{k}") for k in range(L)]   # the row's M
        div_len = Signal(range(self.max_len + 1))
        m.d.comb += [div.i.valid.eq(rowq.r_rdy), rowq.r_en.eq(div.i.ready)]
        for k in range(L):
            m.d.comb += div.i.payload[k].eq(rec_out.l[k])
        with m.If(div.i.valid & div.i.ready):
            m.d.sync += div_len.eq(rec_out.len)
            for k in range(L):
                m.d.sync += div_m[k].eq(rec_out.m[k])
        return div_m, div_len

    def _issue_reads(self, m, rd, div_m, div_len, issue):
        """Normalize, O0: take the next row's (r, M, len) and issue its buffer reads.

        Returns ``(adv, last_read, cur_r, cur_m)``; ``adv`` is the output pipeline's enable.
        """
        div, L = self._div, self.lanes
        adv = Signal()
        m.d.comb += adv.eq(~self.o.valid | self.o.ready)
        have_row = Signal()
        cur_r = [Signal(div.q_bits, name=f"cur_r{k}") for k in range(L)]
        cur_m = [Signal(signed(self.m_bits), name=f"cur_m{k}") for k in range(L)]
        cur_len = Signal(range(self.max_len + 1))
        read_index = Signal(range(self.max_len + 1))
        read_addr = Signal(range(self.depth))
        last_read = Signal()
        m.d.comb += [last_read.eq(read_index == cur_len - 1), issue.eq(adv & have_row),
                     rd.addr.eq(read_addr), rd.en.eq(adv)]
        # Load the next row when idle or while issuing the current row's last entry.
        m.d.comb += div.o.ready.eq(adv & (~have_row | last_read))
        with m.If(div.o.valid & div.o.ready):
            m.d.sync += [have_row.eq(1), read_index.eq(0), cur_len.eq(div_len)]
            for k in range(L):
                m.d.sync += [cur_r[k].eq(div.o.payload[k]), cur_m[k].eq(div_m[k])]
        with m.Elif(issue & last_read):
            m.d.sync += have_row.eq(0)
        with m.If(issue):
            count_nested(m, [Loop(read_addr, last=self.depth - 1)])
            with m.If(~last_read):
                m.d.sync += read_index.eq(read_index + 1)
        return adv, last_read, cur_r, cur_m

    def _normalize(self, m, adv, issue, last_read, rd, cur_r, cur_m):
        """Normalize, O1: buffer data, max correction; O2: times r, round, saturate into ``o``."""
        n, L, mb, eb = self.cfg.num, self.lanes, self.m_bits, self.cfg.num.exp.bits
        q_bits = self._div.q_bits
        o1_valid, o1_last = Signal(), Signal()
        o1_r = [Signal(q_bits, name=f"o1_r{k}") for k in range(L)]
        o1_m = [Signal(signed(mb), name=f"o1_m{k}") for k in range(L)]
        o2_valid, o2_last = Signal(), Signal()
        o2_r = [Signal(q_bits, name=f"o2_r{k}") for k in range(L)]
        o2_e = [Signal(eb, name=f"o2_e{k}") for k in range(L)]
        with m.If(adv):
            m.d.sync += [o1_valid.eq(issue), o1_last.eq(last_read),
                         o2_valid.eq(o1_valid), o2_last.eq(o1_last),
                         self.o.valid.eq(o2_valid), self.o.payload.last.eq(o2_last)]
            for k in range(L):
                sh = Signal(range(1 << (mb + 1)), name=f"o1_sh{k}")
                m.d.comb += sh.eq(o1_m[k] - rd.data[k].m)
                sh_cl = Mux(sh > eb + 1, eb + 1, sh)   # beyond exp.bits + 1: e shifts to 0
                prod = o2_e[k] * o2_r[k]
                m.d.sync += [
                    o1_r[k].eq(cur_r[k]), o1_m[k].eq(cur_m[k]),
                    o2_r[k].eq(o1_r[k]),
                    o2_e[k].eq(hw_rshift_round_var(rd.data[k].e, sh_cl)),
                    self.o.payload.p[k].eq(
                        hw_saturate(hw_rshift_round(prod, n.recip_frac), n.exp)),
                ]
