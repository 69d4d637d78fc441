"""Router (hw/moe/router.py) in pysim: bit-exact vs the golden to_score -> softmax_rows -> top_k.

Random gate logits mixing realistic spreads, exact ties, all-equal rows and the activation
range's extremes, streamed with random valid gaps and random back-pressure; plus a full-rate run
that checks the throughput and latency the docstring states. The vector generator and the golden
expectation are shared with the cocotb test (tests/cocotb/test_router_tb.py).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from hw.moe.router import Router
from sim.config import Config
from sim.golden.router import top_k
from sim.golden.softmax import LOG2E, softmax_rows, to_score
from host.pysim import StreamDriver, StreamMonitor, run_pysim
from tests.harness.configs import router_configs
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from host.streams import assert_beats_equal


def router_logits(cfg: Config, rng: random.Random, count: int) -> np.ndarray:
    """(count, E) gate logits in the activation format: realistic, tied and extreme rows."""
    act, E = cfg.num.act, cfg.model.experts
    one = 1 << act.frac_bits
    rows = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.35:      # realistic spread (gate logits up to ~34 on the real checkpoint)
            sd = rng.choice([0.5, 2.0, 8.0])
            row = [round(rng.gauss(0.0, sd) * one) for _ in range(E)]
        elif kind < 0.6:     # few distinct values: exact ties in t and in the top-k
            vals = [rng.randrange(act.min_int, act.max_int + 1) >> rng.randrange(8)
                    for _ in range(rng.randint(1, 3))]
            row = [rng.choice(vals) for _ in range(E)]
        elif kind < 0.7:     # every logit equal
            row = [rng.randrange(act.min_int, act.max_int + 1)] * E
        elif kind < 0.8:     # extremes of the format
            row = [rng.choice([act.min_int, act.max_int, 0, -1, 1]) for _ in range(E)]
        else:                # anything
            row = [rng.randrange(act.min_int, act.max_int + 1) >> rng.randrange(act.bits)
                   for _ in range(E)]
        rows.append([max(act.min_int, min(act.max_int, v)) for v in row])
    return np.array(rows, dtype=np.int64)


def router_beats(cfg: Config, logits: np.ndarray) -> list[dict]:
    n = len(logits)
    return [{"logits": logits[i].tolist(), "token": i % cfg.model.tokens,
             "last": int(i % cfg.model.tokens == cfg.model.tokens - 1 or i == n - 1)}
            for i in range(n)]


def router_expected(cfg: Config, logits: np.ndarray, beats: list[dict]) -> list[dict]:
    """Golden routing of each row, as output beats of the Router."""
    t = to_score(cfg, logits, cfg.num.act.frac_bits, LOG2E)
    probs = softmax_rows(cfg, t)
    chosen = top_k(t, cfg.model.top_k)
    w = np.take_along_axis(probs, chosen, axis=-1)
    return [{"token": b["token"], "last": b["last"], "experts": chosen[i].tolist(),
             "weights": w[i].tolist()} for i, b in enumerate(beats)]


@pytest.mark.parametrize("cfg", router_configs())
def test_router_random_stream(cfg, seed):
    rng = random.Random(seed)
    logits = router_logits(cfg, rng, 150)
    beats = router_beats(cfg, logits)
    want = router_expected(cfg, logits, beats)
    dut = Router(cfg)
    drv = StreamDriver(dut.i, beats, rng=random.Random(seed + 1), valid_prob=0.6)
    mon = StreamMonitor(dut.o, len(beats), rng=random.Random(seed + 2), ready_prob=0.5)
    run_pysim(dut, [drv, mon], deadline_cycles=200 * len(beats) + 500)
    assert_beats_equal(mon.received, want, inputs=beats, seed=seed, what="routing")


def test_router_full_rate(seed):
    """Always valid / always ready: one token per cycles_per_token, latency as documented."""
    cfg = Config.tiny()
    rng = random.Random(seed)
    logits = router_logits(cfg, rng, 24)
    beats = router_beats(cfg, logits)
    dut = Router(cfg)
    drv = StreamDriver(dut.i, beats)
    mon = StreamMonitor(dut.o, len(beats))
    run_pysim(dut, [drv, mon], deadline_cycles=100 * len(beats) + 200)
    assert_beats_equal(mon.received, router_expected(cfg, logits, beats), seed=seed)
    lat0 = mon.transfer_cycles[0] - drv.accepted_cycles[0]
    assert lat0 == dut.latency, f"first-token latency {lat0}, documented {dut.latency}"
    gaps = np.diff(mon.transfer_cycles)
    assert set(gaps.tolist()) == {dut.cycles_per_token}, \
        f"output spacing {sorted(set(gaps.tolist()))}, documented {dut.cycles_per_token}"


@pytest.mark.parametrize("ready_prob", [0.03, 0.4])   # long output stalls, short ones
def test_router_advance_copies(seed, ready_prob):
    """Each registered copy of stage A's advance equals ``~done_a | b_free`` of the router's
    registers on every cycle, under random valid gaps and back-pressure (the copies are loaded
    with next-state values, so a wrong next-state term would show here first)."""
    from amaranth.hdl import Fragment
    from tests.harness.formal import find_signal
    cfg = Config.tiny()
    rng = random.Random(seed)
    logits = router_logits(cfg, rng, 30)
    beats = router_beats(cfg, logits)
    dut = Router(cfg)
    body = dut.elaborate(None)
    frag = Fragment.get(body, None)
    ref = find_signal(frag, "advance_ref")
    names = ["in", "s1", "s2", "exp2", "d0", "d1", "d2", "acc", "b"]
    copies = [find_signal(frag, f"advance_{g}") for g in names]
    drv = StreamDriver(dut.i, beats, rng=random.Random(seed + 1), valid_prob=0.6)
    mon = StreamMonitor(dut.o, len(beats), rng=random.Random(seed + 2), ready_prob=ready_prob)
    seen = {0: 0, 1: 0}

    async def check(ctx):
        async for _ in ctx.tick():
            want = ctx.get(ref)
            seen[want] += 1
            for g, c in zip(names, copies):
                assert ctx.get(c) == want, f"advance_{g} differs from ~done_a | b_free"

    # the same module is simulated, so the signals found are the simulated ones
    dut.elaborate = lambda platform: body
    run_pysim(dut, [drv, mon], background=[check], deadline_cycles=2000 * len(beats))
    assert seen[0] > 20 and seen[1] > 20, seen     # both stalls and advances were checked
    assert_beats_equal(mon.received, router_expected(cfg, logits, beats), inputs=beats,
                       seed=seed, what="routing")
