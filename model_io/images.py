"""Input images: load, convert and resize to the config's input, quantize; plus a synthetic sample.

:func:`prepare_image` accepts a file path (PNG/JPEG/... via Pillow), a ``PIL.Image``, an HWC
``uint8`` array (H x W, H x W x 1, H x W x 3 or H x W x 4) or a CHW float array in [0, 1], and
returns a :class:`PreparedImage` ``(pixels, quantized)``:

- colour: converted to RGB (or to grayscale ``L`` if the config has one channel); alpha is dropped;
- size: resized to ``(cfg.model.image_height, cfg.model.image_width)`` with Pillow's BILINEAR
  filter (which, when shrinking, widens its support to the scale factor, i.e. it antialiases),
  stretching to the config's aspect ratio (no crop, no padding); an image already at the config's
  size is not resampled;
- range: 8-bit pixels map to ``v / 256`` so values lie in [0, 1) and are exact multiples of 2^-8
  (exactly representable in an activation format with >= 8 fraction bits); float input is clipped
  to [0, 1 - 2^-act.frac_bits] after checking it lies in [0, 1];
- ``quantized``: ``sim.golden.quantize_image(cfg, pixels)`` (activation format, int64 (C, H, W)).

:func:`sample_image` draws a deterministic, seeded synthetic scene (gradients, discs, boxes,
stripes) so demos and tests have an input without shipping binary files.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from sim.config import Config
from sim.golden import quantize_image

__all__ = ["PreparedImage", "prepare_image", "sample_image", "RESAMPLE"]

RESAMPLE = Image.Resampling.BILINEAR


class PreparedImage(NamedTuple):
    pixels: np.ndarray     # float64 (C, H, W) in [0, 1)
    quantized: np.ndarray  # int64 (C, H, W), cfg.num.act format


def _mode(cfg: Config) -> str:
    c = cfg.model.image_channels
    if c not in (1, 3):
        raise ValueError(f"images with {c} channels are not supported (1 or 3)")
    return "L" if c == 1 else "RGB"


def _from_uint8(cfg: Config, img: Image.Image) -> np.ndarray:
    m = cfg.model
    img = img.convert(_mode(cfg))
    if img.size != (m.image_width, m.image_height):
        img = img.resize((m.image_width, m.image_height), RESAMPLE)
    a = np.asarray(img, dtype=np.float64) / 256.0
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _from_float(cfg: Config, a: np.ndarray) -> np.ndarray:
    m = cfg.model
    if a.ndim != 3 or a.shape[0] not in (1, 3, 4):
        raise ValueError(f"float images must be CHW with 1, 3 or 4 channels, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or a.min() < 0.0 or a.max() > 1.0:
        raise ValueError(f"float image values must lie in [0, 1], got [{a.min()}, {a.max()}]")
    a = a[:3]
    if m.image_channels == 1 and a.shape[0] == 3:   # ITU-R 601-2 luma, as Pillow's convert("L")
        a = (a * np.array([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdims=True)
    elif m.image_channels == 3 and a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    if a.shape[1:] != (m.image_height, m.image_width):
        a = np.stack([np.asarray(Image.fromarray(ch.astype(np.float32))
                                 .resize((m.image_width, m.image_height), RESAMPLE),
                                 dtype=np.float64) for ch in a])
    return np.clip(a, 0.0, 1.0 - cfg.num.act.scale)


def prepare_image(source, cfg: Config) -> PreparedImage:
    """Image file / PIL image / HWC uint8 / CHW float -> (float CHW in [0, 1), quantized CHW)."""
    if isinstance(source, (str, Path)):
        with Image.open(source) as im:
            pixels = _from_uint8(cfg, im)
    elif isinstance(source, Image.Image):
        pixels = _from_uint8(cfg, source)
    else:
        a = np.asarray(source)
        if a.dtype == np.uint8:
            if a.ndim == 3 and a.shape[2] == 1:
                a = a[:, :, 0]
            if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
                raise ValueError(f"uint8 images must be HW, HWC (C = 1, 3, 4), got {a.shape}")
            pixels = _from_uint8(cfg, Image.fromarray(a))
        elif a.dtype.kind == "f":
            pixels = _from_float(cfg, a.astype(np.float64))
        else:
            raise ValueError(f"unsupported image array dtype {a.dtype} "
                             f"(use uint8 HWC or float CHW)")
    return PreparedImage(pixels, quantize_image(cfg, pixels))


def sample_image(cfg: Config, seed: int = 0) -> np.ndarray:
    """Deterministic synthetic HWC ``uint8`` image at the config's size (feed to prepare_image).

    A diagonal colour gradient with a few seeded discs, boxes and a stripe pattern: smooth regions,
    edges and texture, so attention and routing see varied patches.
    """
    m = cfg.model
    h, w = m.image_height, m.image_width
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = x / max(w - 1, 1), y / max(h - 1, 1)
    phase = rng.uniform(0, 2 * np.pi, 3)
    img = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (u + c * v) * 0.7 + p)
                    for c, p in zip((0.3, 0.6, 0.9), phase)], axis=-1)
    s = min(h, w)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.3) * s
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    for _ in range(2):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        bh, bw = rng.integers(s // 8 + 1, s // 2 + 2, 2)
        img[y0:y0 + bh, x0:x0 + bw] = rng.uniform(0, 1, 3)
    period = max(2, s // 8)
    stripes = ((x + y) // (period / 2)) % 2 == 0
    band = (v > 0.75)
    img[stripes & band] *= 0.5
    rgb = np.clip(np.floor(img * 256), 0, 255).astype(np.uint8)
    if m.image_channels == 1:
        return np.asarray(Image.fromarray(rgb).convert("L"))[:, :, None]
    _mode(cfg)
    return rgb
