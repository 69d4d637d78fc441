"""Fixed-point numerics: the one place that defines Q-formats, rounding and saturation.

Both the integer golden model (numpy, here) and the RTL generators (Amaranth helpers at the bottom
of this file) use these definitions, so a rounding rule can never differ between the two.

Conventions (see docs/numerics.md):
- ``QFormat(int_bits, frac_bits)``: two's complement, ``int_bits`` *includes* the sign bit, so Q8.8
  is 16 bits wide and covers [-128, 128 - 2^-8].
- Every narrowing step is *round-half-up* (add half an LSB, arithmetic shift right, i.e. floor)
  followed by *saturation* to the destination range. Nothing wraps silently.
- Integer values are carried as numpy ``int64``; helpers check that they stay inside 63 bits.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "QFormat", "quantize", "dequantize", "saturate", "saturate_bits", "rshift_round",
    "requantize", "exact_int_matmul", "hw_rshift_round", "hw_saturate", "hw_requantize",
    "SaturationProbe", "saturation_scope",
]


@dataclass(frozen=True)
class QFormat:
    """Signed (or unsigned) fixed-point format Qm.f: ``int_bits`` (incl. sign) + ``frac_bits``."""

    int_bits: int
    frac_bits: int
    signed: bool = True

    def __post_init__(self):
        if self.frac_bits < 0:
            raise ValueError(f"QFormat: frac_bits must be >= 0, got {self.frac_bits}")
        if self.bits < 1 or (self.signed and self.int_bits < 1):
            raise ValueError(f"QFormat: needs at least one integer (sign) bit, got {self}")
        if self.bits > 62:
            raise ValueError(f"QFormat: {self.bits} bits do not fit the int64 golden model")

    @property
    def bits(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def min_int(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def scale(self) -> float:
        """Value of one LSB."""
        return 2.0 ** -self.frac_bits

    @property
    def max_value(self) -> float:
        return self.max_int * self.scale

    @property
    def min_value(self) -> float:
        return self.min_int * self.scale

    @property
    def storage_bytes(self) -> int:
        """Bytes per value in the weight image and in external memory (little-endian)."""
        return 1 << max(0, (self.bits - 1).bit_length() - 3) if self.bits > 8 else 1

    @property
    def numpy_dtype(self):
        """Storage dtype for the weight image."""
        return np.dtype(f"<{'i' if self.signed else 'u'}{self.storage_bytes}")

    def __str__(self) -> str:
        return f"{'' if self.signed else 'U'}Q{self.int_bits}.{self.frac_bits}"

    def to_dict(self) -> dict:
        return {"int_bits": self.int_bits, "frac_bits": self.frac_bits, "signed": self.signed}

    @classmethod
    def from_dict(cls, d: dict) -> "QFormat":
        return cls(int(d["int_bits"]), int(d["frac_bits"]), bool(d.get("signed", True)))


def _as_int64(x) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iub":
        raise TypeError(f"expected an integer array, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def saturate_bits(x, bits: int, signed: bool = True) -> np.ndarray:
    """Clamp integers to the range of a ``bits``-wide (signed) integer."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return np.clip(_as_int64(x), lo, hi)


def saturate(x, fmt: QFormat) -> np.ndarray:
    """Clamp integers to the range of ``fmt``."""
    x = _as_int64(x)
    y = np.clip(x, fmt.min_int, fmt.max_int)
    if _PROBES:
        _PROBES[-1].record(fmt, x.size, int(np.count_nonzero(y != x)))
    return y


@dataclass
class SaturationProbe:
    """Counts the values :func:`saturate` clips while it is active (``with probe:``).

    Counts are kept per (scope, format): the scope is the innermost :func:`saturation_scope`
    (the golden model names every layer), so a report can say which tensor hit the rail. Every
    rounding point of the golden model ends in :func:`saturate`, so nothing is missed. Inactive
    probes cost nothing; only the innermost active probe counts.
    """
    counts: dict = field(default_factory=dict)    # (scope, format str) -> [clipped, total]
    _scope: list = field(default_factory=list)

    def record(self, fmt: QFormat, total: int, clipped: int) -> None:
        key = (".".join(self._scope) or "-", str(fmt))
        c = self.counts.setdefault(key, [0, 0])
        c[0] += clipped
        c[1] += total

    @property
    def clipped(self) -> int:
        return sum(c for c, _ in self.counts.values())

    def __enter__(self) -> "SaturationProbe":
        _PROBES.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _PROBES.remove(self)


_PROBES: list[SaturationProbe] = []


@contextmanager
def saturation_scope(name: str):
    """Name the tensor being computed, for an active :class:`SaturationProbe` (no-op otherwise)."""
    probe = _PROBES[-1] if _PROBES else None
    if probe is not None:
        probe._scope.append(name)
    try:
        yield
    finally:
        if probe is not None:
            probe._scope.pop()


def quantize(x, fmt: QFormat, return_saturated: bool = False):
    """Float -> integer in ``fmt``: round half up (floor(x * 2^f + 1/2)), then saturate.

    Exact for every float64: x * 2^f is exact (a power-of-two scale), and the half is compared,
    not added, so neither 0.5 - 2^-54 nor integers above 2^52 are rounded by the float adder.
    With ``return_saturated`` also returns how many values were clipped.
    """
    scaled = np.asarray(x, dtype=np.float64) * (2.0 ** fmt.frac_bits)
    if not np.all(np.isfinite(scaled)):
        raise ValueError("quantize: input contains NaN or infinity")
    r = np.floor(scaled)
    r = r + ((scaled - r) >= 0.5)
    # Compare against exact powers of two: float(max_int) would round up for formats > 53 bits.
    hi = 2.0 ** (fmt.bits - 1) if fmt.signed else 2.0 ** fmt.bits
    lo = -hi if fmt.signed else 0.0
    over, under = r >= hi, r < lo
    q = np.where(over | under, 0.0, r).astype(np.int64)
    q = np.where(over, fmt.max_int, np.where(under, fmt.min_int, q))
    if return_saturated:
        return q, int(np.count_nonzero(over | under))
    return q


def dequantize(q, fmt: QFormat) -> np.ndarray:
    return _as_int64(q).astype(np.float64) * fmt.scale


def rshift_round(x, n) -> np.ndarray:
    """Arithmetic shift right by ``n`` with round-half-up; ``n`` may be an array; ``n < 0`` shifts left.

    round-half-up: floor((x + 2^(n-1)) / 2^n). This is what the RTL does: add a constant, then
    drop the low bits (the arithmetic shift floors).
    """
    x = _as_int64(x)
    n = np.asarray(n, dtype=np.int64)
    pos = np.maximum(n, 0)
    if np.any(pos > 62) or np.any(x > np.iinfo(np.int64).max - (1 << 61)):
        return _rshift_round_exact(x, n)   # rare: shifts past the word, or x near the limit
    half = np.where(pos > 0, np.left_shift(np.int64(1), np.maximum(pos - 1, 0)), 0)
    right = np.right_shift(x + half, pos)
    left = np.left_shift(x, np.maximum(-n, 0))
    return np.where(n >= 0, right, left)


def _rshift_round_exact(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """rshift_round with Python integers (no wrap, any shift)."""
    xb, nb = np.broadcast_arrays(x, n)
    out = [(a + (1 << (b - 1))) >> b if b > 0 else a << -b
           for a, b in zip(xb.ravel().tolist(), nb.ravel().tolist())]
    if any(not -(1 << 63) <= v < (1 << 63) for v in out):
        raise OverflowError("rshift_round: result does not fit in int64")
    return np.array(out, dtype=np.int64).reshape(xb.shape)


def requantize(acc, from_frac: int, fmt: QFormat) -> np.ndarray:
    """Narrow an integer with ``from_frac`` fraction bits to ``fmt``: round half up, saturate."""
    return saturate(rshift_round(acc, from_frac - fmt.frac_bits), fmt)


def exact_int_matmul(a, b) -> np.ndarray:
    """Integer matrix product, computed with float64 BLAS when that is provably exact.

    float64 holds every integer below 2^53 exactly; if max|a| * max|b| * K < 2^53 every partial sum
    is exact, whatever the summation order. Otherwise falls back to (slow) int64 numpy.
    """
    a = _as_int64(a)
    b = _as_int64(b)
    k = a.shape[-1]
    amax = int(np.max(np.abs(a), initial=0))
    bmax = int(np.max(np.abs(b), initial=0))
    if amax * bmax * max(k, 1) < (1 << 53):
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    if amax * bmax * max(k, 1) >= (1 << 63):
        raise OverflowError("exact_int_matmul: dot products may exceed int64")
    return a @ b


# --------------------------------------------------------------------------------------------
# Amaranth generators of the same operations. Imported lazily so numpy-only users do not pay
# for Amaranth at import time.
# --------------------------------------------------------------------------------------------

def round_half(n: int) -> int:
    """What round half up adds before an arithmetic right shift by ``n``: half of the result's
    LSB (0 when ``n <= 0``: nothing is shifted out)."""
    return 1 << (n - 1) if n > 0 else 0


def hw_rshift_round(value, n: int):
    """Amaranth expression: ``value`` (signed) shifted right by constant ``n`` with round-half-up.

    The result is one bit wider than ``value`` minus ``n`` so that the +half cannot overflow.
    """
    if n <= 0:
        return value << (-n)
    # Amaranth arithmetic widens by one bit, so adding half an LSB cannot overflow, and >> on a
    # signed value is arithmetic (floor), exactly like numpy's right_shift.
    return (value + round_half(n)) >> n


def hw_add_rshift_round(x, value, n: int):
    """Amaranth expression: ``x + hw_rshift_round(value, n)`` (signed ``x``) as one adder.

    ``x * 2^n + half`` has zeros below the half, so it is a concatenation, and
    ``floor((value + x 2^n + half) / 2^n) = x + floor((value + half) / 2^n)``: one carry chain
    instead of the rounding add and the ``x`` add in series.
    """
    from amaranth.hdl import Cat, Const, Value

    if n <= 0:
        return x + hw_rshift_round(value, n)
    return (value + Cat(Const(1 << (n - 1), n), Value.cast(x)).as_signed()) >> n


def hw_saturate(value, fmt: QFormat):
    """Amaranth expression: clamp signed ``value`` to ``fmt`` and return it with ``fmt``'s width."""
    from amaranth.hdl import Mux, Const, Value, signed

    v = Value.cast(value)
    if fmt.signed and v.shape().signed and len(v) > fmt.bits:
        # In range iff the bits from fmt's sign bit up are all equal: an AND/OR over them, no
        # magnitude compares (two carry chains in front of the clamp mux, e.g. the epilogue's
        # output stage on the ULX3S).
        top = v[fmt.bits - 1:]
        fits = top.all() | ~top.any()
        shape = signed(fmt.bits)
        clamp = Mux(v[-1], Const(fmt.min_int, shape), Const(fmt.max_int, shape))
        return Mux(fits, v[: fmt.bits].as_signed(), clamp)
    lo = Const(fmt.min_int, signed(fmt.bits + 1))
    hi = Const(fmt.max_int, signed(fmt.bits + 1))
    v = value           # Amaranth compares mixed signedness correctly; never reinterpret bits
    clamped = Mux(v > hi, hi, Mux(v < lo, lo, v))
    return clamped.as_signed()[: fmt.bits].as_signed() if fmt.signed else clamped[: fmt.bits].as_unsigned()


def hw_requantize(acc, from_frac: int, fmt: QFormat):
    """Amaranth expression matching :func:`requantize` (round half up, then saturate)."""
    return hw_saturate(hw_rshift_round(acc, from_frac - fmt.frac_bits), fmt)


def hw_requantize_prerounded(acc, from_frac: int, fmt: QFormat):
    """:func:`hw_requantize` of ``acc - round_half(from_frac - fmt.frac_bits)``: for an ``acc``
    that already carries the rounding half (e.g. added to a bias ahead of time), only the
    shift (floor) and the saturation, no rounding add."""
    n = from_frac - fmt.frac_bits
    return hw_saturate(acc >> n if n > 0 else acc << (-n), fmt)
