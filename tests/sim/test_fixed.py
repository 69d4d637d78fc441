"""Property tests of sim/fixed.py against exact rational (Python int / Fraction) references.

Seeded and randomized; the seed is printed on failure (``EDGE_MOE_SEED=<n>`` replays it, see
tests/harness/seeds.py). The regression tests at the end pin defects found and fixed in review
(float rounding near a half and above 2^52, wide-format saturation, shifts past 62 bits).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from sim.fixed import QFormat, dequantize, exact_int_matmul, quantize, requantize, \
    rshift_round, saturate, saturate_bits
from tests.harness.seeds import np_rng, rng, seed  # noqa: F401  (pytest fixtures)

FORMATS = [QFormat(8, 8), QFormat(8, 10), QFormat(2, 14), QFormat(10, 22), QFormat(6, 10),
           QFormat(1, 15, signed=False), QFormat(1, 0), QFormat(16, 0), QFormat(1, 30),
           QFormat(20, 32), QFormat(4, 4, signed=False)]
FMT_IDS = [str(f) for f in FORMATS]


def exact_round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def clamp(v: int, fmt: QFormat) -> int:
    return min(fmt.max_int, max(fmt.min_int, v))


def _float_samples(fmt: QFormat, np_rng, n: int = 600) -> np.ndarray:
    """Uniform over 1.5x the range, log-uniform magnitudes, exact ties and ties +- 1 ulp."""
    lo, hi = fmt.min_value, fmt.max_value
    span = max(hi - lo, 1.0)
    uni = np_rng.uniform(lo - 0.25 * span, hi + 0.25 * span, n)
    mags = np.exp2(np_rng.uniform(-fmt.frac_bits - 4, fmt.int_bits + 2, n)) * \
        np_rng.choice([-1.0, 1.0], n)
    k = np_rng.integers(fmt.min_int, fmt.max_int + 1, n)
    ties = (k.astype(np.float64) + 0.5) * fmt.scale
    ties = np.concatenate([ties, -ties])
    near = np.concatenate([np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf)])
    edges = np.array([lo, hi, lo - fmt.scale, hi + fmt.scale, lo - fmt.scale / 2,
                      hi + fmt.scale / 2, 0.0, -0.0, fmt.scale / 2, -fmt.scale / 2])
    return np.concatenate([uni, mags, ties, near, edges])


# --------------------------------------------------------------------------------------------
# QFormat
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_qformat_ranges_and_storage(fmt):
    assert fmt.bits == fmt.int_bits + fmt.frac_bits
    if fmt.signed:
        assert (fmt.min_int, fmt.max_int) == (-(1 << (fmt.bits - 1)), (1 << (fmt.bits - 1)) - 1)
    else:
        assert (fmt.min_int, fmt.max_int) == (0, (1 << fmt.bits) - 1)
    assert fmt.max_value == fmt.max_int * 2.0 ** -fmt.frac_bits
    assert fmt.storage_bytes in (1, 2, 4, 8) and fmt.storage_bytes * 8 >= fmt.bits
    assert fmt.storage_bytes == 1 or fmt.storage_bytes * 4 < fmt.bits
    info = np.iinfo(fmt.numpy_dtype)
    assert info.min <= fmt.min_int and fmt.max_int <= info.max
    assert QFormat.from_dict(fmt.to_dict()) == fmt


@pytest.mark.parametrize("args", [(8, -1), (0, 8), (40, 23)])
def test_qformat_rejects_bad_formats(args):
    with pytest.raises(ValueError):
        QFormat(*args)


# --------------------------------------------------------------------------------------------
# quantize / dequantize / saturate
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_quantize_is_exact_round_half_up_then_saturate(fmt, seed, np_rng):
    x = _float_samples(fmt, np_rng)
    q, nsat = quantize(x, fmt, return_saturated=True)
    assert q.dtype == np.int64 and q.shape == x.shape
    want_unclamped = [exact_round_half_up(Fraction(float(v)) * 2 ** fmt.frac_bits) for v in x]
    want = [clamp(v, fmt) for v in want_unclamped]
    bad = [i for i in range(len(x)) if int(q[i]) != want[i]]
    assert not bad, (f"{fmt}: quantize({x[bad[0]]!r}) = {q[bad[0]]}, exact {want[bad[0]]} "
                     f"({len(bad)} bad) [seed={seed}]")
    assert nsat == sum(1 for a, b in zip(want_unclamped, want) if a != b), f"seed={seed}"


@pytest.mark.parametrize("fmt", [QFormat(8, 8), QFormat(1, 15, signed=False), QFormat(20, 32)],
                         ids=str)
def test_quantize_ties_go_up(fmt):
    k = np.arange(fmt.min_int, fmt.max_int, max(1, (fmt.max_int - fmt.min_int) // 5000))
    x = (k.astype(np.float64) + 0.5) * fmt.scale
    assert np.array_equal(quantize(x, fmt), np.minimum(k + 1, fmt.max_int))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rejects_non_finite(bad):
    with pytest.raises(ValueError):
        quantize(np.array([0.0, bad]), QFormat(8, 8))


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_dequantize_round_trip(fmt, seed, np_rng):
    q = np_rng.integers(fmt.min_int, fmt.max_int, 2000, endpoint=True)
    assert np.array_equal(quantize(dequantize(q, fmt), fmt), q), f"seed={seed}"
    x = np_rng.uniform(fmt.min_value, fmt.max_value, 2000)
    err = np.abs(dequantize(quantize(x, fmt), fmt) - x)
    assert err.max() <= fmt.scale / 2, f"seed={seed}"


@pytest.mark.parametrize("fmt", FORMATS, ids=FMT_IDS)
def test_saturate_clamps_to_the_format(fmt, seed, rng):
    vals = [rng.randrange(-(1 << 62), 1 << 62) >> rng.randrange(63) for _ in range(500)]
    vals += [fmt.min_int, fmt.max_int, fmt.min_int - 1, fmt.max_int + 1, 0, -1]
    got = saturate(np.array(vals, dtype=np.int64), fmt)
    assert got.tolist() == [clamp(v, fmt) for v in vals], f"seed={seed}"
    got = saturate_bits(np.array(vals, dtype=np.int64), fmt.bits, fmt.signed)
    assert got.tolist() == [clamp(v, fmt) for v in vals], f"seed={seed}"


def test_integer_helpers_reject_floats():
    with pytest.raises(TypeError):
        saturate(np.array([1.5]), QFormat(8, 8))
    with pytest.raises(TypeError):
        rshift_round(np.array([1.5]), 1)


# --------------------------------------------------------------------------------------------
# rshift_round / requantize
# --------------------------------------------------------------------------------------------


def _ints63(rng, n):
    """Signed ints of every magnitude inside 63 bits (the documented domain)."""
    return [rng.randrange(-(1 << 62), 1 << 62) >> rng.randrange(63) for _ in range(n)]


def test_rshift_round_matches_exact_rational(seed, rng):
    xs = _ints63(rng, 3000)
    ns = [rng.randrange(0, 63) for _ in xs]
    got = rshift_round(np.array(xs, dtype=np.int64), np.array(ns, dtype=np.int64))
    for x, n, g in zip(xs, ns, got.tolist()):
        assert g == exact_round_half_up(Fraction(x, 1 << n)), f"x={x} n={n} -> {g} [seed={seed}]"


def test_rshift_round_negative_shift_is_exact_left_shift(seed, rng):
    for _ in range(1000):
        n = -rng.randrange(1, 20)
        x = rng.randrange(-(1 << (62 + n)), 1 << (62 + n))
        assert int(rshift_round(np.int64(x), n)) == x << -n, f"x={x} n={n} [seed={seed}]"


@pytest.mark.parametrize("n", [1, 2, 5, 14, 30])
def test_rshift_round_ties_go_up(n):
    k = np.arange(-1000, 1000, dtype=np.int64)
    x = (2 * k + 1) << (n - 1)       # exactly (k + 1/2) * 2^n
    assert np.array_equal(rshift_round(x, n), k + 1)
    assert np.array_equal(rshift_round(x - 1, n), k)


REQUANT_CASES = [(22, QFormat(8, 8)), (26, QFormat(8, 10)), (16, QFormat(1, 15, signed=False)),
                 (10, QFormat(8, 8)), (8, QFormat(8, 8)), (4, QFormat(4, 8)), (0, QFormat(16, 0)),
                 (31, QFormat(10, 10))]


@pytest.mark.parametrize("from_frac,fmt", REQUANT_CASES,
                         ids=[f"{a}->{f}" for a, f in REQUANT_CASES])
def test_requantize_matches_exact_and_float_reference(from_frac, fmt, seed, rng):
    """requantize == saturate(round_half_up(acc / 2^from_frac)) == quantize(float(acc) ...)."""
    accs = [rng.randrange(-(1 << 47), 1 << 47) >> rng.randrange(48) for _ in range(2000)]
    s = from_frac - fmt.frac_bits
    if s > 0:   # rounding boundaries of the output range and ties
        for k in (fmt.max_int, fmt.min_int, 0, 1, -1, 7):
            accs += [(k << s) + (1 << (s - 1)) + d for d in (-1, 0, 1)]
    a = np.array(accs, dtype=np.int64)
    got = requantize(a, from_frac, fmt)
    want = [clamp(exact_round_half_up(Fraction(v) / Fraction(2) ** s), fmt) for v in accs]
    assert got.tolist() == want, f"seed={seed}"
    # |acc| < 2^53: the float path is exact and must agree with the integer path
    assert np.array_equal(quantize(a.astype(np.float64) * 2.0 ** -from_frac, fmt), got), \
        f"seed={seed}"


def test_requantize_is_monotonic(seed, rng):
    accs = np.array(sorted(rng.randrange(-(1 << 47), 1 << 47) >> rng.randrange(48)
                           for _ in range(3000)), dtype=np.int64)
    out = requantize(accs, 22, QFormat(8, 8))
    assert np.all(np.diff(out) >= 0), f"seed={seed}"


# --------------------------------------------------------------------------------------------
# exact_int_matmul
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [16, 28])   # float64 fast path / int64 fallback
def test_exact_int_matmul_matches_python_ints(bits, seed, np_rng):
    hi = 1 << (bits - 1)
    a = np_rng.integers(-hi, hi, (5, 7))
    b = np_rng.integers(-hi, hi, (7, 3))
    want = [[sum(int(a[i, k]) * int(b[k, j]) for k in range(7)) for j in range(3)]
            for i in range(5)]
    assert exact_int_matmul(a, b).tolist() == want, f"seed={seed}"


def test_exact_int_matmul_refuses_int64_overflow():
    a = np.full((1, 4), 1 << 31, dtype=np.int64)
    with pytest.raises(OverflowError):
        exact_int_matmul(a, a.T)


# --------------------------------------------------------------------------------------------
# Regression tests of fixed defects
# --------------------------------------------------------------------------------------------


def test_quantize_just_below_half():
    x = np.nextafter(0.5, 0.0)
    assert int(quantize(x, QFormat(8, 0))) == 0
    assert int(quantize(x / 256, QFormat(8, 8))) == 0


def test_quantize_large_odd_integers():
    fmt = QFormat(60, 0)
    assert int(quantize(float(2 ** 52 + 1), fmt)) == 2 ** 52 + 1


def test_quantize_saturates_wide_formats():
    fmt = QFormat(2, 60)
    assert int(quantize(1e30, fmt)) == fmt.max_int
    assert int(quantize(-1e30, fmt)) == fmt.min_int


def test_rshift_round_shift_beyond_62():
    for x, n in [(1 << 61, 63), (-(1 << 62), 63), ((1 << 62) - 1, 70), (-(1 << 61), 64)]:
        assert int(rshift_round(np.int64(x), n)) == exact_round_half_up(Fraction(x, 1 << n))


def test_saturation_probe_counts_clipped_values_per_scope():
    from sim.fixed import SaturationProbe, saturation_scope
    fmt = QFormat(4, 4)
    rng = np.random.default_rng(7)
    a = rng.integers(-400, 400, 1000)
    b = rng.integers(-100, 100, 50)
    saturate(a, fmt)                                   # no probe: nothing recorded anywhere
    with SaturationProbe() as probe:
        with saturation_scope("outer"):
            saturate(a, fmt)
            with saturation_scope("inner"):
                saturate(b, fmt)
        saturate(b, QFormat(8, 0))
    want_a = int(np.count_nonzero((a > fmt.max_int) | (a < fmt.min_int)))
    want_b = int(np.count_nonzero((b > fmt.max_int) | (b < fmt.min_int)))
    assert probe.counts == {("outer", "Q4.4"): [want_a, 1000],
                            ("outer.inner", "Q4.4"): [want_b, 50],
                            ("-", "Q8.0"): [0, 50]}
    assert probe.clipped == want_a + want_b > 0
    with saturation_scope("x"):                        # inactive probe: scopes are no-ops
        saturate(a, fmt)
    assert probe.clipped == want_a + want_b
