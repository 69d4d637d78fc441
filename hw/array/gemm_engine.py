"""Tiled GEMM engine: one weight-stationary PE array, an accumulator memory and the fused epilogue.

Computes, per command, ``out = epilogue(x @ w.T + b)`` for x (M x K activations) and w (N x K
weights, PyTorch layout), bit-exact with sim/golden/linear.py (``linear``, ``residual_add``,
``scaled_accumulate``). Any 1 <= M <= max_m, 1 <= K <= max_k, 1 <= N <= max_n works; K and N
need not be multiples of the array size (the last tiles are padded internally).

Loop order (R = cfg.hw.array_rows, C = cfg.hw.array_cols, kt = ceil(K/R), nt = ceil(N/C))::

    for n0 in 0, C, ..:                 # output column tile
        for k0 in 0, R, ..:             # inner-dimension tile: one weight tile per (n0, k0)
            for m in 0 .. M-1:          # one activation beat per cycle, M cycles per tile
                acc[m] (+)= x[m, k0:k0+R] @ W[k0:k0+R, n0:n0+C]
        for m: out[m, n0:n0+C] = epilogue(acc[m])   # fused: runs during the last k tile

Streams (all ``amaranth.lib.stream``; beats in exactly this order, see :func:`gemm_streams`):

- ``cmd`` (:func:`cmd_layout`): m, k, n, bias, gelu, mode. Accepted when idle (``busy`` low).
- ``act``: nt * kt * M beats of R activations, ``x[m, k0:k0+R]`` in the loop order above (the
  feeder re-streams X for every column tile). Lanes at k >= K are ignored (any value).
- ``w``: nt * K beats of C weights, ``W[k, n0:n0+C]`` = ``w[n0:n0+C, k]`` for n0 (outer), k
  (inner): the K-major weight image read row by row. Only real rows are sent; the engine writes
  zero rows for k >= K. Lanes at n >= N are ignored.
- ``bias``: nt beats of C biases (accumulator scale) if ``cmd.bias``, else none.
- ``res``: nt * M beats (row ``x[m, n0:n0+C]`` and score) in RESIDUAL / SCALED mode, else none.
- ``o``: nt * M beats of C activations, out[m, n0:n0+C] for n0 (outer), m (inner); lanes at
  n >= N are 0.

Schedule. The array has two weight banks. A loader writes the next tile's R weight rows (one row
of C weights per cycle, zero rows beyond K) into the idle bank while the current tile computes;
a tile starts when all its rows are loaded, and the loader may start on a bank in the cycle after
the last beat of the tile that used it issued (it then trails that beat down the rows). Tiles
therefore start every P = max(M, R) cycles: with M >= R the array never idles between tiles;
with M < R (small expert batches) the weight stream (R rows per tile) is the bottleneck and the
array is busy M of every R cycles. Partial sums leave the array R + L cycles after their beat, are
added to the accumulator memory (max_m x C words of ``acc_bits``, read-modify-write; the first k
tile overwrites, the last k tile bypasses the memory into the sum FIFO in front of the epilogue)
and the epilogue (:func:`sim.cycles.gemm.epilogue_latency` stages) produces one output row per
cycle.

Cycles from the command handshake to the last output handshake, with every stream always
valid/ready (``sim.cycles.gemm.gemm_cycles``; T = kt * nt tiles)::

    cycles = 2R + (T - 1) * max(M, R) + M + L + 1 + Epilogue.latency

Latency of one output row: R + L (array; L = ``cfg.hw.pe_mult_latency``, the PE multipliers'
registers) + 1 (the sum FIFO: written as the sums leave the array, read the next cycle) +
Epilogue.latency (10, or 5 with ``hw.gelu_site`` "act") cycles from the activation beat of its
last k tile to its ``o`` beat (:attr:`GemmEngine.latency`).
Throughput: R x C MACs per cycle while beats issue (one ``act`` beat per cycle, one ``o`` beat per
cycle in the last k tile). ``mac_active_cycles`` counts the cycles in which a beat entered the
array (R x C MACs each, including padded lanes), ``cycles`` counts the cycles of the command; both
restart at each command and count until the last output beat.

Accumulator bound: |x @ w.T + b| <= K * 2^(a+w-2) + 2^(bias-1) < 2^(acc_bits-1) for every
K <= max_inner_dim, which ``Config`` validates (a + w + ceil(log2 K) + 1 <= acc_bits: 43 <= 48 for
16-bit operands and K = 768). Partial sums over fewer k tiles obey the same bound, so neither the
memory words nor the adders can overflow.

Flow control is credit-based: the array, the metadata beside it and the accumulator
read-modify-write run free (no clock enable). A beat of a row's last k tile enters the array only
with a credit, a word of the sum FIFO (``latency(array) + 2`` deep,
:attr:`GemmEngine.sum_fifo_depth`) reserved for its sums; the credit returns when the
epilogue takes that word. So back-pressure from ``o`` (or a missing ``res`` / ``bias`` beat at
the epilogue) stalls only the epilogue (its own enable) and, once the credits are gone, the
issue of last-k-tile beats; earlier k tiles, whose sums go to the accumulator memory, and the
weight loader go on. A gap on ``act`` inserts a bubble. Streams must
be independent: the engine may need ``act`` beat i + sum_fifo_depth + epilogue latency before it
accepts ``res`` beat i, and weights of the next tiles before the current tile's activations.
The FIFO is deep enough that with ``o`` always ready no beat waits for a credit: the cycles are
those of the enable-stalled engine it replaces.

Command limits: 1 <= m <= max_m, 1 <= k <= max_k, 1 <= n <= max_n (not checked in hardware;
m > max_m would alias accumulator rows).

Timing notes: ``act.payload`` goes straight into row 0's multiplier input registers and the
skew registers (no register of the engine's own), so ``act`` should come from a register or
FIFO output. The issue decision uses the registered ``credit_ok``, never ``o.ready``: the
epilogue's enable (``o`` side) reaches only the epilogue's registers and the FIFO's read side.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.cycles.gemm import epilogue_latency, gemm_tiles, pe_array_latency

from hw.array.epilogue import (Epilogue, EpilogueMode, bias_shape, residual_layout, rounding_half,
                               row_layout)
from hw.array.pe_array import PEArray
from hw.common import Loop, accept_job, count_nested
from hw.fabric.replica import replicas
from hw.mem.credit_fifo import CreditFIFO
from hw.mem.pair_queue import PairQueue

# the widest part of an accumulator lane in one LUT-RAM memory of its own (_accumulate)
ACC_PART_BITS = 24

__all__ = ["GemmEngine", "EpilogueMode", "cmd_layout", "default_limits", "gemm_streams",
           "gemm_output", "gemm_output_beats", "gemm_tiles"]


def default_limits(cfg: Config) -> tuple[int, int, int]:
    """(max_m, max_k, max_n) of every GEMM the model runs on the array (``Config.gemm_max_*``)."""
    return cfg.gemm_max_m, cfg.gemm_max_k, cfg.gemm_max_n


def cmd_layout(cfg: Config, max_m: int, max_k: int, max_n: int) -> data.StructLayout:
    """One GEMM command: sizes (each >= 1) and epilogue mode bits."""
    return data.StructLayout({
        "m": range(max_m + 1),
        "k": range(max_k + 1),
        "n": range(max_n + 1),
        "bias": unsigned(1),
        "gelu": unsigned(1),
        "mode": EpilogueMode,
    })


def gemm_streams(cfg: Config, x, w, b=None, res=None, score=None) -> dict:
    """Input beats of one GEMM in the engine's order (module docstring).

    ``x`` (M, K) activations, ``w`` (N, K) weights (PyTorch layout), ``b`` (N,) or None,
    ``res`` (M, N) rows to add into (RESIDUAL / SCALED) or None, ``score`` (M,) or None.
    Returns int64 arrays: ``act`` (nt*kt*M, R), ``w`` (nt*K, C), ``bias`` (nt or 0, C),
    ``res_x`` (nt*M or 0, C), ``res_score`` (nt*M or 0,). Padded lanes are 0.
    """
    R, C = cfg.hw.array_rows, cfg.hw.array_cols
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    M, K = x.shape
    N = w.shape[0]
    if w.shape != (N, K):
        raise ValueError(f"w must be (N, K) = ({N}, {K}), got {w.shape}")
    kt, nt = gemm_tiles(cfg, K, N)
    xp = np.zeros((M, kt * R), dtype=np.int64)
    xp[:, :K] = x
    wkn = np.zeros((K, nt * C), dtype=np.int64)
    wkn[:, :N] = w.T
    act = np.concatenate([xp[:, k0 * R:(k0 + 1) * R] for _ in range(nt) for k0 in range(kt)])
    wb = np.concatenate([wkn[:, n0 * C:(n0 + 1) * C] for n0 in range(nt)])
    out = {"act": act, "w": wb}
    if b is not None:
        bp = np.zeros(nt * C, dtype=np.int64)
        bp[:N] = np.asarray(b, dtype=np.int64)
        out["bias"] = bp.reshape(nt, C)
    else:
        out["bias"] = np.zeros((0, C), dtype=np.int64)
    if res is not None:
        rp = np.zeros((M, nt * C), dtype=np.int64)
        rp[:, :N] = np.asarray(res, dtype=np.int64)
        out["res_x"] = np.concatenate([rp[:, n0 * C:(n0 + 1) * C] for n0 in range(nt)])
        s = np.zeros(M, dtype=np.int64) if score is None else np.asarray(score, dtype=np.int64)
        out["res_score"] = np.tile(s, nt)
    else:
        out["res_x"] = np.zeros((0, C), dtype=np.int64)
        out["res_score"] = np.zeros(0, dtype=np.int64)
    return out


def gemm_output_beats(cfg: Config, y) -> np.ndarray:
    """The (M, N) result -> output beats (nt*M, C) in engine order, lanes beyond N zero."""
    C = cfg.hw.array_cols
    y = np.asarray(y, dtype=np.int64)
    M, N = y.shape
    nt = math.ceil(N / C)
    yp = np.zeros((M, nt * C), dtype=np.int64)
    yp[:, :N] = y
    return np.concatenate([yp[:, n0 * C:(n0 + 1) * C] for n0 in range(nt)])


def gemm_output(cfg: Config, beats, m: int, n: int) -> np.ndarray:
    """Output beats (nt*M, C) in engine order -> the (M, N) result."""
    C = cfg.hw.array_cols
    nt = math.ceil(n / C)
    beats = np.asarray(beats, dtype=np.int64).reshape(nt, m, C)
    return np.concatenate(list(beats), axis=1)[:, :n]


class GemmEngine(wiring.Component):
    """The tiled GEMM engine (see the module docstring for the schedule).

    Parameters
    ----------
    cfg : Config
        Array size (``hw.array_rows`` R, ``hw.array_cols`` C) and formats.
    max_m, max_k, max_n : int, optional
        The largest sizes a command may carry (default :func:`default_limits`; ``max_m`` sets
        the accumulator memory depth).

    Ports
    -----
    (beat order: module docstring and :func:`gemm_streams`)

    cmd : In(stream(cmd_layout))
        One GEMM; accepted while ``busy`` is low.
    act : In(stream(R activations))
        nt * kt * M beats: column tile n0 (outer), k tile k0, row m (inner).
    w : In(stream(C weights))
        nt * K beats: column tile n0 (outer), k (inner).
    bias : In(stream(C biases))
        nt beats if ``cmd.bias``, else none.
    res : In(stream(residual_layout))
        nt * M beats in RESIDUAL / SCALED mode, else none.
    o : Out(stream(row_layout))
        nt * M beats: column tile n0 (outer), row m (inner).
    busy : Out(1)
        From the command handshake to the last ``o`` beat.
    cycles, mac_active_cycles : Out(cfg.hw.gemm_counter_bits)
        Cycles of the current command / cycles in which a beat entered the array.

    Attributes
    ----------
    latency : int
        R + L + 1 + the epilogue's latency (10, or 5 with ``hw.gelu_site`` "act"; L =
        ``cfg.hw.pe_mult_latency``) cycles from a row's
        last-k-tile ``act`` beat to its ``o`` beat without back-pressure; throughput one
        ``act`` beat per cycle.
    """

    def __init__(self, cfg: Config, max_m: int | None = None, max_k: int | None = None,
                 max_n: int | None = None):
        dm, dk, dn = default_limits(cfg)
        self._cfg = cfg
        self.max_m, self.max_k, self.max_n = max_m or dm, max_k or dk, max_n or dn
        n, h = cfg.num, cfg.hw
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(cfg, self.max_m, self.max_k, self.max_n))),
            "act": In(stream.Signature(data.ArrayLayout(signed(n.act.bits), h.array_rows))),
            "w": In(stream.Signature(data.ArrayLayout(signed(n.weight.bits), h.array_cols))),
            "bias": In(stream.Signature(data.ArrayLayout(signed(n.bias.bits), h.array_cols))),
            "res": In(stream.Signature(residual_layout(cfg))),
            "o": Out(stream.Signature(row_layout(cfg))),
            "busy": Out(1),
            "cycles": Out(h.gemm_counter_bits),
            "mac_active_cycles": Out(h.gemm_counter_bits),
        })

    @property
    def latency(self) -> int:
        """Cycles from the ``act`` beat of a row's last k tile to its ``o`` beat (no stall)."""
        return pe_array_latency(self._cfg) + 1 + epilogue_latency(self._cfg)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        R = cfg.hw.array_rows

        # The array's weight write port registered (R >= 2): the loader's enable, behind the
        # weight FIFO's level, fanned out to every weight register's clock enable (the ULX3S
        # build's routed 13.15 ns, 127 endpoints). A row lands a cycle later; a tile's first
        # beat issues at the earliest in the cycle after its last row's write and reads row r
        # r cycles later, so every row is in time (pe_array docstring): no cycle changes.
        m.submodules.array = array = PEArray(cfg, write_delay=1 if R >= 2 else 0)
        m.submodules.epi = epi = Epilogue(cfg, bias_rounded=True)
        wiring.connect(m, wiring.flipped(self.res), epi.res)
        wiring.connect(m, epi.o, wiring.flipped(self.o))
        # The array and the accumulator stage run free (no clock enable): a last-k-tile beat
        # enters only with a credit, a free word reserved in the sum FIFO in front of the
        # epilogue, so its sums always have somewhere to go. Back-pressure stops at the FIFO.
        m.d.comb += array.en.eq(1)
        c = Signal(cmd_layout(cfg, self.max_m, self.max_k, self.max_n), name="command")
        start = accept_job(m, self.cmd, self.busy)

        # Weight-bank state, kept relative to the issue side so no flag needs a mux by a bank
        # bit: ``banks.cur`` (the issue bank holds a loaded tile), ``banks.other`` (the other
        # bank does), ``banks.load_cur`` (the loader's bank is the issue bank). Registered; the
        # loader raises ``banks.fill`` when it writes a tile's last row, the issue ``banks.done``
        # with a tile's last beat (that bank becomes the other one, free). (Was ``loaded[2]``
        # muxed by issue_bank / load_bank: on the ULX3S estimate's 11.7-12 ns paths into
        # act.ready and the loader.)
        banks = SimpleNamespace(cur=Signal(name="bank_cur_loaded"),
                                other=Signal(name="bank_other_loaded"),
                                load_cur=Signal(name="load_bank_is_cur", init=1),
                                fill=Signal(name="bank_fill"), done=Signal(name="bank_done"))

        restart = []    # registers reloaded when a command starts (emitted last: they win)
        acc_row = data.ArrayLayout(signed(cfg.num.acc_bits), cfg.hw.array_cols)
        # a CreditFIFO (the credits below keep it from overflowing): its r_rdy a register, the
        # epilogue's valid and the credit return start at a flip-flop (the level compare was on
        # the ULX3S builds' 11.5-11.7 ns groups into the epilogue feed)
        m.submodules.sum_fifo = sum_fifo = CreditFIFO(acc_row.size, self.sum_fifo_depth)
        take_credit = Signal()
        credit_ok = self._sum_credits(m, sum_fifo, take_credit)
        self._load_weights(m, array, c, banks, restart)
        issue, beat = self._issue_activations(m, array, c, banks, credit_ok,
                                              take_credit, restart)
        self._accumulate(m, array, c, issue, beat, sum_fifo)
        bias_head, bias_ok = self._bias_queue(m, c, restart)
        self._feed_epilogue(m, epi, c, sum_fifo, bias_head, bias_ok, restart, start)
        self._count_outputs(m, c, issue, restart)

        with m.If(start):
            m.d.sync += [c.eq(self.cmd.payload), self.busy.eq(1),
                         *restart]
        return m

    @property
    def sum_fifo_depth(self) -> int:
        """Words of the sum FIFO: a credit comes back ``latency + 2`` cycles after its beat
        issued (array, accumulator stage, the FIFO read, the counter update), so that many
        keep one last-k-tile beat issuing per cycle while ``o`` is ready."""
        return pe_array_latency(self._cfg) + 2

    def _sum_credits(self, m, sum_fifo, take):
        """Credits for the sum FIFO: its free words not yet promised to a beat in flight.
        ``take``: a last-k-tile beat issues. Returns ``credit_ok``, a register: such a beat
        may issue this cycle (no comparison between it and the issue logic).
        """
        D = self.sum_fifo_depth
        # The count as a thermometer code (``have[i]``: more than i credits), so a step is a
        # one-LUT shift and ``credit_ok`` is ``have[0]``: the add and the compare of a binary
        # count were on the ULX3S estimate's 12.1 ns path (issue_bank -> issue -> credit_ok).
        have = Signal(D, init=(1 << D) - 1)
        back = Signal()
        m.d.comb += back.eq(sum_fifo.r_rdy & sum_fifo.r_en)
        with m.If(take & ~back):
            m.d.sync += have.eq(have >> 1)
        with m.Elif(back & ~take):
            m.d.sync += have.eq(Cat(1, have[:-1]))
        return have[0]

    def _load_weights(self, m, array, c, banks, restart):
        """Weight loader: the next tile's R rows into the idle bank, zero rows beyond K."""
        R, C = self._cfg.hw.array_rows, self._cfg.hw.array_cols
        load_active = Signal()
        load_k0 = Signal(range(self.max_k + R + 1))
        load_n0 = Signal(range(self.max_n + C + 1))
        load_row = Signal(range(R))
        load_bank = Signal()
        # Registered flags, updated with the counters (cycle-neutral): ``load_k0 + load_row < k``
        # (a real row, not a zero row beyond K) and ``load_k0 + R >= k`` (the last k tile). As
        # adds and compares in front of ``load_go`` they were on the ULX3S estimate's 13.7 ns
        # path into the PE weight registers' enables (512 endpoints).
        load_real = Signal()
        load_k_last = Signal()
        # A bank is free from the cycle after its tile's last beat issued (cycle t): that beat
        # reads row r's weights at t + r, and the loader, one row per cycle from row 0, writes
        # row r at t + 1 + r at the earliest, so no row is overwritten early. (Up to session 13
        # a per-bank count ``since[bank] > load_row`` checked this too; with the array
        # free-running it always held, and the compare was on the ULX3S estimate's 12 ns paths
        # load_row -> the PE weight enables.)
        load_free = Mux(banks.load_cur, ~banks.cur, ~banks.other)
        load_go = load_active & load_free & (self.w.valid | ~load_real)
        m.d.comb += [
            self.w.ready.eq(load_active & load_free & load_real),
            array.w_en.eq(load_go),
            array.w_row.eq(load_row),
            array.w_bank.eq(load_bank),
        ]
        for col in range(C):
            m.d.comb += array.w_data[col].eq(Mux(load_real, self.w.payload[col], 0))
        with m.If(load_go):
            count_nested(m, [Loop(load_row, last=R - 1),
                             Loop(load_k0, is_last=load_k_last, step=R),
                             Loop(load_n0, is_last=load_n0 + C >= c.n, step=C, first=None)],
                         done=[load_active.eq(0)])
            with m.If(load_row == R - 1):
                m.d.comb += banks.fill.eq(1)
                m.d.sync += [load_bank.eq(~load_bank),
                             # row 0 of the next k tile (k0 + R < k) or of k0 = 0: real
                             load_real.eq(1),
                             load_k_last.eq(Mux(load_k_last, c.k <= R, load_k0 + 2 * R >= c.k))]
            with m.Else():
                m.d.sync += load_real.eq(load_k0 + load_row + 1 < c.k)
        restart += [load_active.eq(1), load_k0.eq(0), load_n0.eq(0), load_row.eq(0),
                    load_bank.eq(0), load_real.eq(1), load_k_last.eq(self.cmd.payload.k <= R)]

    def _issue_activations(self, m, array, c, banks, credit_ok, take_credit,
                           restart):
        """Activation issue: one ``act`` beat per cycle into a loaded bank; a beat of the last
        k tile also needs a sum FIFO credit (it takes it).

        Returns ``issue`` and the metadata of the issued beat (row m, first / last k tile).
        """
        R, C = self._cfg.hw.array_rows, self._cfg.hw.array_cols
        issue_active = Signal()
        issue_k0 = Signal(range(self.max_k + R + 1))
        issue_n0 = Signal(range(self.max_n + C + 1))
        issue_m = Signal(range(self.max_m + 1))
        issue_bank = Signal()
        # Registered flags, updated with the counters (cycle-neutral): ``issue_k0 + R >= k``
        # (the last k tile) and ``issue_m == m - 1`` (the tile's last beat). As an add and a
        # compare in front of ``can_issue`` the first was on the ULX3S estimate's 13.9 ns path
        # (issue_k0 -> act.ready / credits / counters).
        issue_last = Signal()
        issue_m_last = Signal()
        issue_n_last = Signal()     # issue_n0 + C >= n: the last column tile
        can_issue = issue_active & banks.cur & (credit_ok | ~issue_last)
        issue = Signal()
        m.d.comb += [
            self.act.ready.eq(can_issue),
            issue.eq(can_issue & self.act.valid),
            take_credit.eq(issue & issue_last),
            array.x.eq(self.act.payload),
            array.bank.eq(issue_bank),
        ]
        with m.If(issue):
            count_nested(m, [Loop(issue_m, is_last=issue_m_last),
                             Loop(issue_k0, is_last=issue_last, step=R),
                             Loop(issue_n0, is_last=issue_n_last, step=C, first=None)],
                         done=[issue_active.eq(0)])
            with m.If(issue_m_last):
                # Last beat of this tile: its bank is released; row 0 reads it this cycle.
                m.d.comb += banks.done.eq(1)
                m.d.sync += [issue_bank.eq(~issue_bank),
                             # the next beat is row 0 of the next k tile or of k0 = 0
                             issue_m_last.eq(c.m == 1),
                             issue_last.eq(Mux(issue_last, c.k <= R, issue_k0 + 2 * R >= c.k))]
                with m.If(issue_last):
                    m.d.sync += issue_n_last.eq(issue_n0 + 2 * C >= c.n)
            with m.Else():
                m.d.sync += issue_m_last.eq(issue_m + 2 == c.m)
        # The bank flags. ``done`` needs ``cur`` and ``fill`` needs the loader's bank free, so a
        # fill in a ``done`` cycle goes to the other bank (the next ``cur``).
        fill_cur, fill_other = banks.fill & banks.load_cur, banks.fill & ~banks.load_cur
        with m.If(banks.done):
            m.d.sync += [banks.cur.eq(banks.other | fill_other), banks.other.eq(0)]
        with m.Else():
            m.d.sync += [banks.cur.eq(banks.cur | fill_cur),
                         banks.other.eq(banks.other | fill_other)]
        m.d.sync += banks.load_cur.eq(banks.load_cur ^ banks.fill ^ banks.done)
        p = self.cmd.payload
        restart += [issue_active.eq(1), issue_k0.eq(0), issue_n0.eq(0), issue_m.eq(0),
                    issue_bank.eq(0), banks.cur.eq(0), banks.other.eq(0), banks.load_cur.eq(1),
                    issue_last.eq(p.k <= R), issue_m_last.eq(p.m == 1), issue_n_last.eq(p.n <= C)]
        beat = SimpleNamespace(m=issue_m, first=issue_k0 == 0, last=issue_last)
        return issue, beat

    def _accumulate(self, m, array, c, issue, beat, sum_fifo):
        """Metadata alongside the array, then the accumulator read-modify-write across k tiles;
        the last k tile's sums go to the sum FIFO (a word its beat's credit reserved)."""
        C = self._cfg.hw.array_cols
        acc_bits = self._cfg.num.acc_bits
        meta_layout = data.StructLayout({"valid": 1, "m": range(self.max_m), "first": 1,
                                         "last": 1})
        meta = [Signal(meta_layout, name="meta0")]
        m.d.comb += [meta[0].valid.eq(issue), meta[0].m.eq(beat.m), meta[0].first.eq(beat.first),
                     meta[0].last.eq(beat.last)]
        for i in range(1, array.latency + 1):
            s = Signal(meta_layout, name=f"meta{i}")
            m.d.sync += s.eq(meta[-1])
            meta.append(s)
        at_psum = meta[-1]            # the beat whose sums are on array.psum

        row_layout = data.ArrayLayout(signed(acc_bits), C)
        # The addend of the accumulate add is one register, ``base``, loaded one cycle ahead
        # (while its beat is at meta[-2]) with 0 for the first k tile, else the row's partial
        # sum: the word written in that cycle (``acc_new``, the registered write-through) if
        # it is the same row, else the memory word (asynchronous read, not transparent: the
        # old word). The sum, ``base + psum``, goes straight to the memory and the sum FIFO.
        # Before, the sync read's data register, the write-through mux (its select ``bypass``
        # driving 192 LUTs) and the first-tile mux sat around the 48-bit add: the ULX3S
        # build's routed 12.19 ns (acc_mem WD), 11.94 (sum FIFO WD), 10.94 (``written``).
        # (A transparent read port maps to LUT RAM behind a read-address register whose net to
        # every column's LUT RAM, then the add, was the routed 14.6 ns path of session 13.)
        acc_new = Signal(row_layout)
        base = Signal(row_layout)
        # meta[-2] writes back (``wen`` a cycle later) and meta[-3] is the same row: registered
        # a cycle early (the ``same`` copies) so the select of the write-through is a flip-flop
        assert len(meta) >= 3
        same_row = meta[-2].valid & ~meta[-2].last & (meta[-3].m == meta[-2].m)
        # The memory in parts of at most ACC_PART_BITS of a lane, each with its own kept copies
        # of the read / write address, the write enable and the two selects (each copy the
        # register the one signal was, loaded from the same value): one read address register
        # drove every LUT RAM cell of the whole row (48 per 16 words on the ULX3S), routed
        # 10.3 ns of a 13.5 ns path into ``base``.
        target = self._cfg.hw.fanout_target
        split = -(-acc_bits // ACC_PART_BITS)
        n_parts = C * split
        raddr = replicas(m, meta[-3].m, n_parts, target, "acc_raddr")   # = meta[-2].m
        waddr = replicas(m, meta[-2].m, n_parts, target, "acc_waddr")   # = at_psum.m
        wen = replicas(m, meta[-2].valid & ~meta[-2].last, n_parts, target, "acc_we")
        first = replicas(m, meta[-3].first, n_parts, target, "acc_first")   # = meta[-2].first
        same = replicas(m, same_row, n_parts, target, "acc_same")
        acc_flat, base_flat = acc_new.as_value(), base.as_value()
        for k in range(n_parts):
            col, part = divmod(k, split)
            lo = col * acc_bits + part * acc_bits // split
            hi = col * acc_bits + (part + 1) * acc_bits // split
            mem = m.submodules[f"acc_mem{k}"] = Memory(shape=unsigned(hi - lo),
                                                      depth=self.max_m, init=[])
            wp, rp = mem.write_port(), mem.read_port(domain="comb")
            m.d.comb += [rp.addr.eq(raddr[k]),     # read one cycle ahead into ``base``
                         wp.addr.eq(waddr[k]), wp.data.eq(acc_flat[lo:hi]), wp.en.eq(wen[k])]
            m.d.sync += base_flat[lo:hi].eq(Mux(first[k], 0,
                                                Mux(same[k], acc_flat[lo:hi], rp.data)))
        for col in range(C):
            m.d.comb += acc_new[col].eq(base[col] + array.psum[col])
        m.d.comb += [sum_fifo.w_data.eq(acc_new),
                     sum_fifo.w_en.eq(at_psum.valid & at_psum.last)]

    def _bias_queue(self, m, c, restart):
        """Bias: one beat per column tile into a two-entry queue of registers (a
        :class:`PairQueue`: the same occupancy and cycles as a two-deep ``SyncFIFO``). A
        ``SyncFIFO``'s LUT-RAM read ran through the epilogue's bias add into its sum register:
        the ULX3S build's routed 10.7-11.2 ns group epilogue.py:202 (36 endpoints). Returns (the
        queue's output stream, bias_ok)."""
        cfg, C = self._cfg, self._cfg.hw.array_cols
        # Each lane enters the queue as bias + the requantize's rounding half (the epilogue's
        # ``bias_rounded``): the add is here, in front of the queue's registers, not in the
        # epilogue's requantize stage.
        lanes = data.ArrayLayout(bias_shape(cfg, bias_rounded=True), C)
        # A PairQueue, not a StreamSlice: the slice's payload registers reload when the head
        # is taken, so the epilogue's ready (its pipeline enable, the sum FIFO's level) was
        # the enable of every bias bit (ULX3S routed 10.9-11.4 ns, 37 endpoints); here it
        # moves a read pointer. Same handshakes, cycle for cycle.
        m.submodules.bias_fifo = bias_q = PairQueue(lanes, select_copies=C,
                                                    fanout_target=cfg.hw.fanout_target)
        half = rounding_half(cfg)
        for col in range(C):
            m.d.comb += bias_q.i.payload[col].eq(self.bias.payload[col] + half)
        bias_n0 = Signal(range(self.max_n + C + 1))    # column tile of the next bias beat
        # busy & c.bias & (bias_n0 < c.n) as a register, updated with bias_n0 (cycle-neutral:
        # it is 0 between commands, as every bias beat is taken before the last output row).
        # The compare and the command bits in front of the FIFO's write enable were on the
        # ULX3S build's routed 10.3-10.8 ns paths into the bias FIFO's LUT RAM and pointers.
        bias_take = Signal()
        m.d.comb += [bias_q.i.valid.eq(self.bias.valid & bias_take),
                     self.bias.ready.eq(bias_q.i.ready & bias_take)]
        with m.If(self.bias.valid & self.bias.ready):
            m.d.sync += [bias_n0.eq(bias_n0 + C), bias_take.eq(bias_n0 + C < c.n)]
        restart += [bias_n0.eq(0), bias_take.eq(self.cmd.payload.bias)]     # n >= 1
        return bias_q.o, ~c.bias | bias_q.o.valid

    def _feed_epilogue(self, m, epi, c, sum_fifo, bias_head, bias_ok, restart, start):
        """Epilogue feed: the sum FIFO's head row + bias + lane mask."""
        cfg, C = self._cfg, self._cfg.hw.array_cols
        epi_m = Signal(range(self.max_m + 1))
        epi_n0 = Signal(range(self.max_n + C + 1))
        # Registered with the command / the counter (cycle-neutral): a copy of c.bias for the
        # C x bias-bits zeroing muxes in front of the epilogue's first add (the command bit
        # behind them was on the ULX3S build's routed 10.55 ns path, epilogue sum), and
        # ``epi_m == m - 1`` (a subtract and a compare in front of the bias FIFO's read).
        # The bias copy is kept once per lane: one register on all C x bias-bits muxes still
        # reached the epilogue's sums at 11.8-12.6 ns routed (ULX3S), most of it that net.
        p = self.cmd.payload
        bias_on = replicas(m, p.bias, C, cfg.hw.fanout_target, "bias_on", enable=start)
        epi_m_last = Signal()
        m.d.comb += [
            epi.i.valid.eq(sum_fifo.r_rdy & bias_ok),
            epi.i.payload.acc.eq(sum_fifo.r_data),
            epi.i.payload.gelu.eq(c.gelu),
            epi.i.payload.mode.eq(c.mode),
            sum_fifo.r_en.eq(epi.i.ready & bias_ok),
        ]
        for col in range(C):
            m.d.comb += [
                epi.i.payload.bias[col].eq(Mux(bias_on[col], bias_head.payload[col],
                                               rounding_half(cfg))),
                epi.i.payload.mask[col].eq(epi_n0 + col < c.n),
            ]
        with m.If(epi.i.valid & epi.i.ready):
            count_nested(m, [Loop(epi_m, is_last=epi_m_last),
                             Loop(epi_n0, is_last=epi_n0 + C >= c.n, step=C, first=None)])
            m.d.sync += epi_m_last.eq(Mux(epi_m_last, c.m == 1, epi_m + 2 == c.m))
        m.d.comb += bias_head.ready.eq(epi.i.valid & epi.i.ready & epi_m_last & c.bias)
        restart += [epi_m.eq(0), epi_n0.eq(0), epi_m_last.eq(p.m == 1)]

    def _count_outputs(self, m, c, issue, restart):
        """Output count (the last ``o`` beat ends the command) and the cycle counters."""
        C = self._cfg.hw.array_cols
        out_m = Signal(range(self.max_m + 1))
        out_n0 = Signal(range(self.max_n + C + 1))
        with m.If(self.o.valid & self.o.ready):
            count_nested(m, [Loop(out_m, last=c.m - 1),
                             Loop(out_n0, is_last=out_n0 + C >= c.n, step=C, first=None)],
                         done=[self.busy.eq(0)])
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        # counted one cycle after the issue (from a register: ``issue`` fans out to every
        # issue counter already); the last beat issues long before the command ends, so the
        # count read at the end is the same
        issued = Signal()
        m.d.sync += issued.eq(issue)
        with m.If(issued):
            m.d.sync += self.mac_active_cycles.eq(self.mac_active_cycles + 1)
        restart += [out_m.eq(0), out_n0.eq(0), self.cycles.eq(0), self.mac_active_cycles.eq(0)]
