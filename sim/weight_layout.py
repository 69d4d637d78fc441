"""Storage order of each tensor in the weight image (the order the hardware reads it in).

Every manifest entry carries a ``layout`` field naming one of :data:`LAYOUTS`, so a future change
of tiling is a new layout here plus a manifest change, not a new file format:

- ``row_major``: the logical shape in C order (vectors, LN parameters, cls token, pos embed).
- ``k_major``: a weight matrix of logical shape (N, K...) -- PyTorch's (out_features, in_features),
  or the patch-embedding conv (dim, C, p, p) whose K = C*p*p in (c, kh, kw) order -- is stored as
  its (K, N) transpose, row-major: K rows of N weights, so a weight-stationary array streams one
  K row of N output-column weights at a time.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["LAYOUTS", "layout_for", "stored_shape", "to_storage", "from_storage"]

LAYOUTS = {
    "row_major": "logical shape, C (row-major) order",
    "k_major": "logical (N, K...) stored as its (K, N) transpose, row-major: K rows of N values",
}


def layout_for(name: str, shape: tuple[int, ...]) -> str:
    """The layout the exporter uses: ``k_major`` for every weight matrix, else ``row_major``."""
    return "k_major" if name.endswith(".weight") and len(shape) >= 2 else "row_major"


def _check(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known layouts: {', '.join(LAYOUTS)}")


def stored_shape(layout: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the tensor as stored (for ``k_major``: (K, N))."""
    _check(layout)
    if layout == "k_major":
        return (math.prod(shape[1:]), shape[0])
    return tuple(shape)


def to_storage(layout: str, a: np.ndarray) -> np.ndarray:
    """Logical array -> C-contiguous array in storage order."""
    _check(layout)
    a = np.asarray(a)
    if layout == "k_major":
        a = a.reshape(a.shape[0], -1).T
    return np.ascontiguousarray(a)


def from_storage(layout: str, flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Flat values in storage order -> array of logical ``shape``."""
    st = stored_shape(layout, shape)
    a = np.asarray(flat).reshape(st)
    if layout == "k_major":
        a = a.T.reshape(shape)
    return np.ascontiguousarray(a)
