"""A synthetic M3ViT checkpoint with the value ranges of a trained one (docs/numerics.md).

The tests cannot reach a trained M3ViT, and random inits (``sim.params.random_params``) keep every
value near 1, which hides exactly the problems a trained network shows: LayerNorm gammas up to
~16, biases up to ~50, outlier channels in the residual stream so that LayerNorm outputs reach
~85, and attention scores up to ~60. :func:`realistic_params` builds such a parameter set:

- weights ``N(0, gain / sqrt(fan_in))`` clipped to ``|w| <= 1.04`` (the trained maximum);
- one *massive-activation* residual channel per model (position embedding and every fc2 / proj
  bias push it to ~``outlier``), as trained ViTs have; LN gamma of that channel is ~6.8 so LN
  outputs there reach ~85, a few other gammas reach ~16;
- in every block one q and one k dimension per head carry large biases (21 and 18 for head_dim 64), so the
  query-key dot products of those heads reach ~60 after the 1/sqrt(head_dim) scale (queries and
  keys read the outlier channel only weakly, as in trained ViTs where it acts as a bias); a few v
  biases reach ~50;
- task gates with a spread of logits so routing is decided but not degenerate.

:func:`value_ranges` measures the ranges on the float model (forward hooks), so a test can check
the construction instead of trusting it.
"""
from __future__ import annotations

import numpy as np
import torch

from sim.config import Config
from sim.params import param_specs

from model_io.torch_model import from_params

__all__ = ["realistic_params", "value_ranges", "TARGET_RANGES"]

# What docs/numerics.md reports for a trained checkpoint (max absolute values).
TARGET_RANGES = {"ln_gamma": 16.0, "bias": 50.0, "ln_out": 85.0, "score": 60.0}


def realistic_params(cfg: Config, seed: int = 0, *, outlier: float = 30.0,
                     gate_gain: float = 2.0) -> dict[str, np.ndarray]:
    """Float params for ``cfg`` whose value ranges follow a trained M3ViT (see module doc)."""
    m = cfg.model
    rng = np.random.default_rng(seed)
    d, hd = m.dim, m.head_dim
    oc = int(rng.integers(d))                      # the massive-activation channel
    out: dict[str, np.ndarray] = {}
    for name, shape in param_specs(cfg).items():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
            g = rng.normal(1.0, 0.25, shape)
            g[rng.choice(d, 3, replace=False)] = rng.uniform(10.0, 16.0, 3)
            g[oc] = 80.0 / 12.5                    # LN(outlier channel) ~ 12.5 -> ~85
            out[name] = g
        elif name.endswith("norm1.bias") or name.endswith("norm2.bias") or name == "norm.bias":
            out[name] = rng.normal(0.0, 0.3, shape)
        elif name == "cls_token":
            out[name] = rng.normal(0.0, 1.0, shape)
        elif name == "pos_embed":
            p = rng.normal(0.0, 0.5, shape)
            p[..., oc] = outlier
            out[name] = p
        elif name.endswith(".weight") and len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            gain = gate_gain if ".gates." in name else 1.0
            w = np.clip(rng.normal(0.0, gain / np.sqrt(fan_in), shape), -1.04, 1.04)
            if name.endswith("attn.qkv.weight"):
                w[:2 * d] *= 0.3                   # trained q/k projections are small ...
                w[:2 * d, oc] *= 0.1               # ... and barely read the outlier channel
            out[name] = w
        elif name.endswith("attn.qkv.bias"):
            b = rng.normal(0.0, 0.5, shape)
            # q.k of the biased dims ~ 0.8 * 60 * sqrt(head_dim): scores ~60 with the rest
            kb = np.sqrt(40.0 * np.sqrt(hd))
            for h in range(m.heads):
                b[h * hd] = 1.2 * kb               # q, first dim of the head
                b[d + h * hd] = kb                 # k, the same dim
            b[2 * d + rng.choice(d, 2, replace=False)] = [50.0, -50.0]
            out[name] = b
        elif name.endswith(".bias"):
            b = rng.normal(0.0, 0.5, shape)
            if shape[-1] == d:                     # writes the residual stream: keep the outlier
                b[..., oc] = 0.0
            out[name] = b
        else:
            raise KeyError(f"realistic_params: no rule for tensor {name!r} {shape}")
    return out


def value_ranges(cfg: Config, params: dict, image, task: int = 0) -> dict[str, float]:
    """Max absolute LN gamma, bias, LayerNorm output and attention score on the float model."""
    model = from_params(cfg, params, torch.float64)
    seen = {"ln_out": 0.0, "score": 0.0}

    def ln_hook(_mod, _inp, y):
        seen["ln_out"] = max(seen["ln_out"], float(y.abs().max()))

    def qkv_hook(mod, _inp, y):
        b, n, _ = y.shape
        h = cfg.model.heads
        qkv = y.reshape(b, n, 3, h, -1).permute(2, 0, 3, 1, 4)
        s = (qkv[0] @ qkv[1].transpose(-2, -1)) * cfg.model.attn_scale
        seen["score"] = max(seen["score"], float(s.abs().max()))

    hooks = [mod.register_forward_hook(ln_hook) for mod in model.modules()
             if isinstance(mod, torch.nn.LayerNorm)]
    hooks += [blk.attn.qkv.register_forward_hook(qkv_hook) for blk in model.blocks]
    try:
        with torch.no_grad():
            model(torch.as_tensor(np.asarray(image, np.float64)), task)
    finally:
        for h in hooks:
            h.remove()
    gammas = [np.abs(v).max() for k, v in params.items() if "norm" in k and k.endswith("weight")]
    biases = [np.abs(v).max() for k, v in params.items() if k.endswith(".bias") and "norm" not in k]
    return {"ln_gamma": float(max(gammas)), "bias": float(max(biases)), **seen}
