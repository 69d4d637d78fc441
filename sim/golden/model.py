"""Bit-exact integer golden model of the whole M3ViT encoder (one frame, one task).

Sequence (every step a function of this package, each narrowing rounds half up and saturates):
patch embed GEMM (+bias) -> prepend cls -> + pos embed; per block
``x = x + proj(attn(LN1(x)))`` and ``x = x + MLP(LN2(x))`` (dense: fc1 + GELU, fc2; MoE: router,
per-expert fc1 + GELU, fc2, score-scaled accumulate into x in ascending expert order); final LN.
The residual add is fused into the producing GEMM's epilogue, as in the hardware.
"""
from __future__ import annotations

import numpy as np

from sim.config import Config
from sim.fixed import quantize, saturation_scope
from sim.params import param_format, param_specs
from sim.golden.layernorm import layernorm
from sim.golden.linear import linear, residual_add, scaled_accumulate
from sim.golden.router import expert_queues, route
from sim.golden.softmax import attention_head

__all__ = ["quantize_params", "quantize_image", "patchify", "forward", "attention_block",
           "mlp_block", "moe_block", "experts_combine"]


def quantize_params(cfg: Config, params: dict) -> tuple[dict, dict]:
    """Float params -> (integer params in their formats, per-tensor saturation counts).

    Raises KeyError/ValueError naming a missing, extra or wrong-shaped tensor.
    """
    specs = param_specs(cfg)
    missing = [k for k in specs if k not in params]
    extra = [k for k in params if k not in specs]
    if missing or extra:
        raise KeyError(f"parameter mismatch: missing {missing[:5]}, unexpected {extra[:5]}")
    q, sat = {}, {}
    for name, shape in specs.items():
        v = np.asarray(params[name], dtype=np.float64)
        if v.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {v.shape}")
        q[name], sat[name] = quantize(v, param_format(cfg, name), return_saturated=True)
    return q, sat


def quantize_image(cfg: Config, image) -> np.ndarray:
    """Float (C, H, W) image in [0, 1) -> activation-format integers."""
    img = np.asarray(image, dtype=np.float64)
    m = cfg.model
    want = (m.image_channels, m.image_height, m.image_width)
    if img.shape != want:
        raise ValueError(f"image shape {img.shape} does not match the config's {want}")
    return quantize(img, cfg.num.act)


def patchify(cfg: Config, image) -> np.ndarray:
    """(C, H, W) -> (patches, C*p*p): patches in row-major grid order, values in (c, kh, kw) order."""
    m = cfg.model
    c, p = m.image_channels, m.patch
    gh, gw = m.grid
    a = np.asarray(image).reshape(c, gh, p, gw, p)
    return a.transpose(1, 3, 0, 2, 4).reshape(gh * gw, c * p * p)


def _ln(cfg, qp, prefix, x):
    return layernorm(cfg, x, qp[prefix + ".weight"], qp[prefix + ".bias"])


def attention_block(cfg: Config, qp: dict, i: int, x: np.ndarray, trace=None) -> np.ndarray:
    m = cfg.model
    p = f"blocks.{i}."
    with saturation_scope(p + "norm1"):
        xn = _ln(cfg, qp, p + "norm1", x)
    with saturation_scope(p + "attn.qkv"):
        qkv = linear(cfg, xn, qp[p + "attn.qkv.weight"], qp[p + "attn.qkv.bias"])
    d, hd = m.dim, m.head_dim
    with saturation_scope(p + "attn.heads"):
        heads = [attention_head(cfg, qkv[:, h * hd:(h + 1) * hd],
                                qkv[:, d + h * hd:d + (h + 1) * hd],
                                qkv[:, 2 * d + h * hd:2 * d + (h + 1) * hd]) for h in range(m.heads)]
    o = np.concatenate(heads, axis=1)
    with saturation_scope(p + "attn.proj"):
        y = residual_add(cfg, x, linear(cfg, o, qp[p + "attn.proj.weight"],
                                        qp[p + "attn.proj.bias"]))
    if trace is not None:
        trace.update({p + "norm1": xn, p + "qkv": qkv, p + "attn": o, p + "attn_out": y})
    return y


def mlp_block(cfg: Config, qp: dict, i: int, x: np.ndarray, trace=None) -> np.ndarray:
    p = f"blocks.{i}."
    with saturation_scope(p + "norm2"):
        xn = _ln(cfg, qp, p + "norm2", x)
    with saturation_scope(p + "mlp.fc1"):
        h = linear(cfg, xn, qp[p + "mlp.fc1.weight"], qp[p + "mlp.fc1.bias"], gelu=True)
    with saturation_scope(p + "mlp.fc2"):
        y = residual_add(cfg, x, linear(cfg, h, qp[p + "mlp.fc2.weight"], qp[p + "mlp.fc2.bias"]))
    if trace is not None:
        trace.update({p + "norm2": xn, p + "fc1": h, p + "out": y})
    return y


def experts_combine(cfg: Config, qp: dict, prefix: str, xn, x, routing) -> np.ndarray:
    """x plus every chosen expert's score-scaled output, experts in ascending order.

    ``prefix`` names the experts' tensors (``blocks.{i}.mlp.experts``).
    """
    out = np.array(x, dtype=np.int64, copy=True)
    for q in expert_queues(cfg, routing):
        e = f"{prefix}.{q.expert}."
        with saturation_scope(prefix + ".fc1"):
            h = linear(cfg, xn[q.tokens], qp[e + "fc1.weight"], qp[e + "fc1.bias"], gelu=True)
        with saturation_scope(prefix + ".fc2"):
            y = linear(cfg, h, qp[e + "fc2.weight"], qp[e + "fc2.bias"])
        with saturation_scope(prefix + ".combine"):
            out[q.tokens] = scaled_accumulate(cfg, out[q.tokens], y, q.weights)
    return out


def moe_block(cfg: Config, qp: dict, i: int, x: np.ndarray, task: int, trace=None) -> np.ndarray:
    p = f"blocks.{i}."
    with saturation_scope(p + "norm2"):
        xn = _ln(cfg, qp, p + "norm2", x)
    with saturation_scope(p + "mlp.router"):
        routing = route(cfg, xn, qp[p + f"mlp.gates.{task}.weight"])
    out = experts_combine(cfg, qp, p + "mlp.experts", xn, x, routing)
    if trace is not None:
        trace.update({p + "norm2": xn, p + "routing": routing, p + "out": out})
    return out


def forward(cfg: Config, qparams: dict, image_q, task: int, trace: dict | None = None) -> np.ndarray:
    """Output tokens (tokens, dim), activation format, for one frame and one task."""
    m = cfg.model
    if not 0 <= task < m.tasks:
        raise ValueError(f"task {task} out of range: the config has {m.tasks} tasks")
    qp = qparams
    w = qp["patch_embed.proj.weight"].reshape(m.dim, m.patch_dim)
    with saturation_scope("patch_embed"):
        emb = linear(cfg, patchify(cfg, image_q), w, qp["patch_embed.proj.bias"])
        x = np.concatenate([qp["cls_token"].reshape(1, m.dim), emb], axis=0)
        x = residual_add(cfg, x, qp["pos_embed"].reshape(m.tokens, m.dim))
    if trace is not None:
        trace["embed"] = x
    for i in range(m.depth):
        x = attention_block(cfg, qp, i, x, trace)
        x = moe_block(cfg, qp, i, x, task, trace) if m.is_moe(i) else mlp_block(cfg, qp, i, x, trace)
    if m.final_norm:
        with saturation_scope("norm"):
            x = _ln(cfg, qp, "norm", x)
    return x
