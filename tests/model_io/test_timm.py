"""A timm ``VisionTransformer`` state_dict maps onto our names (random init, no downloads).

timm is imported through :func:`tests.model_io.timm_stub.import_timm`, a TEST-ONLY workaround that
stubs ``torchvision`` for the duration of ``import timm`` when the real one is unavailable (PyPI's
torchvision does not work with the pinned CPU torch); see that module's docstring.

Ignored timm keys (see model_io.names.TIMM_IGNORED): ``head.*`` (classifier) and ``fc_norm.*``
(pooled-feature norm) -- they do not affect the output tokens. Every other timm tensor has exactly
our name and shape; timm has no gates/experts, so MoE blocks cannot come from a timm checkpoint.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from model_io.export import export
from sim.weight_format import WeightImageError
from model_io.loader import load
from model_io.names import TIMM_IGNORED, normalize_names
from model_io.torch_model import from_params
from sim.config import with_changes
from sim.golden import quantize_params
from sim.params import param_specs, random_params

from tests.model_io.timm_stub import import_timm

if importlib.util.find_spec("timm") is None:
    pytest.skip("timm is not installed (it is not a project dependency)", allow_module_level=True)


def _timm_vit(cfg, num_classes=10):
    import_timm()
    from timm.models.vision_transformer import VisionTransformer
    m = cfg.model
    vit = VisionTransformer(
        img_size=(m.image_height, m.image_width), patch_size=m.patch, in_chans=m.image_channels,
        num_classes=num_classes, global_pool="token", embed_dim=m.dim, depth=m.depth,
        num_heads=m.heads, mlp_ratio=m.mlp_hidden / m.dim, qkv_bias=True, class_token=True,
        no_embed_class=False, pre_norm=False, final_norm=m.final_norm, fc_norm=False)
    assert vit.blocks[0].norm1.eps == m.ln_eps
    return vit


@pytest.fixture(scope="module")
def dense_cfg(tiny):
    return with_changes(tiny, name="tiny-dense", model={"moe_blocks": ()})


def test_timm_names_cover_our_dense_blocks(tiny):
    sd = _timm_vit(tiny).state_dict()
    named, ignored = normalize_names(sd)
    assert ignored == ["head.bias", "head.weight"] and set(ignored) <= set(TIMM_IGNORED)
    ours = param_specs(tiny)
    moe_prefixes = tuple(f"blocks.{i}.mlp." for i in tiny.model.moe_blocks)
    for name, shape in ours.items():
        if not name.startswith(moe_prefixes):   # every non-MoE tensor: same name, same shape
            assert tuple(named[name].shape) == shape, name
    leftovers = sorted(set(named) - set(ours))
    assert leftovers and all(k.startswith(moe_prefixes) for k in leftovers)


def test_timm_checkpoint_for_moe_config_fails_naming_tensors(tiny, tmp_path):
    with pytest.raises(WeightImageError) as info:
        export(tiny, _timm_vit(tiny).state_dict(), tmp_path)
    msg = str(info.value)
    assert "missing tensor 'blocks.1.mlp.gates.0.weight'" in msg
    assert "unexpected tensor 'blocks.1.mlp.fc1.weight'" in msg


def test_timm_dense_model_exports_and_computes_the_same(dense_cfg, tmp_path):
    vit = _timm_vit(dense_cfg).double().eval()
    params = random_params(dense_cfg, 0, style="unit")   # non-trivial biases / LN affine
    head = {k: v for k, v in vit.state_dict().items() if k in TIMM_IGNORED}
    vit.load_state_dict({**{k: torch.from_numpy(v) for k, v in params.items()}, **head})
    report = export(dense_cfg, vit.state_dict(), tmp_path)
    assert report.ignored == ["head.bias", "head.weight"]
    _, q, _ = load(tmp_path, dense_cfg)
    want, _ = quantize_params(dense_cfg, params)
    assert all(np.array_equal(q[k], want[k]) for k in want)

    m = dense_cfg.model
    x = torch.rand(2, m.image_channels, m.image_height, m.image_width, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = vit.forward_features(x)
        out = from_params(dense_cfg, params)(x, 0)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)
