"""GemmEngine on its generated Verilog: cocotb + Verilator, bit-exact vs sim/golden/linear.py.

The cocotb side is tests/cocotb/test_gemm_tb.py. Cases: the tiny model's real GEMM shapes plus odd
K / N, M < R and M = 1, every epilogue mode with and without bias / GELU, random gaps on every
input stream and back-pressure on the output; then the same engine with no gaps, where the
cycle counter must equal sim.cycles.gemm.gemm_cycles exactly.
"""
from __future__ import annotations

import pytest

from hw.array.gemm_engine import GemmEngine
from sim.config import Config, with_changes
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator

TINY = Config.tiny()

# [m, k, n, bias, gelu, mode]
CASES = [
    [17, 32, 96, 1, 0, "plain"],        # tiny qkv
    [17, 64, 32, 1, 0, "residual"],     # tiny mlp fc2 + residual
    [9, 32, 48, 1, 1, "plain"],         # tiny expert fc1 (GELU), 9 tokens
    [9, 48, 32, 1, 0, "scaled"],        # tiny expert fc2, MoE combine
    [17, 32, 4, 0, 0, "plain"],         # tiny router gate (no bias)
    [5, 13, 11, 1, 1, "scaled"],        # odd K and N
    [2, 7, 3, 0, 1, "residual"],        # M < R
    [1, 1, 1, 1, 1, "scaled"],          # smallest
    [3, 9, 5, 0, 0, "residual"],
]


def _run(cfg, cases, seed, tmp_path, *, valid_prob, ready_prob, check_cycles, max_m=17,
         max_k=64, max_n=96):
    dut = GemmEngine(cfg, max_m=max_m, max_k=max_k, max_n=max_n)
    run_block_verilator(dut, "test_gemm_tb", tmp_path, seed, cfg, name="gemm_engine",
                        max_m=max_m, max_k=max_k, max_n=max_n, cases=cases,
                        valid_prob=valid_prob, ready_prob=ready_prob, check_cycles=check_cycles)


def test_gemm_verilator_random(seed, tmp_path):
    _run(TINY, CASES, seed, tmp_path, valid_prob=0.7, ready_prob=0.6, check_cycles=False)


def test_gemm_verilator_full_rate(seed, tmp_path):
    _run(TINY, CASES, seed, tmp_path, valid_prob=1.0, ready_prob=1.0, check_cycles=True)


@pytest.mark.slow
def test_gemm_verilator_16x16(seed, tmp_path):
    """The M3ViT 16 x 16 array on reduced M3ViT-like shapes (full-size Verilog, slow build)."""
    cfg = with_changes(Config.m3vit_tiny(), name="m3vit-16x16")
    cases = [[33, 64, 48, 1, 1, "plain"], [16, 48, 40, 1, 0, "scaled"],
             [7, 20, 19, 0, 0, "residual"]]
    _run(cfg, cases, seed, tmp_path, valid_prob=0.8, ready_prob=0.8, check_cycles=False,
         max_m=129, max_k=768, max_n=768)
    _run(cfg, cases, seed, tmp_path / "full", valid_prob=1.0, ready_prob=1.0,
         check_cycles=True, max_m=129, max_k=768, max_n=768)
