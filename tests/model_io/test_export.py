"""Exporter: round trip, file layout, manifest contents, input checks and saturation reporting."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model_io.export import export
from sim.weight_format import ALIGNMENT, FORMAT_NAME, FORMAT_VERSION, SaturationWarning, \
    WeightImageError, crc32, sha256
from model_io.loader import load
from model_io.torch_model import M3ViT, state_dict_to_numpy
from sim.config import get_config
from sim.golden import quantize_params
from sim.params import param_format, param_specs, random_params


def test_round_trip_bit_exact(tiny, tmp_path):
    """Acceptance: export(random_params(tiny, 0)) then load == sim.golden.quantize_params."""
    params = random_params(get_config("tiny"), 0)
    report = export(tiny, params, tmp_path)
    cfg, qparams, manifest = load(tmp_path)
    want, sat = quantize_params(tiny, params)
    assert cfg == tiny and list(qparams) == list(want)
    for name in want:
        assert qparams[name].dtype == np.int64 and qparams[name].shape == want[name].shape
        assert np.array_equal(qparams[name], want[name]), name
    assert report.total_saturated == sum(sat.values()) == 0
    assert report.total_values == sum(int(np.prod(s)) for s in param_specs(tiny).values())


def test_torch_state_dict_input(tiny, tmp_path):
    sd = M3ViT(tiny, seed=5, init="unit").state_dict()
    export(tiny, sd, tmp_path)
    _, qparams, _ = load(tmp_path, tiny)
    want, _ = quantize_params(tiny, state_dict_to_numpy(sd))
    assert all(np.array_equal(qparams[k], want[k]) for k in want)


def test_manifest_and_layout(tiny, tiny_params, tmp_path):
    report = export(tiny, tiny_params, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    blob = (tmp_path / "weights.bin").read_bytes()
    assert manifest["format"] == FORMAT_NAME and manifest["format_version"] == FORMAT_VERSION
    assert manifest["config"] == json.loads(tiny.to_json())
    assert manifest["formats"]["weight"]["qformat"] == str(tiny.num.weight)
    wf = manifest["weights_file"]
    assert wf["bytes"] == len(blob) == report.file_bytes and len(blob) % ALIGNMENT == 0
    assert wf["sha256"] == sha256(blob) and wf["crc32"] == crc32(blob)
    q, _ = quantize_params(tiny, tiny_params)
    entries = {e["name"]: e for e in manifest["tensors"]}
    assert list(entries) == list(param_specs(tiny))
    for name, e in entries.items():
        f = param_format(tiny, name)
        assert e["offset"] % ALIGNMENT == 0 and e["dtype"] == f.numpy_dtype.str
        assert e["qformat"] == str(f) and tuple(e["shape"]) == param_specs(tiny)[name]
        raw = np.frombuffer(blob[e["offset"]:e["offset"] + e["length"]], dtype=e["dtype"])
        assert e["crc32"] == crc32(raw.tobytes())
        if name.endswith(".weight") and len(e["shape"]) >= 2:   # K-major: (in, out) row-major
            assert e["layout"] == "k_major"
            k = int(np.prod(e["shape"][1:]))
            assert e["stored_shape"] == [k, e["shape"][0]]
            assert np.array_equal(raw.reshape(k, -1), q[name].reshape(e["shape"][0], k).T)
        else:
            assert e["layout"] == "row_major"
            assert np.array_equal(raw, q[name].ravel())


@pytest.mark.parametrize("edit, facts", [
    (lambda p: p.pop("blocks.1.mlp.gates.1.weight"),
     ["missing tensor 'blocks.1.mlp.gates.1.weight'", "(4, 32)"]),
    (lambda p: p.update({"blocks.0.attn.q_norm.weight": np.ones(16)}),
     ["unexpected tensor 'blocks.0.attn.q_norm.weight'", "(16,)"]),
    (lambda p: p.update({"pos_embed": np.zeros((1, 16, 32))}),
     ["'pos_embed'", "(1, 16, 32)", "(1, 17, 32)"]),
    (lambda p: p["norm.bias"].__setitem__(3, np.nan), ["'norm.bias'", "NaN"]),
])
def test_export_rejects_bad_params(tiny, tiny_params, tmp_path, edit, facts):
    params = {k: v.copy() for k, v in tiny_params.items()}
    edit(params)
    with pytest.raises(WeightImageError) as info:
        export(tiny, params, tmp_path / "out")
    for fact in facts:
        assert fact in str(info.value)
    assert not (tmp_path / "out").exists()   # nothing written


def test_export_lists_every_problem(tiny, tiny_params, tmp_path):
    params = dict(tiny_params)
    del params["norm.weight"], params["cls_token"]
    params["head.bias"] = np.zeros(10)   # a timm classifier key: ignored, not an error
    params["extra"] = np.zeros(2)
    with pytest.raises(WeightImageError) as info:
        export(tiny, params, tmp_path)
    msg = str(info.value)
    assert "3 problems" in msg and "'norm.weight'" in msg and "'cls_token'" in msg
    assert "'extra'" in msg and "head.bias" not in msg


def test_saturation_is_counted_and_warned(tiny, tiny_params, tmp_path):
    params = {k: v.copy() for k, v in tiny_params.items()}
    name = "blocks.0.attn.qkv.bias"
    fmt = param_format(tiny, name)
    params[name][:3] = [fmt.max_value * 4, -fmt.max_value * 4, fmt.max_value * 2]
    want = r"3 parameter values saturated.*blocks\.0\.attn\.qkv\.bias \(3 of 96"
    with pytest.warns(SaturationWarning, match=want):
        report = export(tiny, params, tmp_path)
    assert report.saturated == {name: 3} and report.total_saturated == 3
    assert f"{name}" in report.table() and "3 saturated" in report.table()
    _, q, _ = load(tmp_path)
    assert q[name][:3].tolist() == [fmt.max_int, fmt.min_int, fmt.max_int]


@pytest.mark.slow
def test_round_trip_m3vit(tmp_path):
    cfg = get_config("m3vit-tiny-cityscapes")
    params = random_params(cfg, 0)
    export(cfg, params, tmp_path)
    _, qparams, _ = load(tmp_path, cfg)
    want, _ = quantize_params(cfg, params)
    assert all(np.array_equal(qparams[k], want[k]) for k in want)
