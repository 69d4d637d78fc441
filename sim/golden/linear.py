"""Linear layers and the epilogue operations of the PE array: bit-exact definitions.

A GEMM accumulates exact products (act x weight, acc_frac fraction bits) in ``acc_bits``; the
epilogue then adds the bias (already in accumulator scale), requantizes to the activation format
(round half up, saturate), optionally applies the PWL GELU, and optionally adds the result into an
existing row (residual) or, for the MoE combine, adds ``score * y`` into it.
"""
from __future__ import annotations

import numpy as np

from sim.config import Config
from sim.fixed import exact_int_matmul, requantize, rshift_round, saturate, saturate_bits
from sim.golden.gelu import gelu_pwl

__all__ = ["gemm_acc", "linear", "residual_add", "scaled_accumulate"]


def gemm_acc(cfg: Config, x, w, b=None) -> np.ndarray:
    """x (M, K) activations times w (N, K) weights (PyTorch layout) plus bias -> accumulators."""
    acc = exact_int_matmul(x, np.asarray(w, dtype=np.int64).T)
    if b is not None:
        acc = acc + np.asarray(b, dtype=np.int64)
    clipped = saturate_bits(acc, cfg.num.acc_bits)
    if not np.array_equal(clipped, acc):    # the config's acc_bits bound makes this impossible
        raise OverflowError("gemm_acc: accumulator overflow; acc_bits is too small")
    return acc


def linear(cfg: Config, x, w, b=None, gelu: bool = False) -> np.ndarray:
    """Requantized linear layer output (activations), with optional fused GELU."""
    y = requantize(gemm_acc(cfg, x, w, b), cfg.num.acc_frac, cfg.num.act)
    return gelu_pwl(cfg, y) if gelu else y


def residual_add(cfg: Config, x, y) -> np.ndarray:
    """x + y in the activation format, saturating."""
    return saturate(np.asarray(x, dtype=np.int64) + np.asarray(y, dtype=np.int64), cfg.num.act)


def scaled_accumulate(cfg: Config, x, y, score) -> np.ndarray:
    """x + round(score * y): MoE combine of expert output rows y with per-row scores (exp format)."""
    s = np.asarray(score, dtype=np.int64)
    if s.ndim == 1:
        s = s[:, None]
    contrib = rshift_round(np.asarray(y, dtype=np.int64) * s, cfg.num.exp.frac_bits)
    return residual_add(cfg, x, contrib)
