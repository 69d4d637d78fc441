"""Error of the fixed-point golden model against the float PyTorch reference, for one frame.

Reports max / mean absolute error and cosine similarity of the output tokens, and per MoE block how
many tokens' top-k expert *set* differs between the two (MoE routing is discontinuous, so a token
that switches experts can carry a large error while everything else is close).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sim.config import Config
from sim.fixed import dequantize
from sim.golden import forward as golden_forward, quantize_params, quantize_image

from model_io.torch_model import from_params

__all__ = ["TokenError", "token_error", "routing_differences", "golden_vs_torch", "cosine"]


@dataclass(frozen=True)
class TokenError:
    max_abs: float
    mean_abs: float
    cosine: float             # over all tokens, flattened
    min_token_cosine: float   # worst single token
    routing_diff: dict        # {"blocks.{i}": tokens whose top-k expert set differs}
    tokens: int

    @property
    def routing_diff_total(self) -> int:
        return sum(self.routing_diff.values())

    def __str__(self) -> str:
        per_block = ", ".join(f"{k}: {v}" for k, v in self.routing_diff.items()) or "no MoE blocks"
        return (f"max abs err {self.max_abs:.4g}, mean abs err {self.mean_abs:.4g}, "
                f"cosine {self.cosine:.6f} (worst token {self.min_token_cosine:.6f}); "
                f"top-k expert choice differs for {self.routing_diff_total} token-blocks "
                f"({self.tokens} tokens per block; {per_block})")


def cosine(a, b, axis=None):
    num = (a * b).sum(axis=axis)
    den = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    return num / np.maximum(den, np.finfo(np.float64).tiny)


def routing_differences(cfg: Config, ref_experts: dict, test_experts: dict) -> dict[str, int]:
    """Per MoE block, tokens whose chosen expert sets differ; inputs ``{block: (tokens, k)}``."""
    out = {}
    for i in cfg.model.moe_blocks:
        key = f"blocks.{i}"
        a = np.sort(np.asarray(ref_experts[key]), axis=-1)
        b = np.sort(np.asarray(test_experts[key]), axis=-1)
        out[key] = int(np.count_nonzero(np.any(a != b, axis=-1)))
    return out


def token_error(cfg: Config, ref: np.ndarray, test: np.ndarray, ref_experts: dict,
                test_experts: dict) -> TokenError:
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    err = np.abs(test - ref)
    return TokenError(float(err.max()), float(err.mean()), float(cosine(ref.ravel(), test.ravel())),
                      float(cosine(ref, test, axis=-1).min()),
                      routing_differences(cfg, ref_experts, test_experts), ref.shape[0])


def golden_vs_torch(cfg: Config, params: dict, image, task: int) -> TokenError:
    """Run the float64 PyTorch model and the integer golden model on one (C, H, W) image."""
    model = from_params(cfg, params, torch.float64)
    trace_f: dict = {}
    with torch.no_grad():
        ref = model(torch.as_tensor(np.asarray(image, np.float64)), task, trace_f).numpy()
    qparams, _ = quantize_params(cfg, params)
    trace_q: dict = {}
    out_q = golden_forward(cfg, qparams, quantize_image(cfg, image), task, trace_q)
    ref_experts = {f"blocks.{i}": trace_f[f"blocks.{i}.experts"] for i in cfg.model.moe_blocks}
    test_experts = {f"blocks.{i}": trace_q[f"blocks.{i}.routing"].experts
                    for i in cfg.model.moe_blocks}
    return token_error(cfg, ref, dequantize(out_q, cfg.num.act), ref_experts, test_experts)
