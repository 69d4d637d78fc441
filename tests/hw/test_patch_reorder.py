"""Patch reorder unit (hw/moe/patch_reorder.py) in pysim: list and queues vs golden expert_queues.

Random routings (skewed so some experts get many tokens and some none; also routings produced by
the golden router from tied logits) for several frames in a row, with random valid gaps on the
routing input, random back-pressure on the expert list and the queue output, and queues requested
in random order (some twice). Shared with the cocotb test (tests/cocotb/test_reorder_tb.py).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from hw.moe.patch_reorder import PatchReorder
from sim.config import Config
from sim.golden.router import Routing, expert_queues
from host.pysim import run_pysim, stream_recv, stream_send
from tests.harness.configs import reorder_configs
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.hw.test_router import router_expected, router_logits

__all__ = ["random_routing", "routing_beats", "golden_list", "golden_queue"]


def random_routing(cfg: Config, rng: random.Random, tokens: int | None = None) -> tuple:
    """(experts (T, k), weights (T, k)) of one frame: skewed choices, sometimes via the router."""
    m = cfg.model
    T = m.tokens if tokens is None else tokens
    if rng.random() < 0.3:      # the golden router on random (often tied) logits
        logits = router_logits(cfg, rng, T)
        beats = [{"token": i, "last": 0} for i in range(T)]
        got = router_expected(cfg, logits, beats)
        return (np.array([g["experts"] for g in got]), np.array([g["weights"] for g in got]))
    # Popularity skew: a random subset of experts is never used (at least k remain).
    used = rng.sample(range(m.experts), rng.randint(m.top_k, m.experts))
    pop = [rng.random() ** 3 + 1e-3 for _ in used]
    ex = []
    for _ in range(T):
        pick = []
        while len(pick) < m.top_k:
            e = rng.choices(used, pop)[0]
            if e not in pick:
                pick.append(e)
        ex.append(pick)
    w = [[rng.randrange(1 << cfg.num.exp.bits) for _ in range(m.top_k)] for _ in range(T)]
    return np.array(ex), np.array(w)


def routing_beats(experts, weights) -> list[dict]:
    T = len(experts)
    return [{"token": t, "last": int(t == T - 1), "experts": experts[t].tolist(),
             "weights": weights[t].tolist()} for t in range(T)]


def _queues(cfg, experts, weights):
    T = len(experts)
    r = Routing(np.zeros((T, cfg.model.experts)), None, None, np.asarray(experts),
                np.asarray(weights))
    return expert_queues(cfg, r)


def golden_list(cfg, experts, weights) -> list[dict]:
    qs = _queues(cfg, experts, weights)
    return [{"expert": q.expert, "count": len(q.tokens), "last": int(i == len(qs) - 1)}
            for i, q in enumerate(qs)]


def golden_queue(cfg, experts, weights, e) -> list[dict]:
    for q in _queues(cfg, experts, weights):
        if q.expert == e:
            n = len(q.tokens)
            return [{"token": int(t), "weight": int(w), "last": int(i == n - 1)}
                    for i, (t, w) in enumerate(zip(q.tokens, q.weights))]
    return []


@pytest.mark.parametrize("cfg", reorder_configs())
def test_patch_reorder_frames(cfg, seed):
    rng = random.Random(seed)
    frames = [random_routing(cfg, rng, tokens=rng.choice([cfg.model.tokens,
                                                          rng.randint(1, cfg.model.tokens)]))
              for _ in range(3)]
    dut = PatchReorder(cfg)
    log = []

    async def bench(ctx):
        for f, (ex, w) in enumerate(frames):
            beats = routing_beats(ex, w)
            await stream_send(ctx, dut.i, beats, rng=rng, valid_prob=0.6)
            want = golden_list(cfg, ex, w)
            got = await stream_recv(ctx, dut.experts, len(want), rng=rng, ready_prob=0.5)
            assert got == want, f"frame {f}: expert list {got} != golden {want} [seed={seed}]"
            order = [x["expert"] for x in want] + rng.sample([x["expert"] for x in want],
                                                             min(2, len(want)))
            rng.shuffle(order)
            for e in order:
                await stream_send(ctx, dut.q_req, [{"expert": e}], rng=rng, valid_prob=0.5)
                qw = golden_queue(cfg, ex, w, e)
                qg = await stream_recv(ctx, dut.q, len(qw), rng=rng, ready_prob=0.6)
                assert qg == qw, f"frame {f} expert {e}: queue differs [seed={seed}]\n" \
                                 f"  got  {qg}\n  want {qw}"
            assert not ctx.get(dut.overflow)
            log.append(f)

    run_pysim(dut, [bench], deadline_cycles=60_000)
    assert log == list(range(len(frames)))


def test_patch_reorder_timing(seed):
    """Full rate: k cycles per routing beat, list right after, queues at one entry per cycle."""
    cfg = Config.tiny()
    rng = random.Random(seed)
    ex, w = random_routing(cfg, rng)
    beats = routing_beats(ex, w)
    want = golden_list(cfg, ex, w)
    dut = PatchReorder(cfg)
    K = cfg.model.top_k

    async def bench(ctx):
        acc = []
        await stream_send(ctx, dut.i, beats, accepted_cycles=acc)
        assert np.all(np.diff(acc) == K), f"routing beats accepted at {acc} [seed={seed}]"
        t = []
        got = await stream_recv(ctx, dut.experts, len(want), transfer_cycles=t)
        assert got == want
        # The last beat's k entries are written on the k edges after its accept edge; the list's
        # first beat is then valid and transfers on the next edge.
        assert t == list(range(K + 1, K + 1 + len(want))), f"list transfers at {t}"
        e = want[0]["expert"]
        await stream_send(ctx, dut.q_req, [{"expert": e}])
        t = []
        qg = await stream_recv(ctx, dut.q, want[0]["count"], transfer_cycles=t)
        assert qg == golden_queue(cfg, ex, w, e)
        assert t == list(range(1, 1 + len(qg))), f"queue transfers at {t}"

    run_pysim(dut, [bench], deadline_cycles=5_000)
