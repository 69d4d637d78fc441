"""Reproducible randomness for tests: one seed per test, printed so a failure can be replayed.

Every randomized test takes the ``seed`` fixture (an ``int``) or the ``rng`` / ``np_rng`` fixtures
built from it. The seed is, in order of precedence:

1. ``EDGE_MOE_SEED=<int>`` in the environment (replays a failure; applies to every test run);
   ``EDGE_MOE_SEED=random`` draws a fresh seed per test (for soak runs);
2. the test's own parameter, via ``@pytest.mark.parametrize("seed", [...], indirect=True)``;
3. otherwise a stable hash of the test's node id, so the default run is deterministic.

The fixture prints the seed and the command that replays it; pytest shows that "Captured stdout
setup" section for every failing test. Put the seed in assertion messages too (``seed_msg``).

Import the fixtures into a test module (pytest picks them up from module globals)::

    from tests.harness.seeds import seed, rng, np_rng  # noqa: F401
"""
from __future__ import annotations

import os
import random
import zlib

import numpy as np
import pytest

__all__ = ["SEED_ENV", "resolve_seed", "seed", "rng", "np_rng", "seed_msg"]

SEED_ENV = "EDGE_MOE_SEED"


def resolve_seed(nodeid: str, param: int | None = None) -> int:
    """The seed of a test: ``$EDGE_MOE_SEED`` > ``param`` > crc32 of ``nodeid``."""
    env = os.environ.get(SEED_ENV, "").strip()
    if env:
        if env.lower() == "random":
            return random.SystemRandom().randrange(1 << 32)
        try:
            return int(env, 0)
        except ValueError:
            raise ValueError(f"{SEED_ENV}={env!r}: expected an integer or 'random'") from None
    if param is not None:
        return int(param)
    return zlib.crc32(nodeid.encode())


def seed_msg(seed: int, nodeid: str | None = None) -> str:
    """``"seed=N (replay: EDGE_MOE_SEED=N pytest <nodeid>)"``, for assertion messages."""
    where = f" {nodeid}" if nodeid else ""
    return f"seed={seed} (replay: {SEED_ENV}={seed} python -m pytest{where})"


@pytest.fixture
def seed(request) -> int:
    """The test's seed (see the module docstring); printed for failure reports."""
    s = resolve_seed(request.node.nodeid, getattr(request, "param", None))
    print(f"[edge-moe] {seed_msg(s, request.node.nodeid)}")
    return s


@pytest.fixture
def rng(seed) -> random.Random:
    """``random.Random(seed)``."""
    return random.Random(seed)


@pytest.fixture
def np_rng(seed) -> np.random.Generator:
    """``numpy.random.default_rng(seed)`` (independent of ``rng``'s stream, same seed)."""
    return np.random.default_rng(seed)
