"""Compare a sum of two unsigned values with a constant on one carry chain.

``a + b <= c`` written plainly is two carry chains in a row (the adder, then the comparator)
with a routed net between them; on the ULX3S build the sequencer's descriptor field tests
(``row0d + m <= rows``) were that (12.4 ns routed, docs/boards.md). Here the constant joins the
sum as a third operand: a row of 3:2 compressors (one LUT per bit, the constant folds into it)
turns ``a + b + k`` into ``s + 2 t``, and the comparison is the sign bit of that one addition.

Combinational (no latency); one LUT level and one carry chain of ``max(len(a), len(b),
bits(c)) + 2`` bits.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Value

__all__ = ["sum_at_least", "sum_at_most"]


def _width(a: Value, b: Value, c: int) -> int:
    # a + b - c - 1 lies in [-c - 1, 2 ** (n + 1) - 2]: one bit above n + 1 holds the sign
    return max(len(a), len(b), c.bit_length()) + 2


def _negative(a: Value, b: Value, k: int, width: int) -> Value:
    """Sign bit of ``a + b + k`` in ``width``-bit two's complement (``a``, ``b`` unsigned)."""
    a = Cat(a, Const(0, width - len(a)))
    b = Cat(b, Const(0, width - len(b)))
    kc = Const(k % (1 << width), width)
    s = a ^ b ^ kc
    t = (a & b) | (a & kc) | (b & kc)
    return (s + Cat(Const(0, 1), t[:width - 1]))[width - 1]


def _unsigned(v) -> Value:
    v = Value.cast(v)
    if v.shape().signed:
        raise TypeError(f"sum_compare: operands must be unsigned, got {v.shape()}")
    return v


def sum_at_most(a, b, c: int) -> Value:
    """1 when ``a + b <= c`` (``a``, ``b`` unsigned values, ``c`` an int >= 0)."""
    a, b = _unsigned(a), _unsigned(b)
    if c < 0:
        raise ValueError(f"sum_at_most: bound must be >= 0, got {c}")
    width = _width(a, b, c)
    return _negative(a, b, -c - 1, width)


def sum_at_least(a, b, c: int) -> Value:
    """1 when ``a + b >= c`` (``a``, ``b`` unsigned values, ``c`` an int)."""
    a, b = _unsigned(a), _unsigned(b)
    if c <= 0:
        return Const(1)
    width = _width(a, b, c)
    return ~_negative(a, b, -c, width)
