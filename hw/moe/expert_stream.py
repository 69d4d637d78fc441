"""Expert streamer: grants for expert GEMMs that read their weights from external memory.

The counterpart of :class:`hw.moe.prefetcher.ExpertPrefetcher` for configs with
``cfg.hw.expert_weights == "stream"``: it keeps no weights on chip. For each chosen expert of the
reorder unit's list (ascending, only experts with tokens) it hands the sequencer two grants,
fc1 then fc2, each with the external byte addresses of that matrix's weights and bias, looked up
in the same **address table** as the prefetcher's (``layers x E x 4`` addresses: fc1 weight, fc1
bias, fc2 weight, fc2 bias; :func:`hw.moe.prefetcher.expert_address_table`, writable through
``tbl_*``). The sequencer runs the expert GEMM with those addresses on the GEMM path's own
weight and bias readers (:class:`hw.top.chunk_reader.ChunkReader`), exactly like a dense layer:
weight tiles stream from memory while the array computes, and the only on-chip weight storage
is the engine's two weight banks. Why: the prefetcher's ping/pong buffers hold two whole
matrices (150 of the 208 DP16KD of an ECP5-85F for M3ViT); streaming costs no buffer and reads
the same bytes once per chosen expert, the same traffic as prefetching. With a row-tiled H
(``hw.hidden_rows`` = T < tokens) an expert with more than T tokens is granted (fc1, fc2) once
per chunk of at most T tokens, each grant carrying the chunk's count. What it gives up is the
overlap of the next matrix's load with the current matrix's compute: a streamed expert GEMM
whose weight tiles arrive slower than the array uses them (few tokens, narrow memory) waits for
its weights, where the prefetcher would have waited for its whole load.

Ports:

- ``experts``: In stream (:func:`hw.moe.patch_reorder.expert_list_layout`): the frame's list;
  ``layer`` (In) is sampled with each beat and selects the MoE layer's table rows.
- ``grant``: Out stream (:func:`stream_grant_layout`): ``expert``, ``count``, ``matrix`` (0 fc1,
  1 fc2), ``last`` (final matrix of the frame), ``w_addr``, ``b_addr``.
- ``tbl_addr``, ``tbl_data``, ``tbl_we``: write one address-table entry.
- ``stall_cycles`` (Out counter): cycles the consumer waited for a grant (``grant.ready`` high,
  ``grant.valid`` low) while the list was being worked through, as the prefetcher counts them.

Timing: an expert beat is accepted when the previous expert's fc2 grant has been taken; the
table is read the cycle after (both addresses at once, two read ports) and the grant is valid
the cycle after that. fc2's grant follows the same way two cycles after fc1's was taken, so
behind any GEMM the consumer never waits except for the first grant of the list.

Resources: the address table (``layers x E x 4`` words of ``mem_addr_bits``, two read ports),
a few registers.
"""
from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from sim.config import Config

from hw.common import accept_job
from hw.moe.patch_reorder import expert_list_layout
from hw.moe.prefetcher import TENSORS, address_table, grant_layout

__all__ = ["ExpertStreamer", "stream_grant_layout"]


def stream_grant_layout(cfg: Config) -> data.StructLayout:
    """The prefetcher's grant plus the granted matrix's weight and bias byte addresses."""
    fields = dict(grant_layout(cfg).members)
    a = cfg.hw.mem_addr_bits
    fields.update(w_addr=unsigned(a), b_addr=unsigned(a))
    return data.StructLayout(fields)


class ExpertStreamer(wiring.Component):
    """Grants with weight addresses for streamed expert GEMMs (see the module docstring).

    Parameters
    ----------
    cfg : Config
    table : list[int], optional
        Initial address table (:func:`hw.moe.prefetcher.expert_address_table`); zeros if omitted.
    layers : int, optional
        MoE layers in the table (default ``len(cfg.model.moe_blocks)``).

    Ports
    -----
    experts : In stream, :func:`hw.moe.patch_reorder.expert_list_layout`
        The frame's chosen experts, ascending; ``layer`` is sampled with each beat.
    grant : Out stream, :func:`stream_grant_layout`
        fc1, then fc2 of each expert in list order, with their table addresses.
    tbl_addr, tbl_data, tbl_we : In
        Address-table writes.
    stall_cycles : Out counter

    Latency: a grant is valid 2 cycles after its expert beat is accepted (fc1) or after the
    previous grant was taken (fc2). Throughput: one expert per 2 taken grants.
    """

    def __init__(self, cfg: Config, table=None, layers: int | None = None):
        self.cfg = cfg
        self.layers, self.table_depth, self.table = address_table(cfg, table, layers)
        super().__init__({
            "experts": In(stream.Signature(expert_list_layout(cfg))),
            "layer": In(range(max(self.layers, 2))),
            "grant": Out(stream.Signature(stream_grant_layout(cfg))),
            "tbl_addr": In(range(self.table_depth)),
            "tbl_data": In(cfg.hw.mem_addr_bits),
            "tbl_we": In(1),
            "stall_cycles": Out(cfg.hw.moe_counter_bits),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.table = table = Memory(shape=unsigned(cfg.hw.mem_addr_bits),
                                            depth=self.table_depth, init=self.table)
        w_rd, b_rd, tbl_wr = table.read_port(), table.read_port(), table.write_port()
        m.d.comb += [tbl_wr.addr.eq(self.tbl_addr), tbl_wr.data.eq(self.tbl_data),
                     tbl_wr.en.eq(self.tbl_we)]

        cur = Signal(expert_list_layout(cfg))
        cur_valid = Signal()            # an expert is being granted
        cur_layer = Signal.like(self.layer)
        matrix = Signal()               # 0: fc1's grant is next, 1: fc2's
        looked_up = Signal()            # the table read of (cur, matrix) is done: grant valid
        frame_active = Signal()         # between the list's first beat and its last grant
        # Row-tiled H (hw.hidden_rows = T < tokens): fc1 / fc2 are granted once per chunk of
        # at most T tokens of the queue; ``left`` counts the expert's tokens not yet granted.
        T = cfg.h_rows if cfg.h_tiled else None
        left = Signal(len(cur.count))
        chunk = cur.count if T is None else Mux(left > T, T, left)
        more = Const(0) if T is None else left > T
        with m.If(accept_job(m, self.experts, cur_valid)):
            m.d.sync += [cur.eq(self.experts.payload), cur_valid.eq(1),
                         cur_layer.eq(self.layer), frame_active.eq(1),
                         left.eq(self.experts.payload.count)]

        entry = (cur_layer * cfg.model.experts + cur.expert) * len(TENSORS) + matrix * 2
        # A read port holds its data while en is low: the addresses stay put during the grant.
        m.d.comb += [w_rd.addr.eq(entry), b_rd.addr.eq(entry + 1),
                     w_rd.en.eq(cur_valid & ~looked_up), b_rd.en.eq(cur_valid & ~looked_up)]
        with m.If(cur_valid & ~looked_up):
            m.d.sync += looked_up.eq(1)

        g = self.grant.payload
        m.d.comb += [self.grant.valid.eq(looked_up), g.expert.eq(cur.expert),
                     g.count.eq(chunk), g.matrix.eq(matrix),
                     g.last.eq(cur.last & matrix & ~more),
                     g.w_addr.eq(w_rd.data), g.b_addr.eq(b_rd.data)]
        with m.If(self.grant.valid & self.grant.ready):
            m.d.sync += [looked_up.eq(0), matrix.eq(~matrix)]
            with m.If(matrix & more):
                m.d.sync += left.eq(left - (T or 0))
            with m.Elif(matrix):
                m.d.sync += cur_valid.eq(0)
            with m.If(g.last):
                m.d.sync += frame_active.eq(0)
        with m.If(self.grant.ready & ~self.grant.valid & frame_active):
            m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
        return m
