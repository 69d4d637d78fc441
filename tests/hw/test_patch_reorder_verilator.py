"""Patch reorder unit on its generated Verilog: cocotb + Verilator, list and queues vs golden.

The cocotb side is tests/cocotb/test_reorder_tb.py.
"""
from __future__ import annotations

import pytest

from hw.moe.patch_reorder import PatchReorder
from tests.harness.configs import reorder_configs
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


@pytest.mark.parametrize("cfg", reorder_configs())
def test_patch_reorder_verilator(cfg, seed, tmp_path):
    run_block_verilator(PatchReorder(cfg), "test_reorder_tb", tmp_path, seed, cfg,
                        frames=5, valid_prob=0.6, ready_prob=0.5)
