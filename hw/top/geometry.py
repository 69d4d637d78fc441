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

Physical memories (``MEM_*``): X, XN (also OUT), Q, K, V (the QKV buffer, split by column so the
attention unit reads a key's K and V chunk in one cycle), H (also IMG; and ATT, unless H is row
tiled: ``hw.hidden_rows`` rows, then ATT is in XN; with ``hw.kv_heads`` it is in Q). Every memory
has ``cfg.buffer_rows`` rows but H, which has ``cfg.h_rows``. K and V rows hold ``cfg.kv_cols``
values (``hw.kv_heads`` heads' columns, or all of dim).

External-memory reads are chunks of ``U`` bytes (a whole number of bus beats): a GEMM weight row
tile (``C`` weights), a bias tile, ``ln_lanes`` gamma / beta values, one bus beat for LOAD, one
descriptor for the sequencer.

Every constraint on the config (lane counts that are powers of two, dim a multiple of the lanes,
whole beats per chunk) is :func:`sim.config.check_top_level`, which every preset passes at
construction; :meth:`TopGeometry.of` runs it again for derived configs. The sizes themselves
(buffer rows, H row width) are ``Config`` properties.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sim.config import DESC_BYTES, Config, check_top_level

from hw.attention.attention_lane import attention_params
from hw.mem.bus import beat_bytes, check_bus_config

__all__ = ["TopGeometry", "MEM_X", "MEM_XN", "MEM_Q", "MEM_K", "MEM_V", "MEM_H", "MEM_NAMES",
           "N_MEMS", "BUF_MEMORY"]

MEM_X, MEM_XN, MEM_Q, MEM_K, MEM_V, MEM_H = range(6)
MEM_NAMES = ("X", "XN", "Q", "K", "V", "H")
N_MEMS = len(MEM_NAMES)
# Descriptor buffer id (sim.memory_image.Buf: X, XN, QKV, H) -> the physical memory a unit
# addresses: QKV names Q (a GEMM into QKV picks Q / K / V by column; attention reads all three).
BUF_MEMORY = (MEM_X, MEM_XN, MEM_Q, MEM_H)


def _pow2(x: int) -> bool:
    return x > 0 and not x & (x - 1)


@dataclass(frozen=True)
class TopGeometry:
    """Sizes of the top level's buffers and lanes (module docstring); build with :meth:`of`.

    Parameters
    ----------
    cfg : Config
        Must pass :func:`sim.config.check_top_level` (``ConfigError`` naming the field if not).
    desc_bytes : int
        Bytes of one sequencer descriptor (``DESC_BYTES``).

    Not a component: no ports, no latency.
    """

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
    def of(cls, cfg: Config, desc_bytes: int = DESC_BYTES) -> "TopGeometry":
        check_bus_config(cfg)
        check_top_level(cfg)
        h = cfg.hw
        R, C = h.array_rows, h.array_cols
        W = beat_bytes(cfg)
        V = W // cfg.num.act.storage_bytes
        ap = attention_params(cfg)
        ln_lanes = R
        if not _pow2(ap.norm_width):       # derived by the attention schedule, not a field
            raise ValueError(f"top ({cfg.name}): attention norm_width = {ap.norm_width} must be "
                             f"a power of two (buffer lanes)")
        if desc_bytes % W:
            raise ValueError(f"top ({cfg.name}): descriptor of {desc_bytes} bytes is not a "
                             f"whole number of {W}-byte beats")
        G = max(R, C, ap.dw, ap.norm_width, V)
        hd, kv = cfg.model.head_dim, h.kv_heads
        if kv is not None and kv > 1 and h.bram_target == "ecp5" and hd % G:
            # ATT overwrites Q in place: one head's output write and the next head's Q read
            # must not share a word (a DP16KD read of a word written that cycle is undefined)
            raise ValueError(f"top ({cfg.name}): hw.kv_heads {kv} > 1 on the ECP5 bank needs "
                             f"head_dim {hd} to be a multiple of the {G}-value buffer word")
        sd = math.ceil(cfg.model.dim / G)
        rows = (cfg.buffer_rows,) * (N_MEMS - 1) + (cfg.h_rows,)   # H: hw.hidden_rows
        skv = math.ceil(cfg.kv_cols / G)          # K, V: hw.kv_heads heads' columns
        strides = (sd, sd, sd, skv, skv, math.ceil(cfg.hidden_cols / G))
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
