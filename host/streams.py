"""Payload conversions and checks shared by the pysim and cocotb stream helpers.

A stream payload is described by its Amaranth shape: a plain ``Shape`` (``signed(16)``), or a
``lib.data`` layout (``ArrayLayout``, ``StructLayout``, nested). Python-side payload values are
plain data:

- plain shape: ``int`` (signed shapes give negative ints);
- ``ArrayLayout``: ``list`` of element values;
- ``StructLayout`` / ``UnionLayout``: ``dict`` of field values.

``to_bits`` / ``from_bits`` convert between those values and the flat bit pattern that appears on
the Verilog port (``<name>__payload``), element ``k`` of an ``ArrayLayout`` at bits
``[k * w, (k + 1) * w)``. numpy arrays and numpy integers are accepted wherever a list / int is.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data

__all__ = ["plain", "to_py", "shape_width", "to_bits", "from_bits", "assert_beats_equal"]


def plain(value: Any) -> Any:
    """numpy arrays / scalars -> Python lists / ints (recursively); anything else unchanged."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def to_py(value: Any) -> Any:
    """A ``lib.data.Const`` (what ``ctx.get`` returns for a View) -> nested lists / dicts / ints."""
    if isinstance(value, data.Const):
        layout = data.Layout.cast(value.shape())
        if isinstance(layout, data.ArrayLayout):
            return [to_py(value[i]) for i in range(layout.length)]
        return {name: to_py(value[name]) for name, _ in layout}
    return value


def shape_width(shape) -> int:
    """Width in bits of a shape-like (``Shape``, ``int``, ``range``, layout, ...)."""
    if isinstance(shape, ShapeCastable):
        return Shape.cast(shape.as_shape()).width
    return Shape.cast(shape).width


def to_bits(shape, value) -> int:
    """Payload value -> unsigned bit pattern of ``shape``. Out-of-range ints raise ValueError."""
    value = plain(value)
    if isinstance(shape, ShapeCastable):
        if isinstance(value, data.Const):
            return value.as_bits()
        layout = data.Layout.cast(shape)
        if isinstance(layout, data.ArrayLayout):
            if len(value) != layout.length:
                raise ValueError(f"payload has {len(value)} elements, {layout!r} needs "
                                 f"{layout.length}")
            bits = 0
            w = shape_width(layout.elem_shape)
            for i, v in enumerate(value):
                bits |= to_bits(layout.elem_shape, v) << (i * w)
            return bits
        if isinstance(layout, data.StructLayout):
            bits = 0
            for name, field in layout:
                bits |= to_bits(field.shape, value[name]) << field.offset
            return bits
        return shape.const(value).as_bits()
    s = Shape.cast(shape)
    v = int(value)
    lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"value {v} does not fit {s!r}")
    return v & ((1 << s.width) - 1)


def from_bits(shape, bits: int) -> Any:
    """Unsigned bit pattern -> payload value (nested lists / dicts / ints) of ``shape``."""
    bits = int(bits)
    if isinstance(shape, ShapeCastable):
        layout = data.Layout.cast(shape)
        if isinstance(layout, data.ArrayLayout):
            w = shape_width(layout.elem_shape)
            return [from_bits(layout.elem_shape, (bits >> (i * w)) & ((1 << w) - 1))
                    for i in range(layout.length)]
        if isinstance(layout, data.StructLayout):
            return {name: from_bits(field.shape, (bits >> field.offset)
                                    & ((1 << field.width) - 1)) for name, field in layout}
        return to_py(shape.from_bits(bits))
    s = Shape.cast(shape)
    bits &= (1 << s.width) - 1
    if s.signed and bits >> (s.width - 1):
        bits -= 1 << s.width
    return bits


def assert_beats_equal(got: Sequence, want: Sequence, *, inputs: Sequence | None = None,
                       seed: int | None = None, what: str = "output") -> None:
    """Assert two beat sequences are equal; on mismatch name the first bad beat (and its input).

    ``got`` / ``want`` are sequences of payload values (ints, lists, dicts or numpy rows).
    """
    got = plain(list(got))
    want = plain(list(want))
    tag = f" [seed={seed}]" if seed is not None else ""
    if len(got) != len(want):
        raise AssertionError(f"{what}: got {len(got)} beats, expected {len(want)}{tag}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            bad = sum(1 for a, b in zip(got, want) if a != b)
            msg = [f"{what}: beat {i} differs ({bad} of {len(want)} beats bad){tag}",
                   f"  got      {g}", f"  expected {w}"]
            if inputs is not None:
                msg.append(f"  input    {plain(inputs[i])}")
            raise AssertionError("\n".join(msg))
