"""Patch reorder unit on its generated Verilog: cocotb + Verilator, list and queues vs golden.

The cocotb side is tests/cocotb/test_reorder_tb.py.
"""
from __future__ import annotations

import pytest

from hw.moe.patch_reorder import PatchReorder
from sim.config import Config, with_changes
from host.cocotb_run import run_cocotb
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


def _configs():
    tiny = Config.tiny()
    e8 = with_changes(tiny, name="tiny-e8k3", model=dict(experts=8, top_k=3))
    return [pytest.param(tiny, id="tiny"), pytest.param(e8, id="e8-k3")]


@pytest.mark.parametrize("cfg", _configs())
def test_patch_reorder_verilator(cfg, seed, tmp_path):
    run_cocotb(PatchReorder(cfg), "tests.cocotb.test_reorder_tb", name="patch_reorder",
               test_dir=tmp_path, seed=seed,
               params=dict(config=cfg.to_dict(), frames=5, valid_prob=0.6, ready_prob=0.5))
