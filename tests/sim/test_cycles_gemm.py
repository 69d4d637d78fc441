"""The analytic GEMM cycle model (sim/cycles/gemm.py) against the RTL, and its M3ViT figures.

The RTL runs in pysim with always-valid inputs and an always-ready output (host.bench.gemm's
``measure_rtl``, which also checks the output bit-exact against sim/golden); the engine's cycle
counter must equal ``gemm_cycles`` exactly. tests/hw/test_gemm.py and the Verilator test check
the same equality on more shapes.
"""
from __future__ import annotations

import pytest

from hw.array.epilogue import Epilogue
from host.bench.gemm import m3vit_shapes, measure_rtl
from sim.config import Config, get_config, with_changes
from sim.cycles.gemm import (EPILOGUE_LATENCY, frame_gemm_cycles, gemm_active_cycles,
                             gemm_cycles, gemm_utilization, steady_state_utilization)


def test_epilogue_latency_constant():
    assert EPILOGUE_LATENCY == Epilogue.latency


@pytest.mark.parametrize("cfg,shape", [
    (Config.tiny(), (17, 32, 48)),      # M >= R: compute bound
    (Config.tiny(), (2, 13, 9)),        # M < R: weight-load bound, odd K / N
    (Config.tiny(), (4, 4, 4)),         # M = R, one tile
    (with_changes(Config.tiny(), name="3x5", hw=dict(array_rows=3, array_cols=5)), (7, 10, 11)),
], ids=["tiny-17x32x48", "tiny-2x13x9", "tiny-4x4x4", "3x5-7x10x11"])
def test_model_equals_rtl(cfg, shape):
    r = measure_rtl(cfg, *shape, seed=sum(shape))
    assert r["exact"], "RTL output differs from sim/golden"
    assert r["cycles"] == gemm_cycles(cfg, *shape)
    assert r["active"] == gemm_active_cycles(cfg, *shape)


def test_m3vit_utilization():
    """>= 90 % MAC utilization on every M3ViT GEMM with M >= R (fill and drain included), and
    100 % in the steady-state tile loop; the table is printed for the record."""
    for name in ("m3vit-tiny-cityscapes", "m3vit-ecp5-85f"):
        cfg = get_config(name)
        R = cfg.hw.array_rows
        print(f"\n{name}: {R} x {cfg.hw.array_cols}")
        for layer, m, k, n, count in m3vit_shapes(cfg):
            u = gemm_utilization(cfg, m, k, n)
            print(f"  {layer:<26} {m:>4} x {k:>4} x {n:>4}: {gemm_cycles(cfg, m, k, n):>8,} "
                  f"cycles, utilization {u:.1%}")
            if m >= R:
                assert u >= 0.90, layer
                if k % R == 0 and n % cfg.hw.array_cols == 0:
                    assert steady_state_utilization(cfg, m, k, n) == 1.0
            else:       # weight-load bound: one tile per R cycles
                assert steady_state_utilization(cfg, m, k, n) == pytest.approx(m / R)
        total = frame_gemm_cycles(cfg)
        ideal = cfg.model.linear_macs / cfg.hw.macs_per_cycle
        print(f"  frame (experts evenly loaded): {total:,} cycles, ideal {ideal:,.0f}")
        assert total < 1.01 * ideal


def test_brief_shapes_16x16():
    cfg = get_config("m3vit-tiny-cityscapes")
    for m, k, n in [(129, 192, 576), (129, 192, 768), (129, 768, 192), (129, 192, 384)]:
        assert gemm_utilization(cfg, m, k, n) >= 0.99
