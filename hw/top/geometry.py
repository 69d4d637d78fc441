"""Sizes of the top level derived from a Config: on-chip buffers, lane widths, DMA chunk sizes.

On-chip activation buffers are :class:`~amaranth.lib.memory.Memory` instances whose word holds
``G`` activations (``G`` = the largest lane count of any port that touches them, a power of two,
so every narrower access is a lane slice of one word). A buffer row of ``L`` values occupies
``stride = ceil(L_max / G)`` consecutive words; row ``r`` starts at word ``r * stride``.

Accessors and their lane counts (all must divide ``G``):

- GEMM activations ``R = array_rows``, residual rows / outputs ``C = array_cols``;
- LayerNorm rows ``ln_lanes`` (= ``R``), attention Q/K/V chunks ``dw = attn_dot_width``,
  attention outputs ``nw`` (the normalizer width);
- LOAD / STORE: ``V = mem_bytes_per_cycle / act.storage_bytes`` values per memory beat.

Physical memories (``MEM_*``): X, XN (also ATT), Q, K, V (the QKV buffer, split by column so the
attention unit reads a key's K and V chunk in one cycle), H (also IMG).

External-memory reads are chunks of ``U`` bytes (a whole number of bus beats): a GEMM weight row
tile (``C`` weights), a bias tile, ``ln_lanes`` gamma / beta values, one bus beat for LOAD, one
descriptor for the sequencer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sim.config import Config

from hw.attention.attention_lane import attention_params
from hw.mem.bus import beat_bytes, check_bus_config

__all__ = ["TopGeometry", "MEM_X", "MEM_XN", "MEM_Q", "MEM_K", "MEM_V", "MEM_H", "MEM_NAMES",
           "N_MEMS"]

MEM_X, MEM_XN, MEM_Q, MEM_K, MEM_V, MEM_H = range(6)
MEM_NAMES = ("X", "XN", "Q", "K", "V", "H")
N_MEMS = len(MEM_NAMES)


def _pow2(x: int) -> bool:
    return x > 0 and not x & (x - 1)


@dataclass(frozen=True)
class TopGeometry:
    cfg: Config
    R: int
    C: int
    G: int                  # activations per buffer word
    ln_lanes: int
    dw: int
    nw: int
    V: int                  # activations per memory beat
    W: int                  # bytes per memory beat
    rows: tuple             # rows of each physical memory
    strides: tuple          # words per row of each physical memory
    desc_bytes: int

    @classmethod
    def of(cls, cfg: Config, desc_bytes: int = 64) -> "TopGeometry":
        check_bus_config(cfg)
        m, n, h = cfg.model, cfg.num, cfg.hw
        R, C = h.array_rows, h.array_cols
        W = beat_bytes(cfg)
        sa = n.act.storage_bytes
        if W % sa:
            raise ValueError(f"top: a {W}-byte memory beat does not hold whole activations")
        V = W // sa
        ap = attention_params(cfg)
        ln_lanes = R
        lanes = {"array_rows": R, "array_cols": C, "attn_dot_width": ap.dw,
                 "attention norm_width": ap.norm_width, "values per memory beat": V}
        for what, v in lanes.items():
            if not _pow2(v):
                raise ValueError(f"top: {what} = {v} must be a power of two (buffer lanes)")
        G = max(lanes.values())
        d = m.dim
        checks = [
            (d % C == 0, f"dim {d} must be a multiple of array_cols {C} (Q/K/V column split)"),
            (d % ln_lanes == 0, f"dim {d} must be a multiple of the LayerNorm lanes {ln_lanes}"),
            (d % V == 0, f"dim {d} must be a multiple of {V} values per memory beat"),
            (m.patch % V == 0, f"patch {m.patch} must be a multiple of {V} values per memory "
                               f"beat (patchify on load)"),
            (m.experts <= C, f"experts {m.experts} must be <= array_cols {C} (router logits "
                             f"leave the GEMM in one beat)"),
            (desc_bytes % W == 0, f"descriptor of {desc_bytes} bytes is not a whole number of "
                                  f"{W}-byte beats"),
        ]
        for u, what in [(C * n.weight.storage_bytes, "weight tile"),
                        (C * n.bias.storage_bytes, "bias tile"),
                        (ln_lanes * n.ln_gamma.storage_bytes, "LayerNorm gamma beat"),
                        (ln_lanes * sa, "LayerNorm beta beat")]:
            checks.append((u % W == 0, f"a {what} of {u} bytes is not a whole number of "
                                       f"{W}-byte memory beats"))
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"top ({cfg.name}): {msg}")
        hid = max(m.mlp_hidden, m.expert_hidden, m.patch_dim)
        sd = math.ceil(d / G)
        rows = (m.tokens,) * 5 + (max(m.tokens, m.patches),)
        strides = (sd,) * 5 + (math.ceil(hid / G),)
        return cls(cfg, R, C, G, ln_lanes, ap.dw, ap.norm_width, V, W, rows, strides, desc_bytes)

    @property
    def depths(self) -> tuple:
        return tuple(r * s for r, s in zip(self.rows, self.strides))

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def word_bits(self) -> int:
        return self.G * self.cfg.num.act.bits

    def buffer_bytes(self) -> int:
        """On-chip activation buffer storage (bytes, at the activation bit width)."""
        return sum(self.depths) * self.word_bits // 8
