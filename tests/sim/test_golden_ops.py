"""Golden-model operators against independent float / pure-Python references.

The integer golden model is the RTL's specification; these tests bound its approximation error
against exact math (and print the figures quoted in docs/numerics.md).
"""
import math
from fractions import Fraction

import numpy as np
import pytest

from sim import float_model, golden
from sim.config import get_config, with_changes
from sim.fixed import dequantize, quantize
from sim.golden.layernorm import rsqrt_fixed
from sim.golden.softmax import LOG2E, exp2_fixed

CFG = get_config("tiny")
N = CFG.num


def test_gelu_pwl_over_the_whole_activation_range():
    x = np.arange(N.act.min_int, N.act.max_int + 1)
    err = np.abs(dequantize(golden.gelu_pwl(CFG, x), N.act) - golden.gelu_exact(dequantize(x, N.act)))
    print(f"\nGELU PWL ({N.gelu_segments} segments): max abs err {err.max():.5f}, "
          f"mean {err.mean():.2e} (1 LSB = {N.act.scale})")
    assert err.max() <= N.act.scale          # within one output LSB everywhere
    assert err.mean() < N.act.scale / 8


def test_exp2_against_exact():
    fs = N.score.frac_bits
    x = np.arange(-24 << fs, 1)
    got = dequantize(exp2_fixed(CFG, x), N.exp)
    err = np.abs(got - 2.0 ** (x / (1 << fs)))
    print(f"\nexp2 ({N.exp2_segments} segments): max abs err {err.max():.2e} "
          f"(1 LSB = {N.exp.scale:.2e})")
    assert err.max() < 4 * N.exp.scale
    assert exp2_fixed(CFG, 0) == 1 << N.exp.frac_bits
    with pytest.raises(ValueError, match="<= 0"):
        exp2_fixed(CFG, 1)


def _float_softmax_of_scores(t):
    return float_model.softmax(dequantize(t, N.score) * math.log(2.0))


@pytest.mark.parametrize("seed", range(3))
def test_softmax_rows_random(seed):
    rng = np.random.default_rng(seed)
    t = quantize(rng.normal(0, 6, (64, CFG.model.tokens)), N.score)
    p = dequantize(golden.softmax_rows(CFG, t), N.exp)
    err = np.abs(p - _float_softmax_of_scores(t)).max()
    sums = np.abs(p.sum(axis=1) - 1).max()
    print(f"\nsoftmax seed {seed}: max abs err {err:.2e}, max |row sum - 1| {sums:.2e}")
    assert err < 2e-4
    assert sums < 1e-3


@pytest.mark.parametrize("row", [
    [3.0] * 17,                                    # all equal
    [40.0] + [-3.0] * 16,                          # one dominant value
    [N.score.min_value] * 5 + [N.score.min_value + 1],  # very negative
    [7.25],                                        # length 1
    list(np.linspace(-30, 30, 129)),               # max M3ViT length
])
def test_softmax_rows_corner_cases(row):
    t = quantize(np.array([row]), N.score)
    p = dequantize(golden.softmax_rows(CFG, t), N.exp)
    assert np.abs(p - _float_softmax_of_scores(t)).max() < 2e-4
    assert abs(p.sum() - 1) < 1e-3


def test_attention_head_against_float():
    cfg = with_changes(CFG, model=dict(dim=64, heads=1))  # head dim 64 like M3ViT
    rng = np.random.default_rng(5)
    q, k, v = (quantize(rng.normal(0, s, (cfg.model.tokens, 64)), N.act) for s in (1.5, 1.5, 4))
    got = dequantize(golden.attention_head(cfg, q, k, v), N.act)
    qf, kf, vf = (dequantize(a, N.act) for a in (q, k, v))
    want = float_model.softmax(qf @ kf.T * cfg.model.attn_scale) @ vf
    err = np.abs(got - want)
    print(f"\nattention head: max abs err {err.max():.4f}, mean {err.mean():.2e}")
    assert err.max() < 4 * N.act.scale


def test_rsqrt_relative_error():
    v = np.unique(np.round(np.exp(np.linspace(0, math.log(2.0 ** 50), 100_000))).astype(np.int64))
    y, k = rsqrt_fixed(CFG, v)
    rel = np.abs(y * 2.0 ** -(N.rsqrt_frac + k) * np.sqrt(v) - 1)
    print(f"\nrsqrt (LUT {1 << N.rsqrt_lut_bits} + Newton): max rel err {rel.max():.2e}")
    assert rel.max() < 2e-4


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0, 120.0])
def test_layernorm_against_float(scale):
    rng = np.random.default_rng(7)
    d = CFG.model.dim
    x = quantize(rng.normal(0, scale, (50, d)) + rng.normal(0, scale, (50, 1)), N.act)
    gamma = quantize(1 + rng.normal(0, 0.3, d), N.ln_gamma)
    beta = quantize(rng.normal(0, 0.3, d), N.act)
    got = dequantize(golden.layernorm(CFG, x, gamma, beta), N.act)
    want = float_model.layernorm(dequantize(x, N.act), dequantize(gamma, N.ln_gamma),
                                 dequantize(beta, N.act), CFG.model.ln_eps)
    err = np.abs(got - want).max()
    print(f"\nLayerNorm (row scale {scale}): max abs err {err:.4f}")
    assert err < 0.01


def test_layernorm_constant_rows_give_beta():
    rng = np.random.default_rng(8)
    d = CFG.model.dim
    beta = quantize(rng.normal(0, 1, d), N.act)
    gamma = quantize(rng.normal(1, 1, d), N.ln_gamma)
    x = np.array([[c] * d for c in (0, 1, -1, N.act.max_int, N.act.min_int, 1234)])
    assert np.array_equal(golden.layernorm(CFG, x, gamma, beta), np.broadcast_to(beta, x.shape))


def _py_linear(x, w, b, cfg):
    """Pure-Python integer reference: exact rational rounding half up, then clamp."""
    n = cfg.num
    out = []
    for row in x.tolist():
        r = []
        for j, wrow in enumerate(w.tolist()):
            acc = sum(a * c for a, c in zip(row, wrow)) + int(b[j])
            v = math.floor(Fraction(acc, 1 << (n.acc_frac - n.act.frac_bits)) + Fraction(1, 2))
            r.append(min(max(v, n.act.min_int), n.act.max_int))
        out.append(r)
    return np.array(out)


def test_linear_bit_exact_against_python_ints():
    rng = np.random.default_rng(9)
    m, k, n = 7, 13, 5
    x = rng.integers(N.act.min_int, N.act.max_int + 1, (m, k))
    x[0] = N.act.max_int            # saturating rows, both signs
    x[1] = N.act.min_int
    w = rng.integers(N.weight.min_int, N.weight.max_int + 1, (n, k))
    b = rng.integers(N.bias.min_int, N.bias.max_int + 1, n)
    assert np.array_equal(golden.linear(CFG, x, w, b), _py_linear(x, w, b, CFG))


def test_scaled_accumulate_and_residual():
    x = np.array([[100, -100, N.act.max_int, N.act.min_int]])
    y = np.array([[3, -3, 5, -5]])
    one = 1 << N.exp.frac_bits
    half = one // 2
    # 3 * 0.5 = 1.5 rounds half up to 2; -1.5 rounds to -1; saturation at both ends.
    assert golden.scaled_accumulate(CFG, x, y, np.array([half])).tolist() == \
        [[102, -101, N.act.max_int, N.act.min_int]]
    assert golden.residual_add(CFG, x, y).tolist() == [[103, -103, N.act.max_int, N.act.min_int]]
    assert golden.scaled_accumulate(CFG, x, y, np.array([one])).tolist() == \
        golden.residual_add(CFG, x, y).tolist()


def test_top_k_ties_go_to_the_lowest_index():
    rng = np.random.default_rng(10)
    s = rng.integers(-3, 3, (200, 6))           # many ties
    got = golden.top_k(s, 3)
    for row, idx in zip(s.tolist(), got.tolist()):
        want = sorted(range(6), key=lambda e: (-row[e], e))[:3]
        assert idx == want


def test_router_probabilities_and_queues():
    rng = np.random.default_rng(11)
    m = CFG.model
    xn = quantize(rng.normal(0, 1, (m.tokens, m.dim)), N.act)
    gate = quantize(rng.normal(0, m.dim ** -0.5, (m.experts, m.dim)), N.weight)
    r = golden.route(CFG, xn, gate)
    logits = dequantize(xn, N.act) @ dequantize(gate, N.weight).T
    probs = float_model.softmax(logits)
    assert np.abs(dequantize(r.probs, N.exp) - probs).max() < 2e-3
    queues = golden.expert_queues(CFG, r)
    assert [q.expert for q in queues] == sorted({int(e) for e in r.experts.ravel()})
    assert sum(q.tokens.size for q in queues) == m.tokens * m.top_k
    for q in queues:
        assert np.all(np.diff(q.tokens) > 0)
        assert np.all((r.experts[q.tokens] == q.expert).any(axis=1))
