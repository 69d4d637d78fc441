"""ChunkReader: a 2-D strided read DMA that delivers fixed-size chunks as a stream.

A command reads ``outer x inner`` chunks of ``U = chunk_bytes`` bytes (a whole number of bus
beats), chunk ``(o, i)`` at ``addr + o * outer_stride + i * inner_stride``, in the order o outer,
i inner. That one shape covers every external read of the top level: a GEMM weight tile column
from the K-major image (outer = column tiles, stride ``C`` weights; inner = K rows, stride one
weight row), contiguous vectors (bias, gamma, beta: inner stride ``U``), a descriptor, an image.

When a row of chunks is contiguous (``inner_stride == U``) it is fetched as long bursts (up to
``cfg.hw.mem_max_burst`` beats); otherwise each chunk is one burst of ``U / W`` beats.

Credits: a burst is requested only when the data FIFO (``depth`` beats) has room for it on top
of everything already requested, so ``rd_data`` is always ready. That is what makes sharing
one in-order memory port between several readers deadlock-free (a reader whose consumer stalls
never blocks the read data of another reader; see :mod:`hw.mem.read_arbiter`).

Ports: ``cmd`` (In stream, :attr:`cmd_layout`), ``bus`` (Out MemReadSignature), ``o`` (Out
stream of ``8 * U`` bits, bus beat 0 in the low bits), ``busy`` (requests still to issue).
Latency: the first request goes out the cycle after the command; its data arrives after the
memory's latency (DRAM model: ``mem_latency``) and passes the FIFO in 1 cycle (+ ``U / W - 1``
to assemble a multi-beat chunk). Throughput: one request per cycle; one chunk per ``U / W``
cycles at the output (bounded by the memory's outstanding-burst limit for strided reads).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.common import accept_job
from hw.mem.bus import MemReadSignature, beat_bytes
from hw.mem.credit_fifo import CreditFIFO

__all__ = ["ChunkReader", "chunk_cmd_layout"]


def chunk_cmd_layout(cfg: Config, count_bits: int = 16) -> data.StructLayout:
    a = cfg.hw.mem_addr_bits
    return data.StructLayout({"addr": unsigned(a), "outer": unsigned(count_bits),
                              "outer_stride": unsigned(a), "inner": unsigned(count_bits),
                              "inner_stride": unsigned(a)})


class ChunkReader(wiring.Component):
    """2-D strided read DMA delivering ``chunk_bytes``-byte chunks (see the module docstring).

    Parameters
    ----------
    cfg : Config
        Bus width, ``mem_max_burst``, ``mem_latency``, address width.
    chunk_bytes : int
        ``U``, a whole number of bus beats.
    depth : int, optional
        Data FIFO depth in beats (default: enough for the memory latency at full bandwidth).
    count_bits : int
        Width of the ``outer`` / ``inner`` counts of a command.

    Ports
    -----
    cmd : In stream, :attr:`cmd_layout`
        ``addr``, ``outer``, ``outer_stride``, ``inner``, ``inner_stride``; taken while idle.
    cmd_contig : In(1), with ``contig_port``
        ``inner_stride == chunk_bytes`` for the command offered (the producer's register).
    bus : Out :func:`~hw.mem.bus.MemReadSignature`
        Burst reads; ``rd_data`` is always ready.
    o : Out stream of ``8 * U`` bits
        Chunks in (outer, inner) order, bus beat 0 in the low bits.
    busy : Out(1)
        Requests still to issue.

    Latency: first request the cycle after the command; data through the FIFO in 1 cycle
    (+ ``U / W - 1`` to assemble a chunk). Throughput: one chunk per ``U / W`` cycles.
    """

    def __init__(self, cfg: Config, chunk_bytes: int, depth: int | None = None,
                 count_bits: int = 16, contig_port: bool = False):
        W = beat_bytes(cfg)
        if chunk_bytes % W:
            raise ValueError(f"ChunkReader: chunk of {chunk_bytes} bytes is not a whole number "
                             f"of {W}-byte beats")
        self.cfg, self.U, self.W = cfg, chunk_bytes, W
        self.beats_per_chunk = chunk_bytes // W
        B = cfg.hw.mem_max_burst
        # Enough credit to cover the memory latency at full bandwidth, and at least one burst.
        want = max(2 * self.beats_per_chunk, B, cfg.hw.mem_latency + 2 * B)
        self.depth = depth or 1 << (want - 1).bit_length()
        if self.depth < max(self.beats_per_chunk, min(B, self.beats_per_chunk)):
            raise ValueError("ChunkReader: FIFO smaller than one chunk")
        self.burst_cap = min(B, self.depth)      # a burst never needs more than the whole FIFO
        self.cmd_layout = chunk_cmd_layout(cfg, count_bits)
        # contig_port: the producer tells "inner_stride == chunk_bytes" with the command, from
        # a register of its own (the compare of a variable stride ran into the first burst's
        # length, its credit sum and span_rest: ULX3S h7 seed 3, 14.4 ns in the GEMM weight
        # reader)
        self.contig_port = bool(contig_port)
        super().__init__({
            "cmd": In(stream.Signature(self.cmd_layout)),
            **({"cmd_contig": In(1)} if self.contig_port else {}),
            "bus": Out(MemReadSignature(cfg)),
            "o": Out(stream.Signature(unsigned(8 * chunk_bytes))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, W, U = self.cfg, self.W, self.U
        B = cfg.hw.mem_max_burst
        bpc = self.beats_per_chunk
        D = self.depth
        abits = cfg.hw.mem_addr_bits
        cur_cmd = Signal(self.cmd_layout)
        contiguous = Signal()
        outer_left = Signal.like(cur_cmd.outer)  # rows of chunks still to start
        row_addr = Signal(abits)                 # address of the current row's first chunk
        span_addr = Signal(abits)                # next byte of the current span
        chunk_addr = Signal(abits)               # first byte of the current chunk (strided)
        span_beats = Signal(len(cur_cmd.inner) + bpc.bit_length() + 1)   # beats left in the span
        inner_left = Signal.like(cur_cmd.inner)  # chunks left in the row (strided mode)
        active = Signal()
        m.d.comb += self.busy.eq(active)
        accept = accept_job(m, self.cmd, active)

        # the credits keep it from overflowing: its r_rdy is a register, no w_rdy compare
        m.submodules.q = fifo_q = CreditFIFO(8 * W, D)
        cap = self.burst_cap
        # Registered facts about the state, set with it, so that the request's valid and the
        # enables behind ``sent`` are a compare of two registers away from a flip-flop (the
        # ULX3S logic-depth report had span_beats -> min(span, cap) -> level + owed + burst
        # <= D -> valid -> every register's enable as the design's longest stage).
        burst_len = Signal(range(cap + 1))       # min(span_beats, cap)
        span_long = Signal()                     # span_beats > cap
        inner_more = Signal()                    # inner_left != 0
        chunk_more = Signal()                    # ~contiguous & inner_more
        outer_more = Signal()                    # outer_left != 0
        row_beats = Signal.like(span_beats)      # span of a row's first chunk and whether it
        row_long = Signal()                      # is longer than one burst
        row_long2 = Signal()                     # or than two
        row_inner_more = Signal()                # inner - 1 != 0
        span_long2 = Signal()                    # span_beats > 2 cap
        # span_beats - cap (what is left after this burst, when span_long), a register set
        # with span_beats: as a subtract it ran, through the burst-length mux, into the
        # credit sum's carry chain (ULX3S routed 11.2 ns into the LOAD reader's free_after)
        span_rest = Signal.like(span_beats)
        nb = cap.bit_length() + 1                # bits of a burst length and of a credit sum

        def set_span(beats, long, long2):
            """The next span: its beats, its first burst, 'longer than one / two bursts'."""
            return [span_beats.eq(beats), burst_len.eq(Mux(long, cap, beats[:nb])),
                    span_long.eq(long), span_long2.eq(long2),
                    span_rest.eq((beats - cap)[:len(span_rest)])]

        # The command's first span (a row of chunks, or one chunk) and its compares, as
        # compares of the command's ``inner`` with constants (inner * bpc > x iff
        # inner > x // bpc), and burst_len after the edge, both when a command is taken and
        # when a burst is sent: the credit register ``free_after`` is loaded with them, and
        # as a product, compares and subtracts in series they were 11-12.3 ns routed.
        p = self.cmd.payload
        contig = self.cmd_contig if self.contig_port else p.inner_stride == U
        first = Mux(contig, p.inner * bpc, bpc)
        first_long = Mux(contig, p.inner > cap // bpc, bpc > cap)
        first_long2 = Mux(contig, p.inner > 2 * cap // bpc, bpc > 2 * cap)
        # burst_len's next value as a tree of candidates picked by registers, applied to a
        # function ``f`` of it: the credit sums subtract each candidate, then pick (the tree
        # of compares and muxes, then the subtract, in series ran into free_after: ULX3S
        # routed 10.5-10.95 ns)
        def bl_on_accept(f):
            return Mux(first_long, f(cap), f(first[:nb]))

        def bl_on_sent(f):
            return Mux(span_long, Mux(span_long2, f(cap), f(span_rest[:nb])),
                       Mux(chunk_more, f(min(bpc, cap)), Mux(row_long, f(cap),
                                                             f(row_beats[:nb]))))
        sent = self._credits(m, fifo_q, active, span_addr, burst_len, accept, bl_on_accept,
                             bl_on_sent)

        with m.If(accept):
            m.d.sync += [cur_cmd.eq(p), contiguous.eq(contig),
                         active.eq((p.outer != 0) & (p.inner != 0)),
                         outer_left.eq(p.outer - 1), outer_more.eq(p.outer != 1),
                         row_addr.eq(p.addr), span_addr.eq(p.addr), chunk_addr.eq(p.addr),
                         set_span(first, first_long, first_long2), row_beats.eq(first),
                         row_long.eq(first_long), row_long2.eq(first_long2),
                         inner_left.eq(p.inner - 1), inner_more.eq(p.inner != 1),
                         chunk_more.eq(~contig & (p.inner != 1)),
                         row_inner_more.eq(p.inner != 1)]
        with m.Elif(sent):
            # Each next address is one add of two registers (the ULX3S build's critical path
            # was span_addr + burst_len * W - U + inner_stride behind the burst-length mux).
            with m.If(span_long):
                # a span longer than a burst goes on in bursts of cap beats
                m.d.sync += [span_addr.eq(span_addr + cap * W),
                             set_span(span_rest, span_long2, span_beats > 3 * cap)]
            # the span is fully requested: next chunk of the row, or the next row (no bubble)
            with m.Elif(chunk_more):
                nxt = chunk_addr + cur_cmd.inner_stride
                m.d.sync += [inner_left.eq(inner_left - 1), inner_more.eq(inner_left != 1),
                             chunk_more.eq(inner_left != 1),
                             set_span(Const(bpc, len(span_beats)), bpc > cap, bpc > 2 * cap),
                             span_addr.eq(nxt), chunk_addr.eq(nxt)]
            with m.Elif(outer_more):
                nxt = row_addr + cur_cmd.outer_stride
                m.d.sync += [outer_left.eq(outer_left - 1), outer_more.eq(outer_left != 1),
                             row_addr.eq(nxt), span_addr.eq(nxt), chunk_addr.eq(nxt),
                             set_span(row_beats, row_long, row_long2),
                             inner_left.eq(cur_cmd.inner - 1), inner_more.eq(row_inner_more),
                             chunk_more.eq(~contiguous & row_inner_more)]
            with m.Else():
                m.d.sync += active.eq(0)

        self._gearbox(m, fifo_q)
        return m

    def _credits(self, m, fifo_q, active, span_addr, burst_len, accept, bl_on_accept,
                 bl_on_sent):
        """Burst requests: beats requested or buffered never exceed the FIFO depth.

        ``free`` = depth - FIFO level - beats requested but not arrived, kept as one register
        (requests take from it, reads out of the FIFO give back). ``free_after`` = ``free -
        burst_len``, kept beside it (updated with ``burst_len``'s next value, ``bl_on_accept``
        / ``bl_on_sent``: each maps a function of a burst length over the candidates), so the
        request's valid is its sign bit: the compare of ``free`` and
        ``burst_len`` in front of the request's handshake and every state register's enable
        was the chunk readers' recurring routed group (GEMM bias reader, 12.3 ns on the ULX3S)."""
        D = self.depth
        rd = self.bus.rd_data
        m.d.comb += [fifo_q.w_en.eq(rd.valid), fifo_q.w_data.eq(rd.payload.data), rd.ready.eq(1)]
        free = Signal(range(D + 1), init=D)
        free_after = Signal(range(-D, D + 2), init=D)
        req = self.bus.rd_req
        m.d.comb += [req.valid.eq(active & ~free_after[-1]),
                     req.payload.addr.eq(span_addr), req.payload.beats.eq(burst_len)]
        sent = req.valid & req.ready
        # Both sums come from registers and the late handshakes (the arbiter's grant, the
        # consumer's ready) only pick one: free - (sent ? burst_len : 0) + pop in series was a
        # mux and two carry chains behind the grant (the ULX3S build's 10.9 ns routed group).
        pop = fifo_q.r_en & fifo_q.r_rdy
        after_req = Signal(range(-D, D + 2))
        after_req_pop = Signal(range(-D, D + 2))
        free_pop = Signal(range(D + 2))
        m.d.comb += [after_req.eq(free - burst_len), after_req_pop.eq(free - burst_len + 1),
                     free_pop.eq(free + 1)]
        m.d.sync += free.eq(Mux(sent, Mux(pop, after_req_pop, after_req),
                                Mux(pop, free_pop, free)))
        # the same shape: sums of registers, the late handshakes only select
        shape = free_after.shape()
        on_accept = [Signal(shape, name=f"fa_accept{k}") for k in (0, 1)]
        on_sent = [Signal(shape, name=f"fa_sent{k}") for k in (0, 1)]
        for k in (0, 1):
            m.d.comb += [on_accept[k].eq(bl_on_accept(lambda bl, k=k: free + k - bl)),
                         on_sent[k].eq(bl_on_sent(lambda bl, k=k: free_after + k - bl))]
        m.d.sync += free_after.eq(Mux(accept, Mux(pop, on_accept[1], on_accept[0]),
                                      Mux(sent, Mux(pop, on_sent[1], on_sent[0]),
                                          Mux(pop, free_after + 1, free_after))))
        return sent

    def _gearbox(self, m, fifo_q):
        """``beats_per_chunk`` FIFO beats -> one output chunk."""
        W, bpc = self.W, self.beats_per_chunk
        if bpc == 1:
            m.d.comb += [self.o.valid.eq(fifo_q.r_rdy), self.o.payload.eq(fifo_q.r_data),
                         fifo_q.r_en.eq(self.o.ready)]
            return
        parts = [Signal(8 * W, name=f"part{i}") for i in range(bpc - 1)]
        # one-hot: slot[i] (i < bpc - 1) the part the next FIFO beat fills; slot[bpc - 1] all
        # parts full (the chunk is offered with the FIFO's head). A count compared with each i
        # sat in front of the parts' ~400 enables (11.4 ns routed, the GEMM bias reader).
        slot = Signal(bpc, init=1)
        full = slot[bpc - 1]
        m.d.comb += [self.o.valid.eq(full & fifo_q.r_rdy),
                     self.o.payload.eq(Cat(*parts, fifo_q.r_data)),
                     fifo_q.r_en.eq(Mux(full, self.o.ready, 1))]
        for i in range(bpc - 1):
            with m.If(fifo_q.r_rdy & slot[i]):
                m.d.sync += parts[i].eq(fifo_q.r_data)
        with m.If(fifo_q.r_rdy & ~full):
            m.d.sync += slot.eq(slot << 1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += slot.eq(1)
