"""Config variants shared by the tests of one block.

The pysim test of a block and its Verilator test run the same variants, so each list is written
once, here. A variant is the ``tiny`` preset with a few fields changed: small enough to simulate,
different enough to move every width the block derives from the config (activation format,
expert count and top-k, memory beat width). The lists are ``pytest.param`` lists for
``@pytest.mark.parametrize("cfg", ...)``; their ids are part of the test node ids, which seed
the tests (tests/harness/seeds.py), so changing an id changes the seed.
"""
from __future__ import annotations

import pytest

from sim.config import Config, with_changes
from sim.fixed import QFormat

__all__ = ["q810", "gelu_q810", "router_configs", "reorder_configs", "prefetch_configs"]


def q810() -> Config:
    """18-bit Q8.10 activations, Q2.16 weights: requantize shift 16, other saturation bounds."""
    return with_changes(Config.tiny(), name="tiny-q8.10",
                        num=dict(act=QFormat(8, 10), weight=QFormat(2, 16), bias=QFormat(8, 26)))


def gelu_q810() -> Config:
    """:func:`q810` with an 18-fraction-bit GELU table (grid step 128 LSB)."""
    return with_changes(q810(), num=dict(gelu_table_frac=18))


def router_configs() -> list:
    """tiny, and 16 experts with top-3: longer top-k lists and divider rows."""
    e16 = with_changes(Config.tiny(), name="tiny-e16k3", model=dict(experts=16, top_k=3))
    return [pytest.param(Config.tiny(), id="tiny"), pytest.param(e16, id="e16-k3")]


def reorder_configs() -> list:
    """tiny, and 8 experts with top-3 (the patch reorder unit's queue count and entry width)."""
    e8 = with_changes(Config.tiny(), name="tiny-e8k3", model=dict(experts=8, top_k=3))
    return [pytest.param(Config.tiny(), id="tiny"), pytest.param(e8, id="e8-k3")]


def prefetch_configs(*, wide: bool = True) -> list:
    """tiny (8-byte beats), 4-byte beats (a weight group of C = 4 int16 spans 2 beats) and, if
    ``wide``, 32-byte beats (4 groups a beat; pysim only, as a Verilator build costs ~20 s)."""
    tiny = Config.tiny()
    narrow = with_changes(tiny, name="tiny-bus4", hw=dict(mem_bytes_per_cycle=4, mem_latency=20))
    out = [pytest.param(tiny, id="tiny"), pytest.param(narrow, id="bus4")]
    if wide:
        wide_cfg = with_changes(tiny, name="tiny-bus32",
                                hw=dict(mem_bytes_per_cycle=32, mem_latency=3))
        out.append(pytest.param(wide_cfg, id="bus32"))
    return out
