"""The PyTorch reference model: names/shapes, init, batching, routing rules, input checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model_io.torch_model import M3ViT, MoE, from_params, state_dict_to_numpy
from sim.config import get_config
from sim.params import param_specs, random_params


@pytest.mark.parametrize("name", ["tiny", "m3vit-tiny-cityscapes"])
def test_state_dict_matches_param_specs(name):
    cfg = get_config(name)
    model = M3ViT(cfg)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == param_specs(cfg)


def test_seeded_vit_init_is_random_params(tiny):
    model = M3ViT(tiny, seed=3, init="vit")
    ref = random_params(tiny, 3, "vit")
    sd = state_dict_to_numpy(model.state_dict())
    assert all(np.array_equal(sd[k], ref[k].astype(np.float32)) for k in ref)
    other = state_dict_to_numpy(M3ViT(tiny, seed=4, init="vit").state_dict())
    assert not np.array_equal(other["blocks.0.attn.qkv.weight"], sd["blocks.0.attn.qkv.weight"])
    w = sd["blocks.0.attn.qkv.weight"]
    assert 0.015 < w.std() < 0.025 and np.abs(w).max() <= 0.04 + 1e-7   # trunc-normal(0.02)
    assert np.all(sd["blocks.0.attn.qkv.bias"] == 0) and np.all(sd["blocks.0.norm1.weight"] == 1)


def test_load_state_dict_round_trip(tiny, tiny_params):
    a = from_params(tiny, tiny_params)
    b = M3ViT(tiny, seed=9, dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    x = torch.rand(3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(a(x, 1), b.eval()(x, 1))


def test_from_params_names_missing(tiny, tiny_params):
    p = dict(tiny_params)
    del p["blocks.1.mlp.gates.1.weight"]
    with pytest.raises(KeyError, match=r"blocks\.1\.mlp\.gates\.1\.weight"):
        from_params(tiny, p)


def test_batched_and_unbatched(tiny, tiny_params):
    m = tiny.model
    model = from_params(tiny, tiny_params)
    x = torch.rand(2, m.image_channels, m.image_height, m.image_width, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(1))
    trace, trace0 = {}, {}
    with torch.no_grad():
        yb = model(x, 0, trace)
        y0 = model(x[0], 0, trace0)
    assert yb.shape == (2, m.tokens, m.dim) and y0.shape == (m.tokens, m.dim)
    torch.testing.assert_close(yb[0], y0, rtol=0, atol=1e-12)
    assert trace["blocks.1.experts"].shape == (2, m.tokens, m.top_k)
    assert np.array_equal(trace0["blocks.1.experts"], trace["blocks.1.experts"][0])


def test_input_checks(tiny, tiny_params):
    model = from_params(tiny, tiny_params)
    with pytest.raises(ValueError, match="task 2 out of range"):
        model(torch.zeros(3, 32, 32), 2)
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        model(torch.zeros(3, 16, 32), 0)


def test_moe_routing_rules():
    moe = MoE(dim=4, experts=4, hidden=8, top_k=2, tasks=2).double()
    with torch.no_grad():
        moe.gates[0].weight.zero_()                      # all logits equal: a 4-way tie
        moe.gates[1].weight.copy_(torch.eye(4, dtype=torch.float64))
    x = torch.tensor([[0.0, 3.0, 1.0, 2.0]], dtype=torch.float64)
    chosen, scores = moe.route(x, 0)
    assert chosen.tolist() == [[0, 1]]                   # ties -> lowest index
    torch.testing.assert_close(scores, torch.full((1, 2), 0.25, dtype=torch.float64))
    chosen, scores = moe.route(x, 1)
    assert chosen.tolist() == [[1, 3]]
    probs = torch.softmax(x, -1)
    torch.testing.assert_close(scores, probs[:, [1, 3]])  # not renormalized
    y = moe(x, 1)
    with torch.no_grad():
        want = scores[0, 0] * moe.experts[1](x) + scores[0, 1] * moe.experts[3](x)
    torch.testing.assert_close(y, want)
