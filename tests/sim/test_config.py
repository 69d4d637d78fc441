"""Config presets, derived sizes and validation messages."""
import math

import pytest

from sim.config import Config, ConfigError, PRESETS, check_top_level, get_config, with_changes


def test_m3vit_preset_matches_the_brief():
    cfg = get_config("m3vit-tiny-cityscapes")
    m = cfg.model
    assert (m.tokens, m.dim, m.depth, m.heads, m.head_dim) == (129, 192, 12, 3, 64)
    assert (m.experts, m.top_k, m.expert_hidden, m.mlp_hidden) == (16, 2, 384, 768)
    assert m.moe_blocks == (1, 3, 5, 7, 9, 11)
    # Section 1 of the brief: ~783 M MACs (~706 M linear, ~77 M attention) per frame.
    assert round(m.linear_macs / 1e6) == 706
    assert round(m.attention_macs / 1e6) == 77
    assert cfg.hw.macs_per_cycle == 256
    assert abs(cfg.ideal_cycles - 3.06e6) < 0.01e6


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_dict(name):
    cfg = get_config(name)
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert cfg.name == name


def test_accumulator_bound_is_enforced():
    cfg = get_config("m3vit-tiny-cityscapes")
    bits = cfg.num.act.bits + cfg.num.weight.bits + math.ceil(math.log2(768)) + 1
    with_changes(cfg, num=dict(acc_bits=bits))          # exactly enough: accepted
    with pytest.raises(ConfigError, match="acc_bits .* can overflow.*768"):
        with_changes(cfg, num=dict(acc_bits=bits - 1))


@pytest.mark.parametrize("change, message", [
    (dict(model=dict(heads=5)), "dim 32 is not divisible by heads 5"),
    (dict(model=dict(top_k=5)), "top_k 5 > experts 4"),
    (dict(model=dict(patch=7)), "not divisible by patch 7"),
    (dict(model=dict(moe_blocks=(2,))), r"moe_blocks \[2\] must lie in \[0, depth=2\)"),
    (dict(hw=dict(array_rows=0)), "hw.array_rows must be >= 1"),
    (dict(hw=dict(array_rows=4096)), "larger than every GEMM"),
    (dict(hw=dict(attn_dot_width=5)), "head_dim 16 is not a multiple of attn_dot_width 5"),
    (dict(num=dict(gelu_segments=24)), "GELU grid step"),
    (dict(hw=dict(mult_budget=20)), "needs 80 multipliers"),
    (dict(hw=dict(gelu_site="fc2")), "hw.gelu_site must be one of epilogue, act, got 'fc2'"),
])
def test_invalid_configs_name_the_problem(change, message):
    with pytest.raises(ConfigError, match=message):
        with_changes(get_config("tiny"), **change)


def test_unknown_preset_lists_known_names():
    with pytest.raises(ConfigError, match="unknown config 'nope'; known configs: tiny"):
        get_config("nope")


def test_ecp5_preset_fits_its_multipliers():
    # every multiplier of the top (sim/multipliers.py, checked against the elaborated top's $mul
    # cells in tests/system/test_multipliers_rtl.py) within the ~85 % headroom of 156 MULT18X18D
    from sim.multipliers import multiplier_count
    cfg = get_config("m3vit-ecp5-85f")
    assert cfg.hw.mult_budget == 156
    assert multiplier_count(cfg) <= 0.85 * cfg.hw.mult_budget


@pytest.mark.parametrize("name, want", [
    # (buffer rows, H row values, max M, max K, max N, K tiles, N tiles, LOAD n, STORE n)
    # tiny: 17 tokens, dim 32 (qkv N = 96), patch_dim 3 * 8 * 8 = 192, 4 x 4 array
    ("tiny", (17, 192, 17, 192, 96, 48, 24, 192, 32)),
    # M3ViT: 129 tokens, dim 192, mlp 768 (fc1 N, fc2 K), patch_dim 3 * 16 * 16 = 768, 16 x 16
    ("m3vit-tiny-cityscapes", (129, 768, 129, 768, 768, 48, 48, 768, 192)),
    # the ECP5 preset: 4 x 8 array (K tiles 768 / 4, N tiles 768 / 8)
    ("m3vit-ecp5-85f", (129, 768, 129, 768, 768, 192, 96, 768, 192)),
])
def test_derived_hardware_sizes(name, want):
    c = get_config(name)
    got = (c.buffer_rows, c.hidden_cols, c.gemm_max_m, c.gemm_max_k, c.gemm_max_n,
           c.gemm_k_tiles, c.gemm_n_tiles, c.load_max_n, c.store_max_n)
    assert got == want


@pytest.mark.parametrize("change, message", [
    (dict(hw=dict(array_cols=3)), r"hw.array_cols = 3 must be a power of two \(buffer lanes\)"),
    (dict(hw=dict(array_rows=6)), r"hw.array_rows = 6 must be a power of two"),
    (dict(hw=dict(mem_bytes_per_cycle=12)), "hw.mem_bytes_per_cycle 12 must be a power of two"),
    (dict(hw=dict(mem_bytes_per_cycle=128)),
     "hw.mem_bytes_per_cycle 128 must divide the 64-byte descriptor"),
    (dict(hw=dict(array_cols=64, array_rows=2)),
     "model.dim 32 must be a multiple of hw.array_cols 64"),
    # tiny: 8-byte beats of 4-byte (Q8.10) values -> 2 values per beat
    (dict(model=dict(patch=1, image_height=8, image_width=8)),
     "model.patch 1 must be a multiple of 2 values per memory beat"),
    (dict(hw=dict(mem_bytes_per_cycle=16)),
     r"a weight tile \(hw.array_cols weights\) of 8 bytes is not a whole number of 16-byte "),
    # 4 experts x 2-byte weights: 8-byte gate rows
    (dict(hw=dict(mem_bytes_per_cycle=16, array_cols=16)),
     r"a gate weight row \(4 weights, 8 bytes\) is not a whole number of 16-byte memory beats"),
])
def test_top_level_constraints_name_the_field(change, message):
    cfg = with_changes(get_config("tiny"), **change)      # a block alone may take it
    with pytest.raises(ConfigError, match=f"config 'tiny': {message}"):
        check_top_level(cfg)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_build_the_top_level(name):
    assert check_top_level(get_config(name)).name == name


@pytest.mark.parametrize("hw, message", [
    (dict(hidden_rows=5), r"hw.hidden_rows 5 < 17 tokens needs hw.attn_overlap=False"),
    (dict(hidden_rows=3, attn_overlap=False),
     r"hw.hidden_rows must be >= 4 \(one row of patches of the image"),
])
def test_hidden_rows_validation_names_the_field(hw, message):
    with pytest.raises(ConfigError, match=f"config 'tiny': {message}"):
        with_changes(get_config("tiny"), hw=hw)


@pytest.mark.parametrize("hidden_rows, want", [
    # (H rows, tiled, patches per embedding tile): tiny has 17 tokens, 4 x 4 patches
    (None, (17, False, 16)), (17, (17, False, 16)), (16, (16, True, 16)),
    (5, (5, True, 4)), (9, (9, True, 8)), (4, (4, True, 4)),
])
def test_hidden_rows_sizes(hidden_rows, want):
    c = with_changes(get_config("tiny"), hw=dict(hidden_rows=hidden_rows, attn_overlap=False))
    assert (c.h_rows, c.h_tiled, c.embed_tile) == want


def test_m3vit_ecp5_preset_tiles_h():
    c = get_config("m3vit-ecp5-85f")
    assert (c.h_rows, c.h_tiled, c.embed_tile, c.hw.attn_overlap) == (32, True, 32, False)


def test_kv_heads():
    c = get_config("m3vit-ecp5-85f")
    assert (c.hw.kv_heads, c.kv_cols, c.model.dim) == (1, 64, 192)
    t = get_config("tiny")
    assert t.kv_cols == t.model.dim
    assert with_changes(t, hw=dict(kv_heads=2, attn_overlap=False)).kv_cols == 32
    with pytest.raises(ConfigError, match=r"hw.kv_heads must be in \[1, 2\]"):
        with_changes(t, hw=dict(kv_heads=3, attn_overlap=False))
    with pytest.raises(ConfigError, match="needs hw.attn_overlap=False"):
        with_changes(t, hw=dict(kv_heads=1))
    with pytest.raises(ConfigError, match="head_dim 16 to be a multiple of hw.array_cols 32"):
        with_changes(t, hw=dict(kv_heads=1, attn_overlap=False, array_cols=32))
