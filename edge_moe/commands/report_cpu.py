"""The CPU baseline of ``edge-moe report``: the same frame in PyTorch on this machine, timed.

:func:`cpu_frame_time` builds the float reference model (model_io/torch_model.py) of the
config's model with seeded weights, runs one frame (batch 1, the given task, float32, no
autograd) once to warm up, then ``repeats`` more times, and returns the median and best wall
time with the thread count and the CPU name, so the report can set the accelerator's ms/frame
beside what this machine does with PyTorch alone. It measures, it asserts nothing: the figure
depends on the machine and on whatever else runs on it.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

from sim.config import Config

__all__ = ["cpu_frame_time", "cpu_name"]


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_frame_time(cfg: Config, *, repeats: int = 5, task: int = 0, seed: int = 0) -> dict:
    """Wall time of one PyTorch CPU frame of ``cfg.model`` (module docstring).

    Returns ``{"ms_median", "ms_best", "runs", "threads", "torch", "cpu", "tokens"}``;
    ``tokens`` is the shape of the output (proof the whole encoder ran). Raises ``RuntimeError``
    with an install hint if PyTorch is missing.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    try:
        import torch
    except ImportError as e:                 # pragma: no cover - torch is a dependency
        raise RuntimeError("the CPU baseline needs PyTorch: pip install torch==2.13.0") from e
    from model_io.images import prepare_image, sample_image
    from model_io.torch_model import M3ViT

    model = M3ViT(cfg, seed=seed).eval()
    pixels = prepare_image(sample_image(cfg, seed), cfg).pixels      # C x H x W floats in [0, 1)
    image = torch.as_tensor(pixels, dtype=torch.float32)
    times = []
    with torch.inference_mode():
        out = model(image, task)             # warm-up: allocator, kernels, caches
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model(image, task)
            times.append((time.perf_counter() - t0) * 1e3)
    return {"ms_median": statistics.median(times), "ms_best": min(times), "runs": repeats,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": cpu_name(),
            "cores": os.cpu_count(), "tokens": list(out.shape)}
