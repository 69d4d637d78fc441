"""Float64 numpy reference of the M3ViT encoder: exact GELU (erf), exact softmax and LayerNorm.

The same structure as the integer golden model (sim.golden.model) with no quantization; it bounds
the golden model's error and is checked against the PyTorch reference model.
"""
from __future__ import annotations

import numpy as np

from sim.config import Config
from sim.golden.gelu import gelu_exact
from sim.golden.model import patchify

__all__ = ["forward", "layernorm", "softmax", "route"]


def layernorm(x, gamma, beta, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def route(cfg: Config, xn, gate_w):
    """(chosen experts (tokens, k), their unrenormalized probabilities) from float logits."""
    probs = softmax(xn @ gate_w.T)
    chosen = np.argsort(-probs, axis=-1, kind="stable")[:, :cfg.model.top_k]
    return chosen, np.take_along_axis(probs, chosen, axis=-1)


def forward(cfg: Config, params: dict, image, task: int, trace: dict | None = None) -> np.ndarray:
    m = cfg.model
    P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    eps = m.ln_eps

    def ln(prefix, x):
        return layernorm(x, P[prefix + ".weight"], P[prefix + ".bias"], eps)

    def lin(x, prefix):
        y = x @ P[prefix + ".weight"].T
        return y + P[prefix + ".bias"] if prefix + ".bias" in P else y

    emb = patchify(cfg, np.asarray(image, dtype=np.float64)) @ \
        P["patch_embed.proj.weight"].reshape(m.dim, m.patch_dim).T + P["patch_embed.proj.bias"]
    x = np.concatenate([P["cls_token"].reshape(1, m.dim), emb]) + P["pos_embed"].reshape(m.tokens, m.dim)
    d, hd = m.dim, m.head_dim
    for i in range(m.depth):
        p = f"blocks.{i}."
        qkv = lin(ln(p + "norm1", x), p + "attn.qkv")
        heads = []
        for h in range(m.heads):
            q, k, v = (qkv[:, j * d + h * hd:j * d + (h + 1) * hd] for j in range(3))
            heads.append(softmax(q @ k.T * m.attn_scale) @ v)
        x = x + lin(np.concatenate(heads, axis=1), p + "attn.proj")
        xn = ln(p + "norm2", x)
        if m.is_moe(i):
            chosen, weights = route(cfg, xn, P[p + f"mlp.gates.{task}.weight"])
            out = np.zeros_like(x)
            for e in range(m.experts):
                tok, slot = np.nonzero(chosen == e)
                if tok.size:
                    q = p + f"mlp.experts.{e}."
                    y = lin(gelu_exact(lin(xn[tok], q + "fc1")), q + "fc2")
                    out[tok] += weights[tok, slot][:, None] * y
            if trace is not None:
                trace[p + "experts"] = chosen
            x = x + out
        else:
            x = x + lin(gelu_exact(lin(xn, p + "mlp.fc1")), p + "mlp.fc2")
    return ln("norm", x) if m.final_norm else x
