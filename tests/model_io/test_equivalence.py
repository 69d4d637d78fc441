"""PyTorch reference vs the numpy float model (equal), and vs the integer golden model (bounded).

Golden-vs-float error bounds (random_params(style="unit") weights, sample and random images, both
tasks): ``tiny`` measured max abs err ~0.01-0.02, mean ~0.003, cosine > 0.99999 and no routing
changes; ``m3vit-tiny-cityscapes`` measured max abs err 0.10-0.20 (tokens that switched experts),
mean 0.003-0.005, cosine > 0.9999, 2-9 token-blocks routed differently. The asserted bounds leave
margin for numerics changes but still catch a broken golden model (which lands far outside).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model_io.compare import golden_vs_torch
from model_io.images import prepare_image, sample_image
from model_io.torch_model import from_params
from sim import float_model
from sim.config import get_config
from sim.params import random_params

BOUNDS = {  # config: (mean abs err, cosine, max abs err)
    "tiny": (0.01, 0.9995, 0.25),
    "m3vit-tiny-cityscapes": (0.02, 0.999, 2.5),
}


def _images(cfg, seed):
    m = cfg.model
    rnd = np.random.default_rng(seed).random((m.image_channels, m.image_height, m.image_width))
    return {"sample": prepare_image(sample_image(cfg, seed), cfg).pixels, "random": rnd}


def _float_equivalence(cfg, seed):
    params = random_params(cfg, seed, style="unit")
    model = from_params(cfg, params, torch.float64)
    for kind, image in _images(cfg, seed).items():
        for task in range(cfg.model.tasks):
            trace_np, trace_pt = {}, {}
            ref = float_model.forward(cfg, params, image, task, trace_np)
            with torch.no_grad():
                out = model(torch.from_numpy(image), task, trace_pt).numpy()
            err = np.abs(out - ref).max()
            print(f"{cfg.name} {kind} task {task}: torch vs numpy float max abs diff {err:.3g}")
            assert err < 1e-5, (kind, task, err)
            for i in cfg.model.moe_blocks:
                key = f"blocks.{i}.experts"
                assert np.array_equal(trace_pt[key], trace_np[key])


def _golden_error(cfg, seeds):
    mean_b, cos_b, max_b = BOUNDS[cfg.name]
    for seed in seeds:
        params = random_params(cfg, seed, style="unit")
        for kind, image in _images(cfg, seed).items():
            for task in range(cfg.model.tasks):
                e = golden_vs_torch(cfg, params, image, task)
                print(f"{cfg.name} seed {seed} {kind} task {task}: golden vs PyTorch: {e}")
                assert e.mean_abs < mean_b and e.cosine > cos_b and e.max_abs < max_b, str(e)


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_equals_numpy_float_tiny(tiny, seed):
    _float_equivalence(tiny, seed)


def test_golden_tracks_torch_tiny(tiny):
    _golden_error(tiny, seeds=[0, 1, 2])


@pytest.mark.slow
def test_torch_equals_numpy_float_m3vit():
    _float_equivalence(get_config("m3vit-tiny-cityscapes"), 0)


@pytest.mark.slow
def test_golden_tracks_torch_m3vit():
    _golden_error(get_config("m3vit-tiny-cityscapes"), seeds=[0, 1])
