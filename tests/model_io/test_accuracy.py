"""`edge-moe accuracy` and its parts: format specs, the golden-vs-float figures, the synthetic
checkpoint with a trained model's value ranges (model_io/realistic.py).

Figures are checked against an independent computation: the float tokens come from the PyTorch
model run here, the golden tokens from ``sim.golden.forward``, and the metrics are recomputed with
numpy; saturation counts are checked against an explicit count of values at the rails.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edge_moe.cli import main
from model_io.accuracy import Candidate, candidate_config, evaluate, parse_formats
from model_io.images import prepare_image, sample_image
from model_io.realistic import TARGET_RANGES, realistic_params, value_ranges
from model_io.torch_model import from_params
from sim.config import get_config, with_changes
from sim.fixed import QFormat, dequantize
from sim.golden import forward, quantize_image, quantize_params


def _image(cfg):
    return prepare_image(sample_image(cfg), cfg).pixels


def test_parse_formats():
    c = parse_formats("act=Q8.10, weight=Q2.16")
    assert c.as_dict() == {"act": QFormat(8, 10), "weight": QFormat(2, 16)}
    assert c.label == "act=Q8.10,weight=Q2.16"
    assert parse_formats("exp=UQ1.17").as_dict() == {"exp": QFormat(1, 17, signed=False)}
    with pytest.raises(ValueError, match=r"unknown field 'activ'"):
        parse_formats("activ=Q8.8")
    with pytest.raises(ValueError, match=r"act='8.8' is not a Q-format"):
        parse_formats("act=8.8")
    with pytest.raises(ValueError, match=r"expected FIELD=QI.F, got 'Q8.8'"):
        parse_formats("Q8.8")


def test_candidate_keeps_the_bias_in_accumulator_scale(tiny):
    c = candidate_config(tiny, parse_formats("act=Q8.10,weight=Q2.16"))
    assert c.num.bias == QFormat(tiny.num.bias.int_bits, 26)
    assert candidate_config(tiny, Candidate()) == tiny


def test_evaluate_matches_an_independent_computation(tiny, tiny_params):
    img = _image(tiny)
    res = evaluate(tiny, tiny_params, img, candidates=[Candidate()])["config"]
    assert [r.task for r in res] == list(range(tiny.model.tasks))
    model = from_params(tiny, tiny_params, torch.float64)
    qp, _ = quantize_params(tiny, tiny_params)
    for r in res:
        with torch.no_grad():
            ref = model(torch.as_tensor(img), r.task).numpy()
        got = dequantize(forward(tiny, qp, quantize_image(tiny, img), r.task), tiny.num.act)
        cos = float(np.dot(ref.ravel(), got.ravel())
                    / np.linalg.norm(ref.ravel()) / np.linalg.norm(got.ravel()))
        assert r.cosine == pytest.approx(cos, abs=1e-12)
        assert r.max_abs == pytest.approx(np.abs(got - ref).max())
        assert r.rel_rms == pytest.approx(np.linalg.norm(got - ref) / np.linalg.norm(ref))
        assert r.cosine > 0.999 and r.act_clipped == 0 and r.weight_clipped == 0


def test_saturation_is_counted_where_it_happens(tiny):
    """A 4-integer-bit activation format saturates on the realistic model (LN outputs ~35 on
    tiny); the probe's count equals the values at the rails of a traced layer output (counted
    here directly)."""
    params = realistic_params(tiny, 0)
    narrow = parse_formats("act=Q4.8")
    r = evaluate(tiny, params, _image(tiny), [0], [narrow])[narrow.label][0]
    assert r.act_clipped > 0 and r.cosine < 0.99
    ncfg = candidate_config(tiny, narrow)
    qp, _ = quantize_params(ncfg, params)
    trace: dict = {}
    forward(ncfg, qp, quantize_image(ncfg, _image(tiny)), 0, trace)
    a = ncfg.num.act
    qkv = trace["blocks.0.qkv"]
    at_rail = int(np.count_nonzero((qkv == a.max_int) | (qkv == a.min_int)))
    assert r.act_saturation.get(f"blocks.0.attn.qkv [{a}]", [0])[0] == at_rail > 0


def test_weight_saturation_is_reported(tiny, tiny_params):
    p = dict(tiny_params)
    w = p["blocks.0.attn.proj.weight"].copy()
    w[0, :3] = 5.0                                  # Q2.14 holds |w| < 2
    p["blocks.0.attn.proj.weight"] = w
    r = evaluate(tiny, p, _image(tiny), [0])["config"][0]
    assert r.weight_saturation == {"blocks.0.attn.proj.weight": 3}


def test_bad_inputs_are_clear_errors(tiny, tiny_params):
    with pytest.raises(ValueError, match=r"image shape \(3, 16, 16\) does not match config "
                                         r"'tiny': expected \(3, 32, 32\)"):
        evaluate(tiny, tiny_params, np.zeros((3, 16, 16)))
    with pytest.raises(ValueError, match=r"task 5 out of range"):
        evaluate(tiny, tiny_params, _image(tiny), [5])


def _reduced_m3vit():
    """M3ViT at full width with two blocks (one dense, one MoE): the same value ranges, 1/6 the
    time of the full depth."""
    return with_changes(get_config("m3vit-tiny-cityscapes"), name="m3vit-d2",
                        model=dict(depth=2, moe_blocks=(1,)))


def test_realistic_checkpoint_has_trained_value_ranges():
    cfg = _reduced_m3vit()
    p = realistic_params(cfg, 0)
    img = _image(cfg)
    r = value_ranges(cfg, p, img)
    assert 0.9 * TARGET_RANGES["ln_gamma"] <= r["ln_gamma"] <= TARGET_RANGES["ln_gamma"]
    assert r["bias"] == TARGET_RANGES["bias"]
    assert 0.85 * TARGET_RANGES["ln_out"] <= r["ln_out"] <= 1.15 * TARGET_RANGES["ln_out"]
    assert 0.7 * TARGET_RANGES["score"] <= r["score"] <= 1.4 * TARGET_RANGES["score"]
    # The golden model sees the same LayerNorm range (independent of the float hooks).
    qp, _ = quantize_params(cfg, p)
    trace: dict = {}
    forward(cfg, qp, quantize_image(cfg, img), 0, trace)
    ln_max = max(np.abs(dequantize(trace[k], cfg.num.act)).max() for k in trace
                 if k.endswith(("norm1", "norm2")))
    assert ln_max == pytest.approx(r["ln_out"], abs=0.5)


@pytest.mark.parametrize("formats", ["", "act=Q8.10"])
def test_realistic_checkpoint_accuracy_reduced(formats):
    """The shipped formats (and the Q8.10 candidate): no saturation, cosine >= 0.9995 per task."""
    cfg = _reduced_m3vit()
    cand = parse_formats(formats) if formats else Candidate()
    rows = evaluate(cfg, realistic_params(cfg, 0), _image(cfg), candidates=[cand])[cand.label]
    for r in rows:
        assert r.weight_clipped == 0 and r.act_clipped == 0, r.summary()
        assert r.cosine >= 0.9995, r.summary()


@pytest.mark.slow
def test_realistic_checkpoint_accuracy_m3vit():
    cfg = get_config("m3vit-tiny-cityscapes")
    rows = evaluate(cfg, realistic_params(cfg, 0), _image(cfg))["config"]
    for r in rows:
        assert r.weight_clipped == 0 and r.act_clipped == 0, r.summary()
        assert r.cosine >= 0.9995, r.summary()


def test_cli_accuracy_runs_and_writes_json(tmp_path, capsys):
    out = tmp_path / "acc.json"
    rc = main(["accuracy", "--config", "tiny", "--random-seed", "0", "--quiet",
               "--formats", "act=Q8.10", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "accuracy vs float: cosine >=" in text and "act=Q8.10" in text
    d = json.loads(out.read_text())
    assert [r["formats"] for r in d["sweep"]] == ["config", "act=Q8.10"]
    assert d["sweep"][1]["operand_bits"] == "18x16"
    assert set(d["tasks"]["config"][0]) >= {"cosine", "routing_flips", "act_saturation"}


def test_cli_accuracy_reads_a_checkpoint(tmp_path, tiny, tiny_params, capsys):
    ckpt = tmp_path / "m.npz"
    np.savez(ckpt, **tiny_params)
    assert main(["accuracy", "--config", "tiny", "--checkpoint", str(ckpt), "--quiet",
                 "--formats"]) == 0
    assert f"checkpoint {ckpt}" in capsys.readouterr().out


def test_cli_accuracy_errors(tmp_path, tiny_params, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{k: v for k, v in tiny_params.items() if k != "pos_embed"})
    assert main(["accuracy", "--config", "tiny", "--checkpoint", str(bad), "--quiet"]) == 2
    assert "pos_embed" in capsys.readouterr().err
    assert main(["accuracy", "--config", "tiny", "--random-seed", "0", "--quiet",
                 "--formats", "act=Q8"]) == 2
    assert "is not a Q-format" in capsys.readouterr().err
    assert main(["accuracy", "--config", "tiny", "--random-seed", "0", "--quiet",
                 "--image", str(tmp_path / "none.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    wrong = tmp_path / "img.npy"
    np.save(wrong, np.zeros((3, 8, 8)))
    assert main(["accuracy", "--config", "tiny", "--random-seed", "0", "--quiet",
                 "--image", str(wrong)]) == 2
    assert "does not match config 'tiny'" in capsys.readouterr().err
