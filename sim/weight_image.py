"""The weight image's byte layout: every parameter serialized at its aligned offset.

Shared by the exporter (:mod:`model_io.export`, which adds checks and the manifest) and the frame
memory builder (:mod:`sim.memory_image`, which resolves tensor names to byte offsets), so the
layout is written once. See docs/weight_image.md.
"""
from __future__ import annotations

import numpy as np

from sim import weight_format as fmt
from sim.config import Config
from sim.params import param_format, param_specs
from sim.weight_layout import layout_for, stored_shape, to_storage

__all__ = ["build_image"]


def build_image(cfg: Config, qparams: dict[str, np.ndarray]) -> tuple[bytes, list[dict]]:
    """Serialize integer params to (file bytes, manifest tensor entries); no validation here."""
    blob = bytearray()
    entries = []
    for name, shape in param_specs(cfg).items():
        q = param_format(cfg, name)
        dt = q.numpy_dtype
        layout = layout_for(name, shape)
        data = to_storage(layout, qparams[name]).astype(dt).tobytes()
        offset = fmt.align_up(len(blob))
        blob.extend(bytes(offset - len(blob)))
        blob.extend(data)
        entries.append({
            "name": name, "shape": list(shape), "layout": layout,
            "stored_shape": list(stored_shape(layout, shape)),
            "qformat": str(q), "format": q.to_dict(), "dtype": dt.str,
            "offset": offset, "length": len(data), "crc32": fmt.crc32(data),
        })
    blob.extend(bytes(fmt.align_up(len(blob)) - len(blob)))
    return bytes(blob), entries
