"""Piecewise-linear GELU, bit-exact definition shared with the RTL GELU unit.

GELU(x) = ReLU(x) - d(|x|) with d(a) = a * Phi(-a). d is tabulated at ``gelu_segments + 1``
uniform points on [0, gelu_range] (``gelu_table_frac`` fraction bits) and linearly interpolated;
for |x| >= gelu_range, d is taken as 0 (d(4) = 1.3e-4, below half an activation LSB).
The grid step is a power of two in activation LSBs, so the segment index is a shift and the
interpolation weight is the low bits: one multiply, one add, one rounding shift per value.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from sim.config import Config
from sim.fixed import rshift_round, saturate

__all__ = ["gelu_step_bits", "gelu_table", "gelu_pwl", "gelu_exact"]


def gelu_step_bits(cfg: Config) -> int:
    """log2 of the grid step, in activation LSBs."""
    n = cfg.num
    step = int(n.gelu_range / n.gelu_segments * (1 << n.act.frac_bits))
    return step.bit_length() - 1


@lru_cache(maxsize=None)
def _table(segments: int, step: float, frac: int) -> tuple[int, ...]:
    out = []
    for i in range(segments + 1):
        a = i * step
        out.append(math.floor(a * 0.5 * math.erfc(a / math.sqrt(2.0)) * (1 << frac) + 0.5))
    return tuple(out)


def gelu_table(cfg: Config) -> np.ndarray:
    """d(a) at the grid points, int64, ``gelu_table_frac`` fraction bits (segments + 1 entries)."""
    n = cfg.num
    return np.array(_table(n.gelu_segments, n.gelu_range / n.gelu_segments, n.gelu_table_frac),
                    dtype=np.int64)


def gelu_pwl(cfg: Config, x) -> np.ndarray:
    """GELU of activations ``x`` (int, cfg.num.act) -> activations."""
    n = cfg.num
    x = np.asarray(x, dtype=np.int64)
    sb = gelu_step_bits(cfg)
    table = gelu_table(cfg)
    a = np.minimum(np.abs(x), n.act.max_int)
    idx = a >> sb
    inside = idx < n.gelu_segments
    idx_c = np.where(inside, idx, 0)
    r = a & ((1 << sb) - 1)
    lo = table[idx_c]
    d = lo + rshift_round((table[idx_c + 1] - lo) * r, sb)
    d = np.where(inside, d, 0)
    extra = n.gelu_table_frac - n.act.frac_bits
    # One rounding for the whole result: (ReLU(x) - d) at table precision, then narrow.
    return saturate(rshift_round((np.maximum(x, 0) << extra) - d, extra), n.act)


def gelu_exact(x) -> np.ndarray:
    """Float GELU with erf (what PyTorch's nn.GELU() computes)."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


_erf = np.vectorize(math.erf, otypes=[np.float64])
