"""Attention unit on its generated Verilog: cocotb + Verilator, bit-exact vs attention_head.

The cocotb side is tests/cocotb/test_attention_tb.py: random gaps / back-pressure, and a
full-rate run checked against the cycle model and the K/V byte counter. Small shapes by default;
one M3ViT head (129 tokens x head_dim 64, p = 4) is marked slow (Verilator build of ~2 minutes).
"""
from __future__ import annotations

import pytest

from hw.attention.attention import Attention
from sim.config import get_config, with_changes
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator


def _run(cfg, tokens, heads, scale, seed, tmp_path, name):
    run_block_verilator(Attention(cfg, tokens), "test_attention_tb", tmp_path, seed, cfg,
                        name=name, tokens=tokens, heads=heads, scale=scale, valid_prob=0.7,
                        ready_prob=0.6)


@pytest.mark.parametrize("p,dw", [(2, 16), (3, 4)])
def test_attention_verilator_tiny(p, dw, seed, tmp_path):
    cfg = with_changes(get_config("tiny"), hw=dict(attn_parallel=p, attn_dot_width=dw))
    _run(cfg, None, 2, 3 << cfg.num.act.frac_bits, seed, tmp_path, f"attention_p{p}_dw{dw}")


@pytest.mark.slow
def test_attention_verilator_m3vit_head(seed, tmp_path):
    cfg = get_config("m3vit-tiny-cityscapes")
    _run(cfg, None, 1, 2 << cfg.num.act.frac_bits, seed, tmp_path, "attention_m3vit")
