"""Which physical memories each buffer-bank client of the top level reaches.

The units address the bank with the physical memory of a descriptor's buffer field
(:data:`~hw.top.geometry.BUF_MEMORY`, set by the sequencer), plus a few fixed ones: the expert
GEMMs' fc1 writes and fc2 reads H, a GEMM into QKV writes Q, K or V by column, and the
attention feeders read Q, K and V. :func:`client_memories` turns the buffers each descriptor
field may name (:func:`sim.memory_image.wired_buffers`: all of them, or with
``hw.buffer_wiring == "program"`` those of the config's frame program) into the memory set of
every read and write client, in the order :class:`~hw.top.top.EdgeMoeTop` connects them. The
bank (:class:`~hw.top.buffers.BufferBank`) builds a client's read mux and a memory's write mux
over these sets only: on the ECP5 M3ViT build the LayerNorm, residual and STORE readers then
read one memory each (no 288-bit memory mux) and K, V and XN have a single writer.

Elaboration-time only (no hardware of its own).
"""
from __future__ import annotations

from sim.config import Config
from sim.memory_image import Buf, HwOp, wired_buffers

from hw.top.geometry import BUF_MEMORY, MEM_H, MEM_K, MEM_Q, MEM_V, MEM_X

__all__ = ["READERS", "WRITERS", "client_memories"]

# The bank's clients in the order the top level connects them (hw/top/top.py).
READERS = ("gemm.act", "gemm.res", "ln", "attn.q", "attn.k", "attn.v", "store")
WRITERS = ("gemm.o", "ln", "attn", "load")


def client_memories(cfg: Config, wired: dict | None = None
                    ) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """(memories of each of :data:`READERS`, memories of each of :data:`WRITERS`), sorted.
    ``wired``: the buffers of each descriptor field, if known (default
    :func:`~sim.memory_image.wired_buffers` of ``cfg``)."""
    if wired is None:
        wired = wired_buffers(cfg)

    def mems(*fields, extra=()):
        out = {BUF_MEMORY[b] for f in fields for b in wired[f]} | set(extra)
        return tuple(sorted(out)) or (MEM_X,)   # a client that never runs: any one memory

    moe = bool(wired[(HwOp.EXPERTS, "src")]) and bool(cfg.model.moe_blocks)
    expert_h = (MEM_H,) if moe else ()           # fc1 -> H, fc2 reads H (sequencer.py)
    qkv = (MEM_Q, MEM_K, MEM_V) if Buf.QKV in wired[(HwOp.GEMM, "dst")] else ()
    src_fields = [(HwOp.GEMM, "src")] + ([(HwOp.ROUTE, "src"), (HwOp.EXPERTS, "src")]
                                         if moe else [])
    res_fields = [(HwOp.GEMM, "res")] + ([(HwOp.EXPERTS, "dst")] if moe else [])
    dst_fields = [(HwOp.GEMM, "dst")] + ([(HwOp.EXPERTS, "dst")] if moe else [])
    readers = [
        mems(*src_fields, extra=expert_h),
        mems(*res_fields),
        mems((HwOp.LAYERNORM, "src")),
        (MEM_Q,), (MEM_K,), (MEM_V,),
        mems((HwOp.STORE, "src")),
    ]
    writers = [
        mems(*dst_fields, extra=expert_h + qkv),
        mems((HwOp.LAYERNORM, "dst")),
        mems((HwOp.ATTENTION, "dst")),
        mems((HwOp.LOAD, "dst")),
    ]
    return readers, writers
