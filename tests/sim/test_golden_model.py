"""Whole-encoder golden model against the float64 reference, on random weights.

Prints the figures quoted in docs/numerics.md: max / mean abs error, cosine similarity and how many
tokens' top-k expert choice differs from float (MoE routing is discontinuous).
"""
import numpy as np
import pytest

from sim import float_model, golden
from sim.config import get_config
from sim.fixed import dequantize
from sim.params import random_params


def _compare(cfg, seed, task):
    params = random_params(cfg, seed)
    image = np.random.default_rng(seed + 100).random(
        (cfg.model.image_channels, cfg.model.image_height, cfg.model.image_width))
    qp, sat = golden.quantize_params(cfg, params)
    assert sum(sat.values()) == 0, {k: v for k, v in sat.items() if v}
    trace, ftrace = {}, {}
    got = dequantize(golden.forward(cfg, qp, golden.quantize_image(cfg, image), task, trace),
                     cfg.num.act)
    want = float_model.forward(cfg, params, image, task, ftrace)
    err = np.abs(got - want)
    cos = float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))
    switched = sum(
        int((np.sort(trace[f"blocks.{b}.routing"].experts, 1)
             != np.sort(ftrace[f"blocks.{b}.experts"], 1)).any(1).sum())
        for b in cfg.model.moe_blocks)
    print(f"\n{cfg.name} seed {seed} task {task}: max abs err {err.max():.4f}, mean {err.mean():.5f}, "
          f"cosine {cos:.6f}, tokens with a different expert choice {switched} of "
          f"{cfg.model.tokens * len(cfg.model.moe_blocks)}")
    return err, cos


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("task", [0, 1])
def test_tiny_golden_tracks_float(seed, task):
    err, cos = _compare(get_config("tiny"), seed, task)
    assert cos > 0.9999
    assert err.mean() < 0.01
    assert err.max() < 0.1


def test_tasks_route_differently():
    cfg = get_config("tiny")
    qp, _ = golden.quantize_params(cfg, random_params(cfg, 3))
    img = golden.quantize_image(cfg, np.random.default_rng(3).random((3, 32, 32)))
    assert not np.array_equal(golden.forward(cfg, qp, img, 0), golden.forward(cfg, qp, img, 1))


def test_bad_inputs_are_rejected():
    cfg = get_config("tiny")
    params = random_params(cfg, 0)
    qp, _ = golden.quantize_params(cfg, params)
    with pytest.raises(ValueError, match="task 2 out of range: the config has 2 tasks"):
        golden.forward(cfg, qp, np.zeros((3, 32, 32), dtype=np.int64), 2)
    with pytest.raises(ValueError, match=r"image shape \(3, 16, 16\)"):
        golden.quantize_image(cfg, np.zeros((3, 16, 16)))
    bad = dict(params)
    bad["blocks.0.attn.qkv.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"blocks.0.attn.qkv.weight: expected shape \(96, 32\)"):
        golden.quantize_params(cfg, bad)
    del bad["pos_embed"]
    with pytest.raises(KeyError, match="missing.*pos_embed"):
        golden.quantize_params(cfg, bad)


@pytest.mark.slow
@pytest.mark.parametrize("task", [0, 1])
def test_m3vit_golden_tracks_float(task):
    err, cos = _compare(get_config("m3vit-tiny-cityscapes"), 0, task)
    assert cos > 0.9995
    assert err.mean() < 0.01


@pytest.mark.parametrize("task", [0, 1])
def test_frame_program_computes_the_network(task):
    """The sequencer's descriptor list, run op by op on named buffers, equals the direct model."""
    from sim.golden.interpreter import run_program
    from sim.frame_program import Op, frame_program

    cfg = get_config("tiny")
    qp, _ = golden.quantize_params(cfg, random_params(cfg, 4))
    img = golden.quantize_image(cfg, np.random.default_rng(4).random((3, 32, 32)))
    prog = frame_program(cfg, task)
    m = cfg.model
    assert sum(i.op is Op.ATTENTION for i in prog) == m.depth * m.heads
    assert sum(i.op is Op.EXPERTS for i in prog) == len(m.moe_blocks)
    assert all(i.weight.endswith(f"gates.{task}.weight") for i in prog if i.op is Op.ROUTE)
    assert np.array_equal(run_program(cfg, qp, img, prog), golden.forward(cfg, qp, img, task))
