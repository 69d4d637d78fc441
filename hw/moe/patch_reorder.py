"""Patch reorder unit: per-expert token queues of one frame and the list of chosen experts.

``PatchReorder(cfg)`` consumes the router's per-token routing beats
(:func:`hw.moe.router.routing_layout`, tokens in ascending order, ``last`` on the frame's final
token) and builds, for every expert, the queue of (token, weight) pairs that chose it. It then
emits the ordered list of experts that have at least one token (ascending index), and afterwards
serves any queue on request, as often as asked (the GEMM engine streams an expert's tokens once
per weight tile). This is exactly
:func:`sim.golden.router.expert_queues`: experts ascending, only non-empty ones, tokens ascending
with their router probabilities. So each chosen expert's weights are fetched once per frame, and
an expert no token chose never appears in the list (and is never fetched).

Storage: the queues are linked lists in one entry memory of ``tokens * top_k`` entries (every
token adds exactly k entries, to k distinct experts) plus a next-pointer memory of the same
depth, and per-expert head / tail / count registers. Entries are appended in arrival order,
i.e. ascending token order, so a queue reads back already sorted. Compared with E fixed regions of
``tokens`` entries this needs E / k times less queue memory (8x for M3ViT: 258 instead of 2064
entries) and no second (counting-sort) pass.

Ports (``amaranth.lib.stream``):

- ``i``: In, routing beats (:func:`hw.moe.router.routing_layout`). The k experts of a token
  must be distinct (the router guarantees it).
- ``experts``: Out, :func:`expert_list_layout` -- ``expert``, ``count`` (tokens in its queue),
  ``last`` (no further non-empty expert), emitted once per frame after the ``last`` token.
- ``q_req``: In, ``{expert}``: request one expert's queue (accepted when no queue read is in
  progress and the frame's queues are complete). Requesting an empty queue emits nothing.
- ``q``: Out, :func:`queue_entry_layout` -- ``token``, ``weight``, ``last`` (the queue's final
  entry), in ascending token order.
- ``overflow``: Out(1), sticky until the next frame starts: more than ``tokens * top_k`` entries
  arrived (extra entries are dropped).

A new frame starts with the first routing beat after the expert list has been emitted; its
first beat clears the previous frame's queues (so they stay readable until then).

Timing:

- routing input: ``top_k`` cycles per beat (one entry write per cycle; the next beat is accepted
  on the cycle of the current beat's last write), i.e. never slower than the router's
  ``max(E, ...)`` cycles per token;
- expert list: the first beat is valid 1 cycle after the last routing beat's last entry is
  written, then one expert per cycle (a priority encoder skips empty experts);
- queue reads: the first entry is valid 1 cycle after the request's accept edge, then one entry
  per cycle (the next-pointer read data addresses the next read directly).

Resources: two (tokens*k)-deep memories (token + weight bits, pointer bits), E x (2 pointers +
count) registers, an E-bit priority encoder.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.common import Loop, count_nested
from hw.moe.router import expert_shape, routing_layout, token_shape

__all__ = ["PatchReorder", "expert_list_layout", "queue_entry_layout", "queue_request_layout"]


def _count_shape(cfg: Config):
    return unsigned(cfg.model.tokens.bit_length())      # 0 .. tokens


def expert_list_layout(cfg: Config) -> data.StructLayout:
    return data.StructLayout({"expert": expert_shape(cfg), "count": _count_shape(cfg),
                              "last": unsigned(1)})


def queue_request_layout(cfg: Config) -> data.StructLayout:
    return data.StructLayout({"expert": expert_shape(cfg)})


def queue_entry_layout(cfg: Config) -> data.StructLayout:
    return data.StructLayout({"token": token_shape(cfg), "weight": unsigned(cfg.num.exp.bits),
                              "last": unsigned(1)})


def reorder_slots(cfg: Config) -> int:
    """Queue entries of :class:`PatchReorder` (every token's k choices)."""
    return cfg.model.tokens * cfg.model.top_k


class PatchReorder(wiring.Component):
    """Per-expert token queues (linked lists) of one frame; see the module docstring.

    Parameters
    ----------
    cfg : Config
        ``cfg.model.experts``, ``top_k``, ``tokens``; the ``exp`` format of the weights.

    Ports
    -----
    i : In stream, :func:`hw.moe.router.routing_layout`
        Routing beats in ascending token order, ``last`` on the frame's final token; one beat
        per ``top_k`` cycles.
    experts : Out stream, :func:`expert_list_layout`
        The non-empty experts in ascending order, one per cycle, once per frame.
    q_req : In stream, :func:`queue_request_layout`
        Request one expert's queue (after the frame's queues are complete).
    q : Out stream, :func:`queue_entry_layout`
        The requested queue in ascending token order, one entry per cycle, the first entry 1
        cycle after the request's accept edge.
    overflow : Out(1)
        Sticky until the next frame: more than ``tokens * top_k`` entries arrived.
    """

    # phases
    _BUILD, _LIST, _DONE = 0, 1, 2

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.slots = reorder_slots(cfg)
        super().__init__({
            "i": In(stream.Signature(routing_layout(cfg))),
            "experts": Out(stream.Signature(expert_list_layout(cfg))),
            "q_req": In(stream.Signature(queue_request_layout(cfg))),
            "q": Out(stream.Signature(queue_entry_layout(cfg))),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        E, S = cfg.model.experts, self.slots
        ptr = unsigned(max(1, (S - 1).bit_length()))
        entry = data.StructLayout({"token": token_shape(cfg), "weight": unsigned(cfg.num.exp.bits)})

        m.submodules.entries = entries = Memory(shape=entry, depth=S, init=[])
        m.submodules.links = links = Memory(shape=ptr, depth=S, init=[])
        head = Array(Signal(ptr, name=f"head{e}") for e in range(E))
        tail = Array(Signal(ptr, name=f"tail{e}") for e in range(E))
        count = Array(Signal(_count_shape(cfg), name=f"count{e}") for e in range(E))
        phase = Signal(range(3), init=self._DONE)
        cur_valid, link_pending = self._build(m, entries.write_port(), links.write_port(), head,
                                              tail, count, phase)
        self._expert_list(m, count, phase)
        self._queue_reads(m, entries.read_port(), links.read_port(), head, count, phase,
                          cur_valid | link_pending)
        return m

    def _build(self, m, e_wr, l_wr, head, tail, count, phase):
        """Build: one queue entry per cycle, ``top_k`` per routing beat."""
        cfg = self.cfg
        E, K, S = cfg.model.experts, cfg.model.top_k, self.slots
        write_ptr = Signal(range(S + 1))
        cur = Signal(routing_layout(cfg))
        cur_valid = Signal()
        cur_choice = Signal(range(K))
        at_last_entry = Signal()
        m.d.comb += at_last_entry.eq(cur_choice == K - 1)
        m.d.comb += self.i.ready.eq((phase != self._LIST)
                                    & (~cur_valid | (at_last_entry & ~cur.last)))
        # The beat's choices shift down one per entry, so the current one is always slot 0:
        # selected by ``cur_choice`` (a K-way mux), the expert ran on into its count, tail and
        # link writes (ULX3S estimate: 716 LUT-RAM write endpoints at 12.3 ns).
        e_cur, w_cur = cur.experts[0], cur.weights[0]
        room = write_ptr < S
        # The link write is registered and lands a cycle later (address, data, enable from
        # flip-flops): the expert's tail through the E-way mux by ``e_cur`` ran into the link
        # LUT RAM's write address pins (ULX3S routed 11.4 ns, 81 endpoints). No read can see the
        # late write missing: a queue request waits for ``link_pending`` (q_req.ready).
        lw_addr = Signal(l_wr.addr.shape(), name="link_wr_addr")
        lw_data = Signal(l_wr.data.shape(), name="link_wr_data")
        lw_en = Signal(name="link_wr_en")
        m.d.comb += [l_wr.addr.eq(lw_addr), l_wr.data.eq(lw_data), l_wr.en.eq(lw_en)]
        m.d.sync += lw_en.eq(0)
        with m.If(cur_valid):
            with m.If(room):
                m.d.comb += [e_wr.addr.eq(write_ptr), e_wr.data.token.eq(cur.token),
                             e_wr.data.weight.eq(w_cur), e_wr.en.eq(1)]
                # Append: link the expert's old tail to the new entry, or start its list.
                with m.If(count[e_cur] != 0):
                    m.d.sync += [lw_addr.eq(tail[e_cur]), lw_data.eq(write_ptr), lw_en.eq(1)]
                with m.Else():
                    m.d.sync += head[e_cur].eq(write_ptr)
                m.d.sync += [tail[e_cur].eq(write_ptr), write_ptr.eq(write_ptr + 1)]
                # each expert's count increments itself, enabled by the decode of e_cur: as
                # count[e_cur] + 1 the E-way read mux sat in front of the increment and the
                # write decode (ULX3S routed 11.63 ns, count1 -> 8 LUTs + a PFUMX -> count)
                for e in range(E):
                    with m.If(e_cur == e):
                        m.d.sync += count[e].eq(count[e] + 1)
            with m.Else():
                m.d.sync += self.overflow.eq(1)
            m.d.sync += [cur.experts[s].eq(cur.experts[s + 1]) for s in range(K - 1)]
            m.d.sync += [cur.weights[s].eq(cur.weights[s + 1]) for s in range(K - 1)]
            count_nested(m, [Loop(cur_choice, is_last=at_last_entry)], done=[cur_valid.eq(0)])
            with m.If(at_last_entry):
                with m.If(cur.last):
                    m.d.sync += phase.eq(self._LIST)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [cur.eq(self.i.payload), cur_valid.eq(1), cur_choice.eq(0)]
            with m.If(phase == self._DONE):
                # First beat of a new frame: forget the previous frame's queues.
                m.d.sync += [phase.eq(self._BUILD), write_ptr.eq(0), self.overflow.eq(0)]
                m.d.sync += [count[e].eq(0) for e in range(E)]
        return cur_valid, lw_en

    def _expert_list(self, m, count, phase):
        """Expert list: lowest pending non-empty expert first, one per cycle."""
        E = self.cfg.model.experts
        listed = Signal(E)
        nonempty = Cat(count[e] != 0 for e in range(E))
        pending = Signal(E)
        m.d.comb += pending.eq(nonempty & ~listed)
        list_expert = Signal(expert_shape(self.cfg))
        for e in reversed(range(E)):          # the last assignment wins: the lowest index
            with m.If(pending[e]):
                m.d.comb += list_expert.eq(e)
        list_onehot = Signal(E)
        m.d.comb += list_onehot.eq(Const(1, E) << list_expert)
        m.d.comb += [
            self.experts.valid.eq((phase == self._LIST) & (pending != 0)),
            self.experts.payload.expert.eq(list_expert),
            self.experts.payload.count.eq(count[list_expert]),
            self.experts.payload.last.eq((pending & ~list_onehot) == 0),
        ]
        with m.If(self.experts.valid & self.experts.ready):
            m.d.sync += listed.eq(listed | list_onehot)
            with m.If(self.experts.payload.last):
                m.d.sync += [phase.eq(self._DONE), listed.eq(0)]
        with m.If((phase == self._LIST) & (nonempty == 0)):
            m.d.sync += phase.eq(self._DONE)      # a frame of zero entries (k = 0 never; safety)

    def _queue_reads(self, m, e_rd, l_rd, head, count, phase, building):
        """Queue reads: the next-pointer read data addresses the next entry read directly.
        ``building``: a routing beat's entries, or its last link write, are still to land."""
        read_active = Signal()
        read_left = Signal(_count_shape(self.cfg))
        q_valid = Signal()
        req_e = self.q_req.payload.expert
        m.d.comb += self.q_req.ready.eq(~read_active & (phase != self._BUILD) & ~building)
        accept = self.q_req.valid & self.q_req.ready
        step = self.q.valid & self.q.ready & (read_left > 1)
        # While no queue is being read, the memories read the requested expert's head every
        # cycle, so the read that a request's accept needs is already under way: with the
        # address and enable selected by ``accept`` (the requester's valid, behind the
        # sequencer's state and the prefetcher) the path ran on through the head mux into the
        # entry LUT RAM (ULX3S routed 13.2 ns, the critical path). Same cycles: the entry at
        # the head is read at the accept edge either way, and q.valid is low while idle.
        m.d.comb += [
            e_rd.addr.eq(Mux(read_active, l_rd.data, head[req_e])),
            l_rd.addr.eq(e_rd.addr),
            e_rd.en.eq(~read_active | step),
            l_rd.en.eq(~read_active | step),
            self.q.valid.eq(q_valid),
            self.q.payload.token.eq(e_rd.data.token),
            self.q.payload.weight.eq(e_rd.data.weight),
            self.q.payload.last.eq(read_left == 1),
        ]
        with m.If(accept & (count[req_e] != 0)):
            m.d.sync += [read_active.eq(1), q_valid.eq(1), read_left.eq(count[req_e])]
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += read_left.eq(read_left - 1)
            with m.If(read_left == 1):
                m.d.sync += [read_active.eq(0), q_valid.eq(0)]
