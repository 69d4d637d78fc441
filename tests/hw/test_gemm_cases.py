"""Shared GEMM test cases (no tests here): random operands with saturation corners, the golden
result, and the engine's stream beats. Used by tests/hw/test_gemm*.py (pysim) and
tests/cocotb/test_gemm_tb.py (Verilator).

Expected values always come from sim/golden (``linear``, ``residual_add``,
``scaled_accumulate``), never from the code under test; ``hw.array.gemm_engine.gemm_streams`` only
orders the inputs into beats.
"""
from __future__ import annotations

import numpy as np

from hw.array.epilogue import EpilogueMode
from hw.array.gemm_engine import gemm_output_beats, gemm_streams
from sim.config import Config
from sim.golden.linear import linear, residual_add, scaled_accumulate

MODES = {"plain": EpilogueMode.PLAIN, "residual": EpilogueMode.RESIDUAL,
         "scaled": EpilogueMode.SCALED}


def _mixed(rng: np.random.Generator, shape, bits: int, signed: bool = True) -> np.ndarray:
    """Integers of every magnitude: a random bit width per element, both extremes included."""
    width = rng.integers(0, bits, size=shape)
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        v = rng.integers(lo, hi + 1, size=shape) >> width
    else:
        lo, hi = 0, (1 << bits) - 1
        v = rng.integers(0, hi + 1, size=shape) >> width
    corners = np.array([lo, hi, 0] if not signed else [lo, hi, 0, -1, 1])
    pick = rng.random(shape) < 0.05
    v = np.where(pick, rng.choice(corners, size=shape), v)
    return v.astype(np.int64)


def make_case(cfg: Config, m: int, k: int, n: int, *, bias: bool, gelu: bool, mode: str,
              rng: np.random.Generator, corners: bool = True) -> dict:
    """One GEMM: operands, command, beats in engine order and the expected output beats.

    With ``corners``, row 0 is all +max activations and row 1 all -max; weight column 0 is all
    +max and column 1 all -max, so those outputs saturate at both ends; column 2 is zero.
    """
    nm = cfg.num
    x = _mixed(rng, (m, k), nm.act.bits)
    w = _mixed(rng, (n, k), nm.weight.bits)
    b = _mixed(rng, (n,), nm.bias.bits) if bias else None
    if corners:
        x[0, :] = nm.act.max_int
        if m > 1:
            x[1, :] = nm.act.min_int
        w[0, :] = nm.weight.max_int
        if n > 1:
            w[1, :] = nm.weight.min_int
        if n > 2:      # a column that stays in range (bias only)
            w[2, :] = 0
    res = score = None
    y = linear(cfg, x, w, b, gelu=gelu)
    if mode == "residual":
        res = _mixed(rng, (m, n), nm.act.bits)
        y = residual_add(cfg, res, y)
    elif mode == "scaled":
        res = _mixed(rng, (m, n), nm.act.bits)
        score = _mixed(rng, (m,), nm.exp.bits, signed=False)
        score[: min(m, 3)] = [nm.exp.max_int, 1 << nm.exp.frac_bits, 0][: min(m, 3)]
        y = scaled_accumulate(cfg, res, y, score)
    beats = gemm_streams(cfg, x, w, b, res, score)
    cmd = dict(m=m, k=k, n=n, bias=int(bias), gelu=int(gelu), mode=MODES[mode])
    return dict(cmd=cmd, x=x, w=w, b=b, res=res, score=score, y=y, beats=beats,
                out_beats=gemm_output_beats(cfg, y))


def res_payloads(case: dict) -> list[dict]:
    """``res`` stream payloads of a case (dicts of x row and score)."""
    bt = case["beats"]
    return [{"x": row, "score": int(s)} for row, s in zip(bt["res_x"], bt["res_score"])]


def cmd_payload(cmd: dict, *, as_int: bool = False) -> dict:
    """The ``cmd`` beat; ``as_int`` turns the mode into its integer (for cocotb / JSON)."""
    out = dict(cmd)
    if as_int:
        out["mode"] = out["mode"].value
    return out
