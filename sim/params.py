"""Parameter names, shapes and numeric formats of the M3ViT encoder, and seeded random weights.

The names follow timm's ``VisionTransformer`` wherever a tensor exists there (``patch_embed.proj``,
``cls_token``, ``pos_embed``, ``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv``, ...); MoE blocks put
their per-task gates and experts under ``blocks.{i}.mlp``. Linear weights keep PyTorch's
(out_features, in_features) layout. The PyTorch reference model, the float and integer golden
models and the weight exporter all use this table, so a name or shape is defined once.
"""
from __future__ import annotations

import numpy as np

from sim.config import Config
from sim.fixed import QFormat

__all__ = ["param_specs", "param_format", "random_params", "INIT_STYLES"]


def param_specs(cfg: Config) -> dict[str, tuple[int, ...]]:
    """Ordered ``{name: shape}`` of every parameter of the encoder."""
    m = cfg.model
    d, n = m.dim, m.tokens
    specs: dict[str, tuple[int, ...]] = {
        "patch_embed.proj.weight": (d, m.image_channels, m.patch, m.patch),
        "patch_embed.proj.bias": (d,),
        "cls_token": (1, 1, d),
        "pos_embed": (1, n, d),
    }
    for i in range(m.depth):
        p = f"blocks.{i}."
        specs.update({
            p + "norm1.weight": (d,), p + "norm1.bias": (d,),
            p + "attn.qkv.weight": (3 * d, d), p + "attn.qkv.bias": (3 * d,),
            p + "attn.proj.weight": (d, d), p + "attn.proj.bias": (d,),
            p + "norm2.weight": (d,), p + "norm2.bias": (d,),
        })
        if m.is_moe(i):
            for t in range(m.tasks):
                specs[p + f"mlp.gates.{t}.weight"] = (m.experts, d)
            for e in range(m.experts):
                q = p + f"mlp.experts.{e}."
                specs.update({
                    q + "fc1.weight": (m.expert_hidden, d), q + "fc1.bias": (m.expert_hidden,),
                    q + "fc2.weight": (d, m.expert_hidden), q + "fc2.bias": (d,),
                })
        else:
            specs.update({
                p + "mlp.fc1.weight": (m.mlp_hidden, d), p + "mlp.fc1.bias": (m.mlp_hidden,),
                p + "mlp.fc2.weight": (d, m.mlp_hidden), p + "mlp.fc2.bias": (d,),
            })
    if m.final_norm:
        specs.update({"norm.weight": (d,), "norm.bias": (d,)})
    return specs


def param_format(cfg: Config, name: str) -> QFormat:
    """The fixed-point format a parameter is stored and computed in."""
    n = cfg.num
    if name.startswith("norm") or ".norm" in name:
        return n.ln_gamma if name.endswith(".weight") else n.act
    if name in ("cls_token", "pos_embed"):
        return n.act
    if name.endswith(".bias"):
        return n.bias
    return n.weight


INIT_STYLES = ("vit", "unit")


def random_params(cfg: Config, seed: int = 0, style: str = "unit") -> dict[str, np.ndarray]:
    """Seeded random float64 parameters.

    ``vit``: timm's ViT init (weights trunc-normal std 0.02, biases 0, LN gamma 1, beta 0), which
    keeps activations tiny. ``unit`` (default for tests and the demo): weights trunc-normal with
    std 1/sqrt(fan_in) and random biases, LN affine and embeddings, so activations are O(1) and
    every quantizer is exercised over a realistic range.
    """
    if style not in INIT_STYLES:
        raise ValueError(f"unknown init style {style!r}; choose from {INIT_STYLES}")
    rng = np.random.default_rng(seed)

    def trunc(shape, std):
        return np.clip(rng.normal(0.0, std, shape), -2 * std, 2 * std)

    out = {}
    for name, shape in param_specs(cfg).items():
        is_norm = name.startswith("norm") or ".norm" in name
        if is_norm and name.endswith(".weight"):
            v = np.ones(shape) if style == "vit" else 1.0 + trunc(shape, 0.2)
        elif is_norm or name.endswith(".bias"):
            v = np.zeros(shape) if style == "vit" else trunc(shape, 0.2)
        elif name in ("cls_token", "pos_embed"):
            v = trunc(shape, 0.02 if style == "vit" else 0.5)
        else:
            fan_in = int(np.prod(shape[1:]))
            v = trunc(shape, 0.02 if style == "vit" else fan_in ** -0.5)
        out[name] = v.astype(np.float64)
    return out
