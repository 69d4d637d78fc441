"""Shared test data for the softmax unit (pysim and cocotb tests; no tests of its own).

Each *group* is an int64 array (lanes, n) of scores in cfg.num.score; the unit sees it as n beats
(lane k = row k), ``last`` on beat n - 1, and must answer softmax_rows(cfg, group) beat by beat.
"""
from __future__ import annotations

import numpy as np

from sim.config import Config
from sim.fixed import dequantize
from sim.golden.softmax import softmax_rows

__all__ = ["softmax_groups", "group_beats", "expected_beats", "row_sum_error"]


def _clip(cfg: Config, a) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.int64), cfg.num.score.min_int, cfg.num.score.max_int)


def softmax_groups(cfg: Config, lanes: int, max_len: int, rng: np.random.Generator,
                   n_random: int = 6) -> list[tuple[str, np.ndarray]]:
    """Named groups covering the softmax corner cases plus random rows."""
    s = cfg.num.score
    one = 1 << s.frac_bits
    groups = []

    def add(name, rows):
        groups.append((name, _clip(cfg, rows)))

    n = max(2, min(max_len, 9))
    add("equal", np.full((lanes, n), 3 * one + 5))
    add("equal-negative", np.full((lanes, n), -7 * one - 3))
    dom = rng.integers(-2 * one, 2 * one, size=(lanes, n))
    dom[:, n // 2] = 40 * one                 # one value dominates: the others vanish
    add("one-dominant", dom)
    grow = np.tile(np.arange(n) * (3 * one) - 20 * one, (lanes, 1))   # max grows every beat
    add("increasing", grow)
    add("very-negative", rng.integers(s.min_int, s.min_int + 4 * one, size=(lanes, n)))
    mixed = rng.integers(s.min_int, s.max_int + 1, size=(lanes, n))  # full range, huge shifts
    add("full-range", mixed)
    add("length-1", rng.integers(-50 * one, 50 * one, size=(lanes, 1)))
    add("length-1-min", np.full((lanes, 1), s.min_int))
    add("max-length", rng.normal(0, 4 * one, size=(lanes, max_len)).astype(np.int64))
    add("max-length-extremes", np.where(rng.random((lanes, max_len)) < 0.5, s.min_int, s.max_int))
    for k in range(n_random):
        length = int(rng.integers(1, max_len + 1))
        add(f"random-{k}", rng.normal(0, rng.uniform(0.5, 8) * one,
                                      size=(lanes, length)).astype(np.int64))
    return groups


def group_beats(group: np.ndarray) -> list[dict]:
    n = group.shape[1]
    return [{"t": group[:, j].tolist(), "last": int(j == n - 1)} for j in range(n)]


def expected_beats(cfg: Config, group: np.ndarray) -> list[dict]:
    p = softmax_rows(cfg, group)
    n = group.shape[1]
    return [{"p": p[:, j].tolist(), "last": int(j == n - 1)} for j in range(n)]


def row_sum_error(cfg: Config, probs: np.ndarray) -> float:
    """max |sum_j p_j - 1| over rows, after dequantization."""
    return float(np.max(np.abs(dequantize(probs, cfg.num.exp).sum(axis=-1) - 1.0)))
