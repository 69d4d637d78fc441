"""Base-2 exponential, single-pass online softmax and fused attention: bit-exact definitions.

Scores live in the log2 domain (``cfg.num.score``): the scale 1/sqrt(hd) and log2(e) are folded into
one constant multiply, so exp(x) becomes 2^t.

**Integer running max.** The running max ``M`` is kept as an integer, ``M = max_j ceil(t_j)``. Then
the rescale factor 2^(M_old - M_new) is an exact power of two: rescaling the running sum (and, in
attention, the output accumulator) is a rounding right shift, with no multiplier and no second
exponential. Each score is exponentiated exactly once: ``e_j = 2^(t_j - M)`` with argument <= 0.
The largest e of a row is in (1/2, 1], so the integer max costs at most one bit of precision.

**exp2** of x <= 0 (score fraction bits): i = floor(x), f = x - i in [0, 1);
2^x = PWL(2^f) >> -i, with 2^f on [1, 2) tabulated at ``exp2_segments + 1`` points in
``cfg.num.exp`` fraction bits and linearly interpolated (index = top bits of f).

**Normalization**: one reciprocal per row, r = round(2^R / l) with R = exp.frac + recip_frac,
then a multiply and rounding shift per output.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from sim.config import Config
from sim.fixed import exact_int_matmul, rshift_round, saturate

__all__ = ["exp2_table", "exp2_fixed", "ceil_int", "const_q", "to_score", "recip_bits",
           "reciprocal", "softmax_rows", "attention_head", "LOG2E"]

LOG2E = 1.0 / math.log(2.0)


@lru_cache(maxsize=None)
def _exp2_table(segments: int, frac: int) -> tuple[int, ...]:
    return tuple(math.floor(2.0 ** (i / segments) * (1 << frac) + 0.5) for i in range(segments + 1))


def exp2_table(cfg: Config) -> np.ndarray:
    """2^(i / segments) for i = 0..segments, with cfg.num.exp fraction bits (values in [1, 2])."""
    return np.array(_exp2_table(cfg.num.exp2_segments, cfg.num.exp.frac_bits), dtype=np.int64)


def exp2_fixed(cfg: Config, x) -> np.ndarray:
    """2^x for x <= 0 given with score fraction bits; result in cfg.num.exp (UQ1.f)."""
    n = cfg.num
    fs = n.score.frac_bits
    x = np.asarray(x, dtype=np.int64)
    if np.any(x > 0):
        raise ValueError("exp2_fixed: argument must be <= 0")
    seg_bits = n.exp2_segments.bit_length() - 1
    low_bits = fs - seg_bits
    i = x >> fs                                 # floor: <= 0
    f = x - (i << fs)                           # [0, 2^fs)
    idx = f >> low_bits
    r = f & ((1 << low_bits) - 1)
    table = exp2_table(cfg)
    lo = table[idx]
    mant = lo + rshift_round((table[idx + 1] - lo) * r, low_bits)   # 2^f, in [1, 2)
    return rshift_round(mant, -i)


def ceil_int(cfg: Config, t) -> np.ndarray:
    """ceil(t) of scores t (score fraction bits), as a plain integer."""
    return -((-np.asarray(t, dtype=np.int64)) >> cfg.num.score.frac_bits)


def const_q(cfg: Config, value: float) -> int:
    """A constant in cfg.num.const_frac fraction bits (round half up)."""
    return math.floor(value * (1 << cfg.num.const_frac) + 0.5)


def to_score(cfg: Config, v, v_frac: int, const: float) -> np.ndarray:
    """Map v (integer with ``v_frac`` fraction bits) times ``const`` into the score format."""
    n = cfg.num
    prod = np.asarray(v, dtype=np.int64) * const_q(cfg, const)
    return saturate(rshift_round(prod, v_frac + n.const_frac - n.score.frac_bits), n.score)


def recip_bits(cfg: Config) -> int:
    """R: the reciprocal of a running sum l (exp fraction bits) is round(2^R / l)."""
    return cfg.num.exp.frac_bits + cfg.num.recip_frac


def reciprocal(cfg: Config, l) -> np.ndarray:
    """round(2^R / l) for positive integer l (what the RTL's divider produces)."""
    l = np.asarray(l, dtype=np.int64)
    if np.any(l <= 0):
        raise ValueError("reciprocal: running sum must be positive")
    return ((1 << recip_bits(cfg)) + (l >> 1)) // l


def _online_pass(cfg: Config, t: np.ndarray, on_key=None):
    """Shared single pass over the columns of scores ``t`` (rows, n): returns (M, l, e, M_at).

    ``on_key(j, shift, e_j)`` lets attention fold each key into its accumulator as it goes.
    """
    fs = cfg.num.score.frac_bits
    rows, n = t.shape
    m = ceil_int(cfg, t[:, 0])
    l = np.zeros(rows, dtype=np.int64)
    e = np.zeros((rows, n), dtype=np.int64)
    m_at = np.zeros((rows, n), dtype=np.int64)
    for j in range(n):
        m_new = np.maximum(m, ceil_int(cfg, t[:, j]))
        shift = m_new - m
        m = m_new
        e[:, j] = exp2_fixed(cfg, t[:, j] - (m << fs))
        m_at[:, j] = m
        l = rshift_round(l, shift) + e[:, j]
        if on_key is not None:
            on_key(j, shift, e[:, j])
    return m, l, e, m_at


def softmax_rows(cfg: Config, t) -> np.ndarray:
    """Softmax of each row of scores ``t`` (score format) -> probabilities in cfg.num.exp."""
    n = cfg.num
    t = np.atleast_2d(np.asarray(t, dtype=np.int64))
    m, l, e, m_at = _online_pass(cfg, t)
    r = reciprocal(cfg, l)
    e_final = rshift_round(e, m[:, None] - m_at)
    return saturate(rshift_round(e_final * r[:, None], recip_bits(cfg) - n.exp.frac_bits), n.exp)


def attention_head(cfg: Config, q, k, v) -> np.ndarray:
    """softmax(q k^T * scale) v for one head, fused and online; q, k, v (tokens, hd) activations.

    Per query row and key j (in key order): t = score(q . k_j); M grows to ceil(t) if needed, the
    sum l and the output accumulator o (exp.frac + act.frac fraction bits) are shifted right by
    the growth; e = 2^(t - M); l += e; o += e * v_j. Finally out = o * round(2^R / l) >> R.
    """
    n = cfg.num
    q, k, v = (np.asarray(a, dtype=np.int64) for a in (q, k, v))
    s = exact_int_matmul(q, k.T)                        # 2 * act.frac fraction bits
    t = to_score(cfg, s, 2 * n.act.frac_bits, cfg.model.attn_scale * LOG2E)
    o = np.zeros(q.shape, dtype=np.int64)

    def fold(j, shift, e_j):
        nonlocal o
        o = rshift_round(o, shift[:, None]) + e_j[:, None] * v[j][None, :]

    _, l, _, _ = _online_pass(cfg, t, fold)
    r = reciprocal(cfg, l)
    return saturate(rshift_round(o * r[:, None], recip_bits(cfg)), n.act)
