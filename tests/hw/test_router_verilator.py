"""Router on its generated Verilog: cocotb + Verilator, bit-exact vs the golden router.

The cocotb side is tests/cocotb/test_router_tb.py (random tied / extreme logits, random valid
gaps and back-pressure, plus a full-rate latency / throughput check).
"""
from __future__ import annotations

import pytest

from hw.moe.router import Router
from sim.config import Config, with_changes
from host.cocotb_run import run_cocotb
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


def _configs():
    tiny = Config.tiny()
    e16 = with_changes(tiny, name="tiny-e16k3", model=dict(experts=16, top_k=3))
    return [pytest.param(tiny, id="tiny"), pytest.param(e16, id="e16-k3")]


@pytest.mark.parametrize("cfg", _configs())
def test_router_verilator(cfg, seed, tmp_path):
    run_cocotb(Router(cfg), "tests.cocotb.test_router_tb", name="router", test_dir=tmp_path,
               seed=seed, params=dict(config=cfg.to_dict(), tokens=300, valid_prob=0.6,
                                      ready_prob=0.5))
