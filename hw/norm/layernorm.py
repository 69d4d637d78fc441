"""Streaming LayerNorm unit, bit-exact with ``sim.golden.layernorm.layernorm``.

One token row of ``dim`` activations arrives as ``beats = dim / lanes`` beats of ``lanes`` values
on ``x``; the normalized row leaves, in the same order and format, on ``y``. Per row the unit

1. accumulates S1 = sum x and S2 = sum x^2 in one pass while writing the row into a row buffer
   (``lanes`` squarers and two adder trees);
2. computes V = D*S2 - S1^2 + E (E = ``ln_eps_term``) and 1/sqrt(V) = y * 2^-(f + k) with the
   pipelined LUT + Newton :class:`hw.norm.rsqrt.Rsqrt` (the golden ``rsqrt_fixed``);
3. re-reads the row and emits, per value, z = sat_norm(rnd((D*x - S1) * y >> (f + k - z_frac)))
   (a barrel shift: k changes per row), then out = sat_act(rnd((z*gamma + beta << s) >> s))
   (``lanes`` x 2 multipliers). ``rnd`` is round half up, ``sat`` saturation, as in sim/fixed.py.

Row buffer: ``banks`` row slots in one :class:`~amaranth.lib.memory.Memory` (depth banks*beats,
``lanes`` values wide), used as a ring: row t+1 (and t+2) is written while row t is emitted.
``banks=2`` is the classic double buffer; the default 3 also hides the statistics latency, so the
unit sustains one beat per cycle (see Throughput). The extra slot costs no block RAM on FPGAs whose
BRAM is deeper than 2*beats (the memory is as wide as ``lanes`` values either way).

gamma/beta: a parameter memory of ``beats`` entries ({gamma[lanes], beta[lanes]} per entry, the
same lane order as x), loaded through the ``param`` stream: one parameter set is ``beats`` beats,
entry 0 first. The set takes effect for every row accepted after it. A parameter beat is only
accepted while no row is in the row buffer or half written (the output pipeline may still carry
the tail of the last row: it holds that row's gamma/beta in its own registers), and a row is not
started while a set is partly loaded; when both streams are valid on such an idle unit the
parameter set goes first. ``busy`` is high while any row is anywhere in the unit. So the
sequencer presents the set of a LayerNorm instance after the last row of the previous instance:
the load waits for those rows to leave the row buffer (once per instance, not per row). After
reset the memory holds ``init_gamma`` / ``init_beta`` (default gamma = 1, beta = 0).

Latency (empty unit, both streams at full rate): a row's first output beat leaves
``latency = beats - 1 + latency_stats + latency_emit = beats + 20`` cycles after its first input
beat was accepted (28 for dim 32 / 4 lanes, 32 for dim 192 / 16 lanes): ``latency_stats`` = 13
(S1: registered x, lane sum, accumulate; S2 one stage behind it: registered x, squares, adder tree,
accumulate; V in three stages: S1^2's partial products, their sum with D*S2, V;
``Rsqrt.latency`` = 6, publish) from the last
input beat to the statistics, ``latency_emit`` = 8 from a row-buffer read to the output register
(the row buffer and parameter reads end in output registers, x*y and z*gamma in the
multipliers' output registers; the variable shift of the normalized value and its rounding +
saturation are two stages, and each lane has its own copy of the row's shift amount:
``hw.fabric.replica``).

Throughput: one beat (``lanes`` values) per cycle on each side while a row slot is free. A slot is
held from a row's first input beat to its last read, so in steady state a row takes
``max(beats, (2*beats + latency_stats - 1) / banks)`` cycles on average: ``beats`` (the stream
rate) for banks = 3 whenever beats >= 12 (dim 192 with <= 16 lanes), 9.3 for dim 32 / 4 lanes;
banks = 2 gives ``beats + 6``. ``sim/cycles/layernorm.py`` has the exact per-row recurrence (the
tests check it cycle for cycle). Back-pressure on ``y`` stalls the output pipeline as a whole (one
global enable; the row-buffer read port is enabled with it so a stalled read keeps its data);
``y.valid`` never depends on ``y.ready``, and ``x.ready`` does not depend on ``y.ready``.

Resources per lane: three multipliers of at most 18 x 18 bits (x^2, x*y, z*gamma; one MULT18X18D
or DSP48E2 each), the product D*(x*y) - S1*y uses shifts and adds. Per unit: S1^2 and S1*y (24 x 24
and 24 x 15 bits for dim 192), the two Newton-step multipliers (<= 17 bits each), the row buffer
(banks * dim activations) and the gamma/beta memory (dim x (gamma + beta) bits).
docs/layernorm.md has synthesis figures.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config
from sim.fixed import hw_add_rshift_round, hw_saturate
from sim.golden.layernorm import ln_eps_term

from hw.common import Loop, count_nested, mul_const, tree_sum
from hw.fabric.bram import RegisteredReadPort
from hw.fabric.multiplier import MULT18_WIDTH, Multiplier
from hw.fabric.replica import replicas
from hw.norm.rsqrt import Rsqrt

__all__ = ["LayerNorm", "row_layout", "param_layout"]


# Row slots of the row buffer: one filling, one being normalized, one spare so a new row's
# beats never wait for the previous row's last read.
DEFAULT_ROW_SLOTS = 3


def row_layout(cfg: Config, lanes: int) -> data.ArrayLayout:
    """Payload of ``x`` and ``y``: ``lanes`` activations."""
    return data.ArrayLayout(signed(cfg.num.act.bits), lanes)


def param_layout(cfg: Config, lanes: int) -> data.StructLayout:
    """Payload of ``param``: ``lanes`` gamma (ln_gamma format) and beta (act format) values."""
    return data.StructLayout({"gamma": data.ArrayLayout(signed(cfg.num.ln_gamma.bits), lanes),
                              "beta": data.ArrayLayout(signed(cfg.num.act.bits), lanes)})


def _halves(s1):
    """``(hi, lo, split)`` with ``s1 = hi * 2^split + lo`` (``lo`` unsigned, ``split`` bits): a
    product of ``s1`` as partial products that each fit one MULT18X18D operand."""
    split = min(MULT18_WIDTH - 1, len(s1) - 1)
    return s1[split:].as_signed(), s1[:split], split


def _round_saturate(sh, fmt):
    """``hw_saturate((sh + 1) >> 1, fmt)`` for a signed ``sh`` and a signed ``fmt``: the same
    integer.

    The overflow tests look at ``sh`` itself (r = (sh + 1) >> 1 is above the range iff
    sh >= 2^bits - 1, below it iff sh <= -2^bits - 2: OR / AND trees over its bits) beside a
    ``bits + 1``-bit increment for the value in range. Incrementing all of ``sh`` and then
    comparing the sum was a carry chain as wide as ``sh`` (~45 bits) in front of the compare:
    the ULX3S estimate's 11.4 ns LayerNorm stage.
    """
    w, bits = len(sh), fmt.bits
    if w < bits + 2 or not fmt.signed:
        return hw_saturate((sh + 1) >> 1, fmt)
    sign = sh[w - 1]
    low_ones = sh[:bits].all()
    over = ~sign & (sh[bits:w - 1].any() | low_ones)
    under = sign & ~(sh[bits + 1:w - 1].all() & (sh[bits] | low_ones))
    in_range = (sh[:bits + 1] + 1)[1:bits + 1].as_signed()
    return Mux(over, (1 << (bits - 1)) - 1, Mux(under, -(1 << (bits - 1)), in_range))


class LayerNorm(wiring.Component):
    """Streaming LayerNorm over rows of ``cfg.model.dim`` activations (see module docstring).

    Parameters
    ----------
    cfg : Config
        Sizes (``model.dim``) and formats (``act``, ``ln_gamma``, ``ln_norm``, ``rsqrt_*``).
    lanes : int, optional
        Values per beat (default ``cfg.hw.array_rows``; must divide dim).
    banks : int
        Row slots of the row buffer (>= 2; 3 sustains one beat per cycle).
    init_gamma, init_beta : sequence of int, optional
        dim integers each: the parameter memory after reset (default gamma = 1, beta = 0).

    Ports
    -----
    x : In(stream(row_layout))
        A row is ``beats = dim / lanes`` beats, lanes ``[b*lanes, (b+1)*lanes)`` in beat b.
    param : In(stream(param_layout))
        One parameter set is ``beats`` beats ({gamma[lanes], beta[lanes]}), entry 0 first.
    y : Out(stream(row_layout))
        The normalized rows, same beat order as ``x``.
    busy : Out(1)
        A row is anywhere in the unit.

    Attributes
    ----------
    latency : int
        Cycles from accepting a row's first beat to its first output beat (full-rate streams):
        ``beats - 1 + latency_stats + latency_emit``.
    latency_stats : int
        Cycles from the acceptance of a row's last beat to the cycle in which its statistics
        (S1, y, k) are visible to the emitter: 3 (registered x, lane sum, accumulate) + 3 (V) +
        ``Rsqrt.latency`` + 1 (``sim.cycles.layernorm.LATENCY_STATS`` must equal it).
    latency_emit : int
        Cycles from issuing a row-buffer read to that beat being valid on ``y`` (no
        back-pressure): memory, its output register, x*y, centre, shift, round + saturate z,
        z*gamma, output
        (``sim.cycles.layernorm.LATENCY_EMIT`` must equal it).

    Throughput one beat per cycle on each side while a row slot is free (module docstring).
    """

    latency_stats = 3 + 3 + Rsqrt.latency + 1
    latency_emit = 8

    def __init__(self, cfg: Config, *, lanes: int | None = None, banks: int = DEFAULT_ROW_SLOTS,
                 init_gamma=None, init_beta=None):
        self._cfg = cfg
        d = cfg.model.dim
        n = cfg.num
        self.lanes = cfg.hw.array_rows if lanes is None else int(lanes)
        self.banks = int(banks)
        one = 1 << n.ln_gamma.frac_bits
        self._init_gamma = [one] * d if init_gamma is None else [int(g) for g in init_gamma]
        self._init_beta = [0] * d if init_beta is None else [int(b) for b in init_beta]
        for bad, msg in [
                (self.lanes < 1 or d % self.lanes, f"dim {d} is not a multiple of lanes {lanes}"),
                (self.banks < 2, f"needs at least 2 row slots, got banks={banks}"),
                (n.ln_norm.frac_bits + n.ln_gamma.frac_bits < n.act.frac_bits,
                 "z * gamma has fewer fraction bits than the activation format (the golden "
                 "model would shift beta left by a negative amount)"),
                (len(self._init_gamma) != d or len(self._init_beta) != d,
                 f"init_gamma / init_beta need {d} values each")]:
            if bad:
                self._MustUse__silence = True   # no "created but never used" warning as well
                raise ValueError(f"LayerNorm: {msg}")
        self.beats = d // self.lanes

        # Bounds of the row statistics (every width below derives from the config).
        a = n.act.bits
        xmag = 1 << (a - 1)                       # largest |x| (the most negative activation)
        self.s1_shape = signed((d * xmag).bit_length() + 1)
        self.s2_shape = unsigned((d * xmag * xmag).bit_length())
        self.v_bits = (d * d * xmag * xmag + ln_eps_term(cfg)).bit_length()
        bank_shape = unsigned(max(1, (self.banks - 1).bit_length()))
        self.rsqrt = Rsqrt(cfg, self.v_bits, tag_shape=bank_shape)

        super().__init__({
            "x": In(stream.Signature(row_layout(cfg, self.lanes))),
            "param": In(stream.Signature(param_layout(cfg, self.lanes))),
            "y": Out(stream.Signature(row_layout(cfg, self.lanes))),
            "busy": Out(1),
        })

    @property
    def latency(self) -> int:
        """Cycles from accepting a row's first beat to its first output beat (full-rate streams)."""
        return self.beats - 1 + self.latency_stats + self.latency_emit

    def elaborate(self, platform):
        m = Module()
        cfg, lanes, beats, banks = self._cfg, self.lanes, self.beats, self.banks
        depth = banks * beats

        m.submodules.rsqrt = rsqrt = self.rsqrt
        m.submodules.rowbuf = rowbuf = Memory(shape=row_layout(cfg, lanes), depth=depth, init=[])
        init = [{"gamma": self._init_gamma[i * lanes:(i + 1) * lanes],
                 "beta": self._init_beta[i * lanes:(i + 1) * lanes]} for i in range(beats)]
        parmem = Memory(shape=param_layout(cfg, lanes), depth=beats, init=init)
        m.submodules.parmem = parmem

        # Row slots: occupied from a row's first input beat until its last read; the statistics
        # of slot b (S1, y, k) are valid while stats_ok[b].
        slots = SimpleNamespace(
            occupied=[Signal(name=f"occupied{b}") for b in range(banks)],
            stats_ok=[Signal(name=f"stats_ok{b}") for b in range(banks)],
            s1=[Signal(self.s1_shape, name=f"s1_{b}") for b in range(banks)],
            y=[Signal(rsqrt.y_shape, name=f"y_{b}") for b in range(banks)],
            k=[Signal(rsqrt.k_shape, name=f"k_{b}") for b in range(banks)])
        write_beat = Signal(range(beats))

        # "idle": no row in the row buffer and none half-written. The emitter frees a slot in the
        # cycle it issues the slot's last read, so a parameter write after that cannot reach a
        # row still in flight (the output pipeline carries gamma/beta in its own registers).
        # "wfree": the slot being written is free and no parameter set is half loaded. Both are
        # registers loaded with their next value (:meth:`_ready_flags`), so x.ready is one gate
        # from flip-flops: as compares of the counters and slot flags they were three LUT levels
        # in front of x.ready -> the row-buffer write enables (the ULX3S estimate's 11.8 ns).
        idle = Signal(init=1)
        wfree = Signal(init=1)

        param_in = self._load_params(m, parmem.write_port(), idle)
        row_in = self._write_rows(m, rowbuf.write_port(), slots, idle, wfree, write_beat)
        sums = self._row_sums(m, row_in)
        self._row_stats(m, sums, slots)
        # Both reads end in an output register (at E1R, enabled with the pipeline): the row
        # buffer's clock-to-data (a DP16KD without its register: ~5.8 ns on -6) straight into
        # the per-lane x*y multipliers was a 12.3-12.8 ns ULX3S group.
        row_rd = m.submodules.row_read = RegisteredReadPort(rowbuf)
        par_rd = m.submodules.param_read = RegisteredReadPort(parmem)
        adv, issue, read_bank, row_out = self._read_rows(m, row_rd, par_rd, slots)
        self._ready_flags(m, slots, idle, wfree, param_in, row_in, row_out)
        stage_valid = self._emit(m, adv, issue, read_bank, row_rd, par_rd, slots, row_out)

        m.d.comb += self.busy.eq(~idle | Cat(*stage_valid).any() | self.y.valid)
        return m

    def _load_params(self, m, par_wr, idle):
        """Parameter load: ``beats`` beats into the gamma/beta memory, only while idle."""
        param_beat = Signal(range(self.beats))
        param_accept = Signal()
        m.d.comb += [self.param.ready.eq(idle),
                     param_accept.eq(self.param.valid & self.param.ready),
                     par_wr.addr.eq(param_beat), par_wr.data.eq(self.param.payload),
                     par_wr.en.eq(param_accept)]
        with m.If(param_accept):
            count_nested(m, [Loop(param_beat, last=self.beats - 1)])
        return SimpleNamespace(accept=param_accept, beat=param_beat)

    def _write_rows(self, m, row_wr, slots, idle, wfree, write_beat):
        """Input: write the row slot; a row's last beat marks its slot occupied."""
        beats, banks = self.beats, self.banks
        write_bank = Signal(range(banks))
        write_addr = Signal(range(banks * beats))
        x_accept = Signal()
        last_in = write_beat == beats - 1
        m.d.comb += [
            # a row waits for a free slot, for a half-loaded parameter set (both in wfree), and
            # for a parameter set offered to an idle unit (parameters go first).
            self.x.ready.eq(wfree & ~(idle & self.param.valid)),
            x_accept.eq(self.x.valid & self.x.ready),
            row_wr.addr.eq(write_addr), row_wr.data.eq(self.x.payload), row_wr.en.eq(x_accept),
        ]
        with m.If(x_accept):
            count_nested(m, [Loop(write_addr, last=banks * beats - 1)])
            count_nested(m, [Loop(write_beat, last=beats - 1), Loop(write_bank, last=banks - 1)])
        for b in range(banks):
            with m.If(x_accept & last_in & (write_bank == b)):
                m.d.sync += slots.occupied[b].eq(1)
        return SimpleNamespace(accept=x_accept, first=write_beat == 0, last=last_in,
                               bank=write_bank, beat=write_beat)

    def _ready_flags(self, m, slots, idle, wfree, param_in, row_in, row_out):
        """Load ``idle`` and ``wfree`` with what they will be next cycle (the counter and slot
        updates of :meth:`_load_params`, :meth:`_write_rows` and :meth:`_read_rows`), written so
        that the row input's accept is one gate from each register: the terms that do not
        depend on it are formed beside it."""
        beats, banks = self.beats, self.banks
        # a slot is free next cycle if it is free now or its last read is issued now (a row's
        # last beat never lands in a slot being freed: that slot is still occupied)
        free_next = [~slots.occupied[b] | (row_out.last & (row_out.bank == b))
                     for b in range(banks)]
        bank_after = Mux(row_in.bank == banks - 1, 0, row_in.bank + 1)
        pbeat0_next = Mux(param_in.accept, param_in.beat == beats - 1, param_in.beat == 0)
        m.d.sync += [
            # an accepted beat leaves a row half written or fills a slot: not idle
            idle.eq(~row_in.accept & (row_in.beat == 0) & Cat(*free_next).all()),
            # a row's last beat moves the writer on to the next slot
            wfree.eq(Mux(row_in.accept & row_in.last, Array(free_next)[bank_after],
                         Array(free_next)[row_in.bank]) & pbeat0_next)]

    def _row_sums(self, m, row_in):
        """One-pass S1 = sum x and S2 = sum x^2 over a row (stages A, B, C; S2 one stage later).

        The squares are formed from registered x (a multiplier with its input and output
        registers: inside the MULT18X18D with dsp_target "ecp5"): squaring the input beat
        straight from the stream (the feeder's FIFO read) was the ULX3S routed 12.56 ns group
        layernorm.py:315 (97 endpoints). So S2 runs one stage behind S1: its row total is ready
        one cycle after S1's (``s2`` / ``done2``), when the statistics take D*S2 (V1) anyway.
        """
        lanes, act_bits = self.lanes, self._cfg.num.act.bits
        # stage A: x registered for the lane sum; the squares' operands enter the multipliers'
        # input registers. The lane sum straight from the input beat (the feeder's FIFO read,
        # then the adder tree) was the ULX3S routed 12.3 ns group layernorm.py:331; it now runs
        # in stage B, where S1 used to wait a cycle anyway (same latency).
        xs = [self.x.payload[lane] for lane in range(lanes)]
        a_valid, a_first, a_last = Signal(), Signal(), Signal()
        a_bank = Signal.like(row_in.bank)
        a_xs = [Signal.like(x, name=f"a_x{lane}") for lane, x in enumerate(xs)]
        m.d.sync += [a_valid.eq(row_in.accept), a_first.eq(row_in.first), a_last.eq(row_in.last),
                     a_bank.eq(row_in.bank), *(r.eq(x) for r, x in zip(a_xs, xs))]
        # stage A2: the squares in the multipliers' output registers
        a_sq = [self._product(m, f"a_sq{lane}", xs[lane], xs[lane], input_reg=True,
                              output_reg=True)[:2 * act_bits - 1]
                for lane in range(lanes)]
        # stage B: the lane sum of x; B2: adder tree of the squares
        b_valid, b_first, b_last = Signal(), Signal(), Signal()
        b_bank = Signal.like(row_in.bank)
        b_sum1 = Signal(self.s1_shape)
        m.d.sync += [b_valid.eq(a_valid), b_first.eq(a_first), b_last.eq(a_last), b_bank.eq(a_bank),
                     b_sum1.eq(tree_sum(a_xs))]
        b2_valid, b2_first = Signal(), Signal()
        b2_sum2 = Signal(self.s2_shape)
        m.d.sync += [b2_valid.eq(b_valid), b2_first.eq(b_first), b2_sum2.eq(tree_sum(a_sq))]
        # stage C: accumulate over the row (a row's first beat restarts the sums); S2 in C2
        acc1 = Signal(self.s1_shape)
        acc2 = Signal(self.s2_shape)
        c_done = Signal()
        c_bank = Signal.like(row_in.bank)
        with m.If(b_valid):
            m.d.sync += acc1.eq(Mux(b_first, 0, acc1) + b_sum1)
        with m.If(b2_valid):
            m.d.sync += acc2.eq(Mux(b2_first, 0, acc2) + b2_sum2)
        m.d.sync += [c_done.eq(b_valid & b_last), c_bank.eq(b_bank)]
        return SimpleNamespace(s1=acc1, s2=acc2, done=c_done, bank=c_bank)

    def _product(self, m, name, a, b, *, en=None, **regs):
        """``a * b`` on a :class:`Multiplier` of ``cfg.hw.dsp_target`` named ``name``, with the
        registers ``regs`` (its ``input_reg`` / ``pipeline_reg`` / ``output_reg`` flags) and
        clock enable ``en`` (default always)."""
        a, b = Value.cast(a), Value.cast(b)
        mul = m.submodules[name] = Multiplier(a.shape(), b.shape(),
                                              target=self._cfg.hw.dsp_target, **regs)
        m.d.comb += [mul.a.eq(a), mul.b.eq(b)]
        if en is not None:
            m.d.comb += mul.en.eq(en)
        return mul.p

    def _row_stats(self, m, sums, slots):
        """Per-row statistics: V = D*S2 - S1^2 + E, then rsqrt; published into the row's slot."""
        cfg, rsqrt = self._cfg, self.rsqrt
        d = cfg.model.dim
        # S1^2 in two stages: S1 = hi * 2^split + lo (lo unsigned), the three partial products
        # in multipliers with their output register (in the MULT18X18D with dsp_target "ecp5"),
        # then summed. As one product S1 (26 bits for dim 192) took several MULT18X18D without
        # their registers plus the adders joining them in one cycle: the ULX3S build's critical
        # path (19.2 ns, 12.9 of it routing).
        hi, lo, split = _halves(sums.s1)
        p_hh, p_hl, p_ll = (self._product(m, name, a, b, output_reg=True)
                            for name, a, b in (("s1_sq_hh", hi, hi), ("s1_sq_hl", hi, lo),
                                               ("s1_sq_ll", lo, lo)))
        v0_valid = Signal()
        v0_bank = Signal.like(sums.bank)
        m.d.sync += [v0_valid.eq(sums.done), v0_bank.eq(sums.bank)]
        v1_sq = Signal(unsigned(2 * self.s1_shape.width - 1))
        # S2's row total is in its accumulator one cycle after S1's (see _row_sums): D*S2 is
        # taken from it here, in V1, as it was taken in V0 from the accumulator before
        v1_ds2 = Signal(mul_const(sums.s2, d).shape())
        v1_valid = Signal()
        v1_bank = Signal.like(sums.bank)
        m.d.sync += [v1_sq.eq((p_hh << (2 * split)) + (p_hl << (split + 1)) + p_ll),
                     v1_ds2.eq(mul_const(sums.s2, d)), v1_valid.eq(v0_valid),
                     v1_bank.eq(v0_bank)]
        for b in range(self.banks):
            with m.If(sums.done & (sums.bank == b)):
                m.d.sync += slots.s1[b].eq(sums.s1)
        v2 = Signal(unsigned(self.v_bits))
        v2_valid = Signal()
        v2_bank = Signal.like(sums.bank)
        # Cauchy-Schwarz: D*S2 >= S1^2, and E >= 1, so V lies in [1, 2^v_bits): the slice is exact.
        m.d.sync += [v2.eq((v1_ds2 - v1_sq + ln_eps_term(cfg))[:self.v_bits]),
                     v2_valid.eq(v1_valid), v2_bank.eq(v1_bank)]
        m.d.comb += [rsqrt.i.valid.eq(v2_valid), rsqrt.i.payload.v.eq(v2),
                     rsqrt.i.payload.tag.eq(v2_bank)]
        for b in range(self.banks):
            with m.If(rsqrt.o.valid & (rsqrt.o.payload.tag == b)):
                m.d.sync += [slots.y[b].eq(rsqrt.o.payload.y), slots.k[b].eq(rsqrt.o.payload.k),
                             slots.stats_ok[b].eq(1)]
        # the values the slots' S1 and y registers take on the next edge (for look-ahead copies)
        slots.s1_next = [Mux(sums.done & (sums.bank == b), sums.s1, slots.s1[b])
                         for b in range(self.banks)]
        slots.y_next = [Mux(rsqrt.o.valid & (rsqrt.o.payload.tag == b), rsqrt.o.payload.y,
                            slots.y[b]) for b in range(self.banks)]

    def _read_rows(self, m, row_rd, par_rd, slots):
        """Re-read rows whose statistics are ready; one global stall enable ``adv``.

        The row's last read frees its slot. Returns ``(adv, issue, read_bank, row_out)``
        (``row_out``: that last read and its slot).
        """
        beats, banks = self.beats, self.banks
        adv = Signal()
        read_bank = Signal(range(banks))
        read_beat = Signal(range(beats))
        read_addr = Signal(range(banks * beats))
        issue = Signal()
        last_out = read_beat == beats - 1
        m.d.comb += [adv.eq(~self.y.valid | self.y.ready),
                     issue.eq(adv & Array(slots.stats_ok)[read_bank]),
                     # reads are enabled with the pipeline so a stalled read keeps its data
                     row_rd.addr.eq(read_addr), row_rd.en.eq(adv),
                     par_rd.addr.eq(read_beat), par_rd.en.eq(adv)]
        with m.If(issue):
            count_nested(m, [Loop(read_addr, last=banks * beats - 1)])
            count_nested(m, [Loop(read_beat, last=beats - 1), Loop(read_bank, last=banks - 1)])
        for b in range(banks):
            with m.If(issue & last_out & (read_bank == b)):
                m.d.sync += [slots.occupied[b].eq(0), slots.stats_ok[b].eq(0)]
        # the bank after read_bank, a register moved with it: as read_bank + 1 with a wrap it
        # selected the look-ahead registers' next slot values behind 5 LUT levels (ULX3S routed
        # 11.3-12.4 ns into pre_s1 / pre_y)
        bank_after = Signal(range(banks), init=1 % banks)
        with m.If(issue & last_out):
            m.d.sync += bank_after.eq(Mux(bank_after == banks - 1, 0, bank_after + 1))
        return adv, issue, read_bank, SimpleNamespace(last=issue & last_out, bank=read_bank,
                                                      bank_after=bank_after)

    def _shift_pre(self) -> int:
        """Left pre-shift of p that makes the shift amount j = f + k - z_frac + pre >= 0."""
        n = self._cfg.num
        return max(0, n.ln_norm.frac_bits - n.rsqrt_frac)

    def _emit(self, m, adv, issue, read_bank, row_rd, par_rd, slots, row_out):
        """Normalize the re-read beats: E1 .. E3 (centre and scale by y), E4 .. output.

        Returns the valid bits of E1 .. E6.
        """
        e3 = self._centre_and_scale(m, adv, issue, read_bank, row_rd, par_rd, slots, row_out)
        return e3.valids + self._shift_and_affine(m, adv, e3)

    def _centre_and_scale(self, m, adv, issue, read_bank, row_rd, par_rd, slots, row_out):
        """E1 .. E3: p = (D*x - S1) * y per lane, with the row's shift amount j and gamma/beta."""
        cfg, n, rsqrt = self._cfg, self._cfg.num, self.rsqrt
        d, lanes = cfg.model.dim, self.lanes
        # k -> shift amount j = f + k - z_frac (+ pre, which makes it non-negative for any formats)
        j_off = n.rsqrt_frac - n.ln_norm.frac_bits + self._shift_pre()
        # E1: the row's constants, alongside the memory read in flight. (D*x - S1) * y is
        # computed as D*(x*y) - S1*y: the per-lane multiplier is then act x y (16 x 16 bits, one
        # MULT18X18D) instead of (D*x - S1) x y (25 x 16 for dim 192, two), and S1*y is one
        # product per unit. Same integer, so still bit-exact.
        # S1*y: S1 = hi * 2^split + lo (lo unsigned), two multipliers whose output registers take
        # the products of the row's S1 and y at E1, summed in E2. As one product of the muxed
        # slot registers in E1 (S1 wider than 18 bits: MULT18X18Ds without registers plus the
        # adder joining them behind the 3:1 mux) it was the ULX3S build's routed critical path
        # (15.1 ns); with the multipliers' input registers at E1 the product and the sum in E2
        # were the routed 12.17 ns group (layernorm.py:459). The operands now come from
        # look-ahead registers pre_s1 / pre_y, equal to the slot registers of ``read_bank`` in
        # every cycle (loaded with the next slot values of the next read bank), so the products
        # are registered at E1 and E2 is one add.
        e1_valid = Signal()
        e1_y = Signal(rsqrt.y_shape)
        e1_j = Signal(range(rsqrt.k_max + j_off + 1))
        row_y = Array(slots.y)[read_bank]
        with m.If(adv):
            m.d.sync += [e1_valid.eq(issue), e1_y.eq(row_y),
                         e1_j.eq(Array(slots.k)[read_bank] + j_off)]
        pre_s1 = Signal(self.s1_shape, name="pre_s1")
        pre_y = Signal(rsqrt.y_shape, name="pre_y")
        # both banks' values muxed from registers, the row's last issue (late: the unit's
        # enable) only picks one: as the select of the slot mux it was 11.4-11.9 ns routed
        # into these registers (the multipliers' operands)
        for reg, vals in ((pre_s1, slots.s1_next), (pre_y, slots.y_next)):
            m.d.sync += reg.eq(Mux(row_out.last, Array(vals)[row_out.bank_after],
                                   Array(vals)[row_out.bank]))
        s1_hi, s1_lo, split = _halves(pre_s1)
        s1y_hi = self._product(m, "s1y_hi", s1_hi, pre_y, input_reg=True, output_reg=True,
                               en=adv)
        s1y_lo = self._product(m, "s1y_lo", s1_lo, pre_y, input_reg=True, output_reg=True,
                               en=adv)
        # E1R: the read data in the ports' output registers; the row's constants follow, and
        # each lane gets its own copy of y (a multiplier operand of every lane)
        e1r_valid = Signal()
        e1r_j = Signal.like(e1_j)
        e1r_y = replicas(m, e1_y, lanes, cfg.hw.fanout_target, "e1r_y", enable=adv)
        with m.If(adv):
            m.d.sync += [e1r_valid.eq(e1_valid), e1r_j.eq(e1_j)]
        # E2: x * y per lane, in the multipliers' output registers; S1*y from the two partial
        # products
        xr = row_rd.data
        e2_xy = [self._product(m, f"xy{lane}", xr[lane], e1r_y[lane], output_reg=True, en=adv)
                 for lane in range(lanes)]
        e2_valid = Signal()
        e2_s1y = Signal((Const(0, self.s1_shape) * Const(0, rsqrt.y_shape)).shape())
        e2_j = Signal.like(e1_j)
        e2_par = Signal(param_layout(cfg, lanes))
        with m.If(adv):
            m.d.sync += [e2_valid.eq(e1r_valid), e2_s1y.eq((s1y_hi << split) + s1y_lo),
                         e2_j.eq(e1r_j), e2_par.eq(par_rd.data)]
        # E3: p = (D*x - S1) * y = D*(x*y) - S1*y (shifts and adds; no division by D anywhere)
        p_expr = [mul_const(e2_xy[lane], d) - e2_s1y for lane in range(lanes)]
        e3_valid = Signal()
        e3_p = [Signal(p_expr[0].shape(), name=f"e3_p{lane}") for lane in range(lanes)]
        # one copy of the shift amount per lane: one register drove all lanes' barrel shifters
        # (446 loads, 6.6 ns of the ULX3S build's 18.2 ns worst path)
        e3_j = replicas(m, e2_j, lanes, cfg.hw.fanout_target, "e3_j", enable=adv)
        e3_par = Signal(param_layout(cfg, lanes))
        with m.If(adv):
            m.d.sync += [e3_valid.eq(e2_valid), e3_par.eq(e2_par)]
            m.d.sync += [e3_p[lane].eq(p_expr[lane]) for lane in range(lanes)]
        return SimpleNamespace(valids=[e1_valid, e1r_valid, e2_valid, e3_valid], valid=e3_valid,
                               p=e3_p, j=e3_j, par=e3_par)

    def _shift_and_affine(self, m, adv, e3):
        """E4 .. E6 and the output register: z = sat(rnd(p >> j)) (shift in E4, round and
        saturate in E5), out = sat(rnd(z*gamma + beta))."""
        n, lanes = self._cfg.num, self.lanes
        zg_frac = n.ln_norm.frac_bits + n.ln_gamma.frac_bits
        pre = self._shift_pre()
        e3_valid, e3_p, e3_j, e3_par = e3.valid, e3.p, e3.j, e3.par
        # E4, E5: z = sat(rnd(p >> (j - pre))). Round half up by a variable amount as
        # ((p << (pre + 1)) >> j) + 1) >> 1 = floor((p + 2^(n-1)) / 2^n), n = j - pre, and p << -n
        # for n <= 0: one barrel shifter (E4) and an increment (E5), no variable "half" constant.
        sh_expr = [(e3_p[lane] << (pre + 1)) >> e3_j[lane] for lane in range(lanes)]
        e4_valid = Signal()
        e4_sh = [Signal(sh_expr[0].shape(), name=f"e4_sh{lane}") for lane in range(lanes)]
        e4_par = Signal(param_layout(self._cfg, lanes))
        with m.If(adv):
            m.d.sync += [e4_valid.eq(e3_valid), e4_par.eq(e3_par)]
            m.d.sync += [e4_sh[lane].eq(sh_expr[lane]) for lane in range(lanes)]
        e5_valid = Signal()
        e5_z = [Signal(signed(n.ln_norm.bits), name=f"e5_z{lane}") for lane in range(lanes)]
        e5_par = Signal(param_layout(self._cfg, lanes))
        with m.If(adv):
            m.d.sync += [e5_valid.eq(e4_valid), e5_par.eq(e4_par)]
            m.d.sync += [e5_z[lane].eq(_round_saturate(e4_sh[lane], n.ln_norm))
                         for lane in range(lanes)]
        # E6: z * gamma, in the multipliers' output registers (an inferred product between
        # fabric registers was a 12.3-12.8 ns ULX3S group: the block's combinational path
        # plus routing on both sides)
        e6_zg = [self._product(m, f"zg{lane}", e5_z[lane], e5_par.gamma[lane], output_reg=True,
                               en=adv) for lane in range(lanes)]
        e6_valid = Signal()
        e6_beta = Signal(data.ArrayLayout(signed(n.act.bits), lanes))
        with m.If(adv):
            m.d.sync += [e6_valid.eq(e5_valid), e6_beta.eq(e5_par.beta)]
        # output register: + beta (aligned to z*gamma), round half up, saturate to act
        with m.If(adv):
            m.d.sync += self.y.valid.eq(e6_valid)
            # beta * 2^s + the rounding half is a concatenation (s = zg_frac - act frac, the
            # same shift): one carry chain instead of the beta add and the rounding add in
            # series (ULX3S routed 11.9 ns from the z*gamma product registers)
            m.d.sync += [self.y.payload[lane].eq(hw_saturate(hw_add_rshift_round(
                e6_beta[lane], e6_zg[lane], zg_frac - n.act.frac_bits), n.act))
                for lane in range(lanes)]
        return [e4_valid, e5_valid, e6_valid]
