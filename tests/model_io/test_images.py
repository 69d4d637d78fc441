"""Input images: file / PIL / uint8 / float inputs, resizing, range, quantization, sample image."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model_io.images import RESAMPLE, prepare_image, sample_image
from sim.fixed import dequantize, quantize


def _size(cfg):
    m = cfg.model
    return (m.image_channels, m.image_height, m.image_width)


def test_sample_image_is_deterministic_and_varied(tiny):
    a, b, c = sample_image(tiny, 0), sample_image(tiny, 0), sample_image(tiny, 1)
    m = tiny.model
    assert a.dtype == np.uint8 and a.shape == (m.image_height, m.image_width, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 20 and len(np.unique(a.reshape(-1, 3), axis=0)) > 50


def test_uint8_at_size_is_exact(tiny):
    a = sample_image(tiny, 0)
    img = prepare_image(a, tiny)
    assert img.pixels.shape == _size(tiny) and img.pixels.dtype == np.float64
    assert np.array_equal(img.pixels, a.transpose(2, 0, 1) / 256.0)
    assert 0.0 <= img.pixels.min() and img.pixels.max() < 1.0
    assert img.quantized.dtype == np.int64
    assert np.array_equal(img.quantized, quantize(img.pixels, tiny.num.act))
    assert np.array_equal(dequantize(img.quantized, tiny.num.act), img.pixels)  # v/256 is exact


def test_png_file_is_resized_bilinear(tiny, tmp_path):
    m = tiny.model
    big = Image.fromarray(sample_image(tiny, 2)).resize((3 * m.image_width, 2 * m.image_height))
    big.save(tmp_path / "x.png")
    img = prepare_image(tmp_path / "x.png", tiny)
    want = np.asarray(big.resize((m.image_width, m.image_height), RESAMPLE)) / 256.0
    assert img.pixels.shape == _size(tiny)
    assert np.array_equal(img.pixels, want.transpose(2, 0, 1))


def test_jpeg_grayscale_and_rgba_become_rgb(tiny, tmp_path):
    m = tiny.model
    Image.fromarray(sample_image(tiny, 3)).save(tmp_path / "x.jpg", quality=90)
    assert prepare_image(str(tmp_path / "x.jpg"), tiny).pixels.shape == _size(tiny)
    gray = np.full((m.image_height, m.image_width), 128, np.uint8)
    g = prepare_image(gray, tiny).pixels
    assert g.shape == _size(tiny) and np.all(g == 0.5)
    rgba = np.dstack([sample_image(tiny, 4), np.zeros((m.image_height, m.image_width), np.uint8)])
    assert np.array_equal(prepare_image(rgba, tiny).pixels,
                          prepare_image(rgba[..., :3], tiny).pixels)
    assert np.array_equal(prepare_image(Image.fromarray(gray), tiny).pixels, g)


def test_float_chw(tiny):
    c, h, w = _size(tiny)
    x = np.random.default_rng(0).random((c, h, w))
    x[0, 0, 0] = 1.0
    img = prepare_image(x, tiny)
    assert img.pixels.max() < 1.0 and img.pixels[0, 0, 0] == 1.0 - tiny.num.act.scale
    assert np.array_equal(img.pixels, np.clip(x, 0, 1 - tiny.num.act.scale))
    small = prepare_image(np.random.default_rng(1).random((c, h // 2, w // 2)), tiny)
    assert small.pixels.shape == (c, h, w) and 0 <= small.pixels.min() and small.pixels.max() < 1


@pytest.mark.parametrize("bad, fact", [
    (np.full((3, 32, 32), 1.5), "[0, 1]"),
    (np.zeros((32, 32, 3), np.float64), "CHW"),
    (np.zeros((32, 32, 3), np.int32), "dtype int32"),
    (np.zeros((32, 32, 5), np.uint8), "HWC"),
])
def test_rejects_bad_arrays(tiny, bad, fact):
    with pytest.raises(ValueError) as info:
        prepare_image(bad, tiny)
    assert fact in str(info.value)
