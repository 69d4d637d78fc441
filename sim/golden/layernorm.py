"""One-pass LayerNorm with a LUT + Newton reciprocal square root: bit-exact definition.

For a row x of D activations (a = act fraction bits), with S1 = sum x and S2 = sum x^2 (exact
integers, one pass):

    V = D * S2 - S1^2 + E,     E = round(eps * D^2 * 2^(2a))       (= D^2 (var + eps) * 2^(2a))
    z_i = (D * x_i - S1) / sqrt(V)                                 (exact in real arithmetic)

so mean and variance never need a division by D. 1/sqrt(V): V = m * 4^k with m in [1, 4);
m is truncated to ``rsqrt_frac`` fraction bits, a 2^rsqrt_lut_bits-entry LUT indexed by the top
bits of m gives y0 = 1/sqrt(bucket middle), one Newton step y1 = y0 (3 - m y0^2) / 2 refines it,
and 1/sqrt(V) = y1 * 2^-(rsqrt_frac + k). Then z (ln_norm format) is scaled by gamma and
shifted by beta, rounded and saturated into the activation format.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from sim.config import Config
from sim.fixed import rshift_round, saturate

__all__ = ["ln_eps_term", "rsqrt_table", "rsqrt_fixed", "layernorm"]


def ln_eps_term(cfg: Config) -> int:
    """E = round(eps * D^2 * 2^(2 * act.frac)), at least 1 so V > 0 on a constant row."""
    d, a = cfg.model.dim, cfg.num.act.frac_bits
    return max(1, math.floor(cfg.model.ln_eps * d * d * (1 << (2 * a)) + 0.5))


@lru_cache(maxsize=None)
def _rsqrt_table(lut_bits: int, frac: int) -> tuple[int, ...]:
    width = 4.0 / (1 << lut_bits)   # m in [0, 4): entries below m = 1 are never used
    out = []
    for i in range(1 << lut_bits):
        mid = max((i + 0.5) * width, 1.0)
        out.append(math.floor((1 << frac) / math.sqrt(mid) + 0.5))
    return tuple(out)


def rsqrt_table(cfg: Config) -> np.ndarray:
    return np.array(_rsqrt_table(cfg.num.rsqrt_lut_bits, cfg.num.rsqrt_frac), dtype=np.int64)


def _bit_length(v: np.ndarray) -> np.ndarray:
    # exact for v < 2^53 via frexp: v = f * 2^e with f in [0.5, 1)
    _, e = np.frexp(v.astype(np.float64))
    return e.astype(np.int64)


def rsqrt_fixed(cfg: Config, v) -> tuple[np.ndarray, np.ndarray]:
    """For positive integers V return (y, k) with 1/sqrt(V) ~= y * 2^-(rsqrt_frac + k)."""
    n = cfg.num
    fy, lb = n.rsqrt_frac, n.rsqrt_lut_bits
    v = np.asarray(v, dtype=np.int64)
    if np.any(v <= 0) or np.any(v >= (1 << 53)):
        raise ValueError("rsqrt_fixed: V must be in [1, 2^53)")
    k = (_bit_length(v) - 1) >> 1                        # V in [4^k, 4^(k+1))
    sh = 2 * k - fy
    m = np.where(sh >= 0, v >> np.maximum(sh, 0), v << np.maximum(-sh, 0))  # [2^fy, 2^(fy+2))
    y0 = rsqrt_table(cfg)[m >> (fy + 2 - lb)]
    t = rshift_round(y0 * y0, fy)                        # y0^2, fy fraction bits
    t = rshift_round(t * m, fy)                          # m * y0^2 ~= 1
    y1 = rshift_round(y0 * ((3 << fy) - t), fy + 1)
    return y1, k


def layernorm(cfg: Config, x, gamma, beta) -> np.ndarray:
    """LayerNorm over the last axis of activations ``x`` (gamma in ln_gamma, beta in act format)."""
    n = cfg.num
    x = np.asarray(x, dtype=np.int64)
    d = x.shape[-1]
    if d != cfg.model.dim:
        raise ValueError(f"layernorm: rows have {d} values, config dim is {cfg.model.dim}")
    s1 = x.sum(axis=-1, keepdims=True)
    s2 = (x * x).sum(axis=-1, keepdims=True)
    v = d * s2 - s1 * s1 + ln_eps_term(cfg)
    y, k = rsqrt_fixed(cfg, v)
    centered = d * x - s1                                # act fraction bits
    z = saturate(rshift_round(centered * y, n.rsqrt_frac + k - n.ln_norm.frac_bits), n.ln_norm)
    zg_frac = n.ln_norm.frac_bits + n.ln_gamma.frac_bits
    acc = z * np.asarray(gamma, dtype=np.int64) + (np.asarray(beta, dtype=np.int64)
                                                    << (zg_frac - n.act.frac_bits))
    return saturate(rshift_round(acc, zg_frac - n.act.frac_bits), n.act)
