"""Task-conditioned top-k router and per-expert token queues: bit-exact definitions.

Gate logits come from a bias-free GEMM on LN2(x) (activation format), are mapped to the log2
domain (times log2 e) in the score format, pass through the online exp2 softmax, and the top-k
experts are picked on the score-format logits (ties: lowest expert index first). The kept scores
are the softmax probabilities of the chosen experts, *not* renormalized.

The patch-reorder view groups tokens by expert: experts in ascending index order, only those with
at least one token, each with its tokens in ascending token order and their scores.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.config import Config
from sim.golden.linear import linear
from sim.golden.softmax import LOG2E, softmax_rows, to_score

__all__ = ["Routing", "ExpertQueue", "route", "top_k", "expert_queues"]


@dataclass(frozen=True)
class Routing:
    logits: np.ndarray   # (tokens, experts) activation format
    scores_log2: np.ndarray  # (tokens, experts) score format
    probs: np.ndarray    # (tokens, experts) exp format
    experts: np.ndarray  # (tokens, k) chosen expert indices, best first
    weights: np.ndarray  # (tokens, k) their probabilities (exp format)


@dataclass(frozen=True)
class ExpertQueue:
    expert: int
    tokens: np.ndarray   # ascending token indices
    weights: np.ndarray  # matching router probabilities (exp format)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries per row, largest first, ties to the lowest index."""
    return np.argsort(-np.asarray(scores, dtype=np.int64), axis=-1, kind="stable")[..., :k]


def route(cfg: Config, xn, gate_w) -> Routing:
    """Route normalized tokens ``xn`` (tokens, dim) with one task's gate weights (experts, dim)."""
    logits = linear(cfg, xn, gate_w)
    t = to_score(cfg, logits, cfg.num.act.frac_bits, LOG2E)
    probs = softmax_rows(cfg, t)
    chosen = top_k(t, cfg.model.top_k)
    return Routing(logits, t, probs, chosen, np.take_along_axis(probs, chosen, axis=-1))


def expert_queues(cfg: Config, routing: Routing) -> list[ExpertQueue]:
    """Per-expert token queues in the order the hardware processes them."""
    queues = []
    for e in range(cfg.model.experts):
        tok, slot = np.nonzero(routing.experts == e)
        if tok.size:
            queues.append(ExpertQueue(e, tok, routing.weights[tok, slot]))
    return queues
