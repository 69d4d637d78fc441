"""Beat order of the attention unit's streams (numpy only; for tests, benchmarks, the top level).

With ``p = cfg.hw.attn_parallel``, ``dw = cfg.hw.attn_dot_width``, ``hd = cfg.model.head_dim``,
``c = hd / dw`` chunks per row, ``N`` tokens and ``G = ceil(N / p)`` groups of query rows per head:

- **Q stream** (``Attention.q``, ``dw`` activations per beat): for each head, the query rows
  0 .. N-1 in order, each as its c chunks (chunk ci = elements ci*dw .. ci*dw + dw - 1). Rows
  g*p .. g*p + p - 1 form group g; the last group of a head may be partial.
- **K/V stream** (``Attention.kv``, beat = ``{"k": dw activations, "v": dw activations}``): for
  each head, for each group g = 0 .. G-1, for each key j = 0 .. N-1, for each chunk ci: chunk ci
  of k_j together with chunk ci of v_j. K and V are read once per group of p query rows, never
  per query row: G*N*c beats per head, 2*dw activations each.
- **O stream** (``Attention.o``, beat = ``{"o": nw activations, "last": 1}``, nw = the unit's
  ``norm_width``): for each head, the output rows 0 .. N-1 in order, each as hd / nw beats;
  ``last`` marks the final beat of a head.

Heads follow each other back to back on all three streams.
"""
from __future__ import annotations

import math

import numpy as np

from sim.config import Config
from sim.golden.softmax import attention_head

__all__ = ["attention_dims", "q_beats", "kv_beats", "o_beats", "attention_reference",
           "kv_bytes_per_beat"]


def attention_dims(cfg: Config, tokens: int | None = None) -> dict:
    """p, dw, hd, c (chunks per row), N (tokens), G (groups per head)."""
    n = cfg.model.tokens if tokens is None else int(tokens)
    p, dw, hd = cfg.hw.attn_parallel, cfg.hw.attn_dot_width, cfg.model.head_dim
    return dict(p=p, dw=dw, hd=hd, c=hd // dw, N=n, G=math.ceil(n / p))


def _heads(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    return a[None] if a.ndim == 2 else a


def q_beats(cfg: Config, q) -> list[list[int]]:
    """Q stream beats for q of shape (N, hd) or (heads, N, hd)."""
    dw = cfg.hw.attn_dot_width
    q = _heads(q)
    h, n, hd = q.shape
    return q.reshape(h * n * (hd // dw), dw).tolist()


def kv_beats(cfg: Config, k, v) -> list[dict]:
    """K/V stream beats for k, v of shape (N, hd) or (heads, N, hd)."""
    k, v = _heads(k), _heads(v)
    h, n, hd = k.shape
    d = attention_dims(cfg, n)
    c, dw = d["c"], d["dw"]
    out = []
    for head in range(h):
        kc = k[head].reshape(n * c, dw).tolist()
        vc = v[head].reshape(n * c, dw).tolist()
        one_pass = [{"k": a, "v": b} for a, b in zip(kc, vc)]
        for _ in range(d["G"]):
            out += one_pass
    return out


def o_beats(cfg: Config, o, norm_width: int) -> list[dict]:
    """Expected O stream beats for outputs o of shape (N, hd) or (heads, N, hd)."""
    o = _heads(o)
    h, n, hd = o.shape
    per_row = hd // norm_width
    out = []
    for head in range(h):
        chunks = o[head].reshape(n * per_row, norm_width).tolist()
        out += [{"o": row, "last": int(i == n * per_row - 1)} for i, row in enumerate(chunks)]
    return out


def attention_reference(cfg: Config, q, k, v) -> np.ndarray:
    """Golden outputs (heads, N, hd): sim.golden.softmax.attention_head per head."""
    q, k, v = _heads(q), _heads(k), _heads(v)
    return np.stack([attention_head(cfg, q[h], k[h], v[h]) for h in range(q.shape[0])])


def kv_bytes_per_beat(cfg: Config) -> int:
    """External-memory bytes of one K/V beat (dw keys + dw values, stored activations)."""
    return 2 * cfg.hw.attn_dot_width * cfg.num.act.storage_bytes
