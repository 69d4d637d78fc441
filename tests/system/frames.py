"""Shared test data for the system tests: seeded random weights and images, golden outputs."""
from __future__ import annotations

import numpy as np

from sim.config import Config, get_config, with_changes
from sim.golden import forward, quantize_image, quantize_params
from sim.params import random_params

__all__ = ["frame_case", "expert_counts", "dense_config", "tiny", "depth1_config",
           "tiled_config", "kv_config"]


def tiny() -> Config:
    return get_config("tiny")


def dense_config() -> Config:
    """tiny without MoE blocks (step 1 of the bring-up: the dense path only), with attention
    not overlapped (``attn_overlap=False``: one ATTENTION descriptor per block, every head back
    to back), so this variant keeps the serial program tested too."""
    return with_changes(get_config("tiny"), name="tiny-dense", model=dict(moe_blocks=()),
                        hw=dict(attn_overlap=False))


def tiled_config(hidden_rows: int = 5) -> Config:
    """tiny with a row-tiled H buffer (``hw.hidden_rows`` of the 17 token rows): the dense MLP
    runs in row tiles, the patch embedding in tiles of whole rows of 4 patches, each expert's
    queue in chunks of at most ``hidden_rows`` tokens; the attention output is in XN, so
    attention is serial."""
    return with_changes(get_config("tiny"), name=f"tiny-h{hidden_rows}",
                        hw=dict(hidden_rows=hidden_rows, attn_overlap=False))


def kv_config(kv_heads: int = 1, hidden_rows: int | None = 5) -> Config:
    """tiny whose K and V memories hold ``kv_heads`` heads' columns (``hw.kv_heads``): the Q
    GEMM once, then per group of heads their K / V GEMMs and attention, whose output overwrites
    the heads' Q columns; serial attention, and by default a row-tiled H as on the M3ViT board
    config."""
    return with_changes(get_config("tiny"), name=f"tiny-kv{kv_heads}",
                        hw=dict(kv_heads=kv_heads, hidden_rows=hidden_rows, attn_overlap=False))


def depth1_config(moe: bool) -> Config:
    """tiny with one block (dense or MoE): the smallest complete frame."""
    return with_changes(get_config("tiny"), name=f"tiny-d1-{'moe' if moe else 'dense'}",
                        model=dict(depth=1, moe_blocks=(0,) if moe else ()))


def frame_case(cfg: Config, seed: int, task: int = 0) -> dict:
    """Random 'unit'-style weights and a random image (seeded), and the golden output tokens."""
    qp, _ = quantize_params(cfg, random_params(cfg, seed, "unit"))
    rng = np.random.default_rng(seed + 1000)
    m = cfg.model
    img = rng.random((m.image_channels, m.image_height, m.image_width))
    image_q = quantize_image(cfg, img)
    want = forward(cfg, qp, image_q, task)
    return dict(cfg=cfg, qparams=qp, image_q=image_q, task=task, want=want, seed=seed)


def expert_counts(cfg: Config, qparams, image_q, task: int) -> dict:
    """Tokens per expert in each MoE block, from the golden model's routing (what the frame
    cycle model needs to cost EXPERTS like the RTL's frame)."""
    trace = {}
    forward(cfg, qparams, image_q, task, trace)
    return {b: np.bincount(trace[f"blocks.{b}.routing"].experts.ravel(),
                           minlength=cfg.model.experts).tolist() for b in cfg.model.moe_blocks}
