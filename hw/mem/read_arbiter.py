"""Read arbiter: several burst-read masters share the one external-memory read port.

Requests are granted round-robin among the masters with a valid request; the grant is held
while the memory has not accepted it (so the request seen by the memory obeys the stream rules).
Each accepted burst pushes its master (one-hot) into a tag queue; the memory returns bursts complete
and in request order, so read data beats go to the master at the head of the tag queue, which is
popped on each burst's ``last`` beat. The head is a register (``owner``) in front of a FIFO of the
rest, so each master's read-data valid is a register bit and the memory's data valid.

Masters must take their read data without waiting on anything else (the top level's
:class:`~hw.top.chunk_reader.ChunkReader` reserves FIFO room before requesting; the expert
prefetcher writes its data straight into its buffer). Otherwise one stalled master would block
every other master's data behind it (head-of-line blocking) and could deadlock the frame.

Ports: ``masters`` (``In(MemReadSignature)`` array), ``mem`` (``Out(MemReadSignature)``).
Latency: a request passes combinationally (0 cycles); data passes combinationally, or with
``data_reg`` = 1 through one register stage (1 cycle): each master's read-data valid a register
of its own and the beat one register shared by all, so the owner decode and the memory's
data valid no longer run into every master's FIFO write (ULX3S routed 11-11.3 ns, the
chunk readers' LUT-RAM FIFOs and the prefetcher's receive registers). With ``data_reg`` the
masters must always be ready (``mem``'s read data is taken whenever it belongs to a burst
in flight): every master of the top level is (the chunk readers reserve FIFO room before
requesting, the prefetcher writes straight into its buffer). ``data_reg`` = 2 adds a second
stage (2 cycles), a copy of the beat register per master.
The tag queue (head register + FIFO) holds ``tag_depth`` bursts (default
``cfg.hw.mem_max_outstanding + 2``); requests wait while it is full.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.mem.bus import MemReadSignature

__all__ = ["ReadArbiter"]


class ReadArbiter(wiring.Component):
    def __init__(self, cfg: Config, n: int, tag_depth: int | None = None,
                 data_reg: int = 0):
        self.cfg, self.n = cfg, n
        self.data_reg = int(data_reg)
        if self.data_reg not in (0, 1, 2):
            raise ValueError(f"ReadArbiter: data_reg is a number of register stages, 0, 1 or 2; "
                             f"got {data_reg!r}")
        self.tag_depth = tag_depth or cfg.hw.mem_max_outstanding + 2
        super().__init__({
            "masters": In(MemReadSignature(cfg)).array(n),
            "mem": Out(MemReadSignature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.n
        ms = self.masters
        # The tags are one-hot (the grant itself): a master's read-data valid is then one bit
        # of the FIFO's head, not a compare of a binary index (on the ULX3S estimate that
        # compare steered every master's read data into its FIFO's LUT-RAM write: 727
        # endpoints, 12.8 ns).
        # The oldest outstanding burst's tag sits in a register (``owner``), the others in the
        # FIFO behind it: a master's read-data valid is then a register bit, not the FIFO's
        # LUT-RAM read (on the ULX3S build the tag FIFO's read -> every master's read-data
        # valid -> their FIFOs and the prefetcher's receive logic was routed at 12-14.7 ns).
        # A tag pushed while ``owner`` is free (or being freed with the FIFO empty) goes straight
        # into it, so the data path stays 0-cycle.
        m.submodules.tags = tags = fifo.SyncFIFO(width=n, depth=self.tag_depth - 1)
        owner = Signal(n)
        owner_v = Signal()
        # ---- request side: round robin, grant held until accepted ----
        # One-hot throughout: the pick is an AND of each master's valid with the others' not-
        # valid bits, and the granted request an AND-OR of the payloads (a binary index and an
        # n-way payload mux made this the ULX3S build's deepest stage, 14 levels).
        # The priority order is kept as registered masks, ``ahead[i][j]``: master j comes
        # before master i. Round robin starts after the last granted master; a request seen
        # and not accepted starts the order at its own master, which then wins (its valid
        # stays up), so holding the grant needs no mux of its own. Before, the pick read the
        # last grant (one-hot) and a held grant behind it: 7-8 LUT levels from the masters'
        # valid bits through the payload mux into the DRAM model's request register (ULX3S
        # routed 11.8 ns, 15 endpoints).
        valid = [ms[i].rd_req.valid for i in range(n)]

        def masks(start):
            """ahead[i][j] for an order that starts at master ``start`` (an int)."""
            return [[j != i and (j - start) % n < (i - start) % n for j in range(n)]
                    for i in range(n)]
        ahead = [[Signal(init=int(masks(1 % n)[i][j]), name=f"ahead_{i}_{j}") if j != i else None
                  for j in range(n)] for i in range(n)]
        g = Signal(n)
        for i in range(n):
            blocked = Cat(*(valid[j] & ahead[i][j] for j in range(n) if j != i))
            m.d.comb += g[i].eq(valid[i] & ~blocked.any() if n > 1 else valid[i])
        req = self.mem.rd_req
        payload = 0
        for i in range(n):
            payload = payload | Mux(g[i], ms[i].rd_req.payload.as_value(), 0)
        # fewer than tag_depth bursts outstanding (~owner_v | tags.w_rdy) as a register, kept
        # with a count of them: as the FIFO's level compare it was 6 LUT levels from the level
        # into the DRAM model's request register (ULX3S routed 10.9-11.3 ns)
        room = Signal(init=1)
        tracked = Signal(range(self.tag_depth + 1))
        m.d.comb += [req.valid.eq(Cat(*valid).any() & room), req.payload.eq(payload)]
        for i in range(n):
            m.d.comb += ms[i].rd_req.ready.eq(g[i] & req.ready & room)
        go = req.valid & req.ready

        def load(start_of):
            """Load the masks of the order starting at ``start_of(k)`` for grant bit k."""
            for i in range(n):
                for j in range(n):
                    if j != i:
                        m.d.sync += ahead[i][j].eq(Cat(*(g[k] for k in range(n)
                                                         if masks(start_of(k))[i][j])).any())
        with m.If(go):
            load(lambda k: (k + 1) % n)
        with m.Elif(req.valid):
            load(lambda k: k)

        # ---- data side: route to the master of the oldest outstanding burst (``owner``) ----
        rd = self.mem.rd_data
        if self.data_reg:
            beat = Signal.like(rd.payload, name="beat")
            m.d.sync += beat.eq(rd.payload)
            for i in range(n):
                valid = Signal(name=f"valid{i}")
                m.d.sync += valid.eq(rd.valid & owner_v & owner[i])
                mine = beat
                if self.data_reg == 2:
                    # a second stage, a copy of the beat per master: from one register the
                    # beat reached every reader's FIFO write port over the die (12.2 ns routed
                    # into the LayerNorm readers' LUT RAM on the ULX3S)
                    mine, v2 = Signal.like(rd.payload, name=f"beat{i}"), Signal(name=f"valid{i}_2")
                    m.d.sync += [mine.eq(beat), v2.eq(valid)]
                    valid = v2
                m.d.comb += [ms[i].rd_data.valid.eq(valid), ms[i].rd_data.payload.eq(mine)]
            m.d.comb += rd.ready.eq(owner_v)
        else:
            for i in range(n):
                m.d.comb += [ms[i].rd_data.valid.eq(rd.valid & owner_v & owner[i]),
                             ms[i].rd_data.payload.eq(rd.payload)]
            ready = Cat(*(owner[i] & ms[i].rd_data.ready for i in range(n))).any()
            m.d.comb += rd.ready.eq(owner_v & ready)
        done = rd.valid & rd.ready & rd.payload.last        # owner's burst ends
        tracked_next = tracked + go - done
        m.d.sync += [tracked.eq(tracked_next), room.eq(tracked_next < self.tag_depth)]
        # owner's next value: the FIFO's head, else the tag pushed now, else empty
        to_owner = go & (~owner_v | done) & ~tags.r_rdy
        m.d.comb += [tags.w_en.eq(go & ~to_owner), tags.w_data.eq(g),
                     tags.r_en.eq(done & tags.r_rdy)]
        with m.If(done & tags.r_rdy):
            m.d.sync += owner.eq(tags.r_data)
        with m.Elif(to_owner):
            m.d.sync += [owner.eq(g), owner_v.eq(1)]
        with m.Elif(done):
            m.d.sync += owner_v.eq(0)
        return m
