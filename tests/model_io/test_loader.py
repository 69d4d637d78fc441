"""Loader: every validation failure raises WeightImageError naming what and expected vs found."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sim.weight_format import crc32, sha256
from model_io.loader import WeightImageError, load
from sim.config import get_config, with_changes
from sim.fixed import QFormat


def _edit_manifest(image_dir, fn):
    path = image_dir / "manifest.json"
    m = json.loads(path.read_text())
    fn(m)
    path.write_text(json.dumps(m))


def _entry(m, name):
    return next(e for e in m["tensors"] if e["name"] == name)


def _raises(image_dir, *facts, cfg=None):
    with pytest.raises(WeightImageError) as info:
        load(image_dir, cfg)
    msg = str(info.value)
    for fact in facts:
        assert fact in msg, f"{fact!r} not in {msg!r}"
    return msg


def test_is_value_error():
    assert issubclass(WeightImageError, ValueError)


def test_load_directory_or_manifest_path(tiny_image_dir, tiny):
    cfg, q, manifest = load(tiny_image_dir / "manifest.json")
    assert cfg == tiny and manifest["config_name"] == "tiny" and len(q) == len(manifest["tensors"])


def test_missing_tensor(tiny_image_dir):
    name = "blocks.1.mlp.gates.0.weight"
    _edit_manifest(tiny_image_dir, lambda m: m["tensors"].remove(_entry(m, name)))
    _raises(tiny_image_dir, "missing", "'blocks.1.mlp.gates.0.weight'", "(4, 32)")


def test_extra_tensor(tiny_image_dir):
    def add(m):
        e = dict(_entry(m, "norm.bias"), name="blocks.0.ls1.gamma")
        m["tensors"].append(e)
    _edit_manifest(tiny_image_dir, add)
    _raises(tiny_image_dir, "unexpected", "'blocks.0.ls1.gamma'", "not in the config")


def test_wrong_shape(tiny_image_dir):
    _edit_manifest(tiny_image_dir,
                   lambda m: _entry(m, "blocks.0.attn.qkv.weight").update(shape=[32, 96]))
    _raises(tiny_image_dir, "'blocks.0.attn.qkv.weight'", "shape", "(32, 96)", "expected (96, 32)")


def test_wrong_qformat_and_dtype(tiny_image_dir):
    _edit_manifest(tiny_image_dir, lambda m: _entry(m, "blocks.0.mlp.fc1.weight").update(
        format={"int_bits": 4, "frac_bits": 12, "signed": True}))
    _raises(tiny_image_dir, "'blocks.0.mlp.fc1.weight'", "Q-format", "Q4.12", "expected Q2.14")


def test_wrong_dtype(tiny_image_dir, tiny):
    right = tiny.num.ln_gamma.numpy_dtype.str
    wrong = "<i2" if right != "<i2" else "<i4"
    _edit_manifest(tiny_image_dir, lambda m: _entry(m, "norm.weight").update(dtype=wrong))
    _raises(tiny_image_dir, "'norm.weight'", "dtype", wrong, f"expected {right}")


def test_unknown_layout(tiny_image_dir):
    _edit_manifest(tiny_image_dir, lambda m: _entry(m, "pos_embed").update(layout="tiled_4x4"))
    _raises(tiny_image_dir, "'pos_embed'", "layout", "tiled_4x4", "k_major")


def test_truncated_file(tiny_image_dir):
    path = tiny_image_dir / "weights.bin"
    n = path.stat().st_size
    path.write_bytes(path.read_bytes()[:n - 100])
    _raises(tiny_image_dir, "weights.bin is truncated", f"{n} bytes", f"file has {n - 100}")


def test_missing_weights_file(tiny_image_dir):
    (tiny_image_dir / "weights.bin").unlink()
    _raises(tiny_image_dir, "weights.bin", "missing")


def test_bad_tensor_checksum(tiny_image_dir):
    m = json.loads((tiny_image_dir / "manifest.json").read_text())
    e = _entry(m, "blocks.1.mlp.experts.2.fc1.weight")
    path = tiny_image_dir / "weights.bin"
    blob = bytearray(path.read_bytes())
    blob[e["offset"] + 10] ^= 0x01
    path.write_bytes(bytes(blob))
    _raises(tiny_image_dir, "'blocks.1.mlp.experts.2.fc1.weight'", "CRC32 mismatch",
            f"{e['crc32']:#010x}")


def test_bad_whole_file_checksum(tiny_image_dir):
    """Per-tensor CRCs pass but the file's sha256 (which also covers padding) does not."""
    m = json.loads((tiny_image_dir / "manifest.json").read_text())
    actual = m["weights_file"]["sha256"]
    _edit_manifest(tiny_image_dir, lambda m: m["weights_file"].update(sha256="0" * 64))
    _raises(tiny_image_dir, "weights.bin: sha256 mismatch", "manifest " + "0" * 64, actual)


def test_wrong_format_version(tiny_image_dir):
    _edit_manifest(tiny_image_dir, lambda m: m.update(format_version=2))
    _raises(tiny_image_dir, "format version 2", "reads version 1")


def test_not_a_weight_image(tiny_image_dir, tmp_path):
    _edit_manifest(tiny_image_dir, lambda m: m.update(format="something-else"))
    _raises(tiny_image_dir, "not an edge-moe weight image", "'something-else'")
    (tmp_path / "bad.json").write_text("{not json")
    _raises(tmp_path / "bad.json", "not valid JSON")
    _raises(tmp_path / "nowhere", "no weight-image manifest")


def test_unknown_config_name(tiny_image_dir):
    _raises(tiny_image_dir, "unknown config 'm3vit-huge'", "tiny", cfg="m3vit-huge")


def test_invalid_manifest_config(tiny_image_dir):
    _edit_manifest(tiny_image_dir, lambda m: m["config"]["model"].update(heads=3))
    _raises(tiny_image_dir, "manifest's config 'tiny' is invalid", "heads 3")


def test_config_mismatch_names_the_field(tiny_image_dir):
    _raises(tiny_image_dir, "config field model.dim: weight image has 32, expected 192",
            "model.depth", cfg=get_config("m3vit-tiny-cityscapes"))
    tiny = get_config("tiny")
    other = with_changes(tiny, num={"ln_gamma": QFormat(5, 11)})
    _raises(tiny_image_dir, f"config field num.ln_gamma: weight image has {tiny.num.ln_gamma}, "
            "expected Q5.11", cfg=other)


def test_hw_and_name_do_not_matter(tiny_image_dir, tiny):
    cfg2 = with_changes(tiny, name="tiny-2x2", hw={"array_rows": 2, "array_cols": 2})
    cfg, q, _ = load(tiny_image_dir, cfg2)
    _, q_ref, _ = load(tiny_image_dir, "tiny")
    assert cfg is cfg2 and all(np.array_equal(q[k], q_ref[k]) for k in q)


def test_value_outside_format_range(tiny_image_dir, tiny):
    """A stored integer that fits its dtype but not its Q-format (storage wider than the format).

    Shrink ln_gamma by one integer bit (same dtype) in the manifest's config and entries alike,
    then store a value beyond the shrunk format with valid checksums.
    """
    g = tiny.num.ln_gamma
    small = QFormat(g.int_bits - 1, g.frac_bits)
    assert small.numpy_dtype == g.numpy_dtype

    def shrink(m):
        m["config"]["num"]["ln_gamma"] = small.to_dict()
        for e in m["tensors"]:
            if e["format"] == g.to_dict():
                e["format"] = small.to_dict()
    _edit_manifest(tiny_image_dir, shrink)
    path = tiny_image_dir / "weights.bin"
    m = json.loads((tiny_image_dir / "manifest.json").read_text())
    e = _entry(m, "norm.weight")
    blob = bytearray(path.read_bytes())
    n = g.storage_bytes
    blob[e["offset"]:e["offset"] + n] = (small.max_int + 1).to_bytes(n, "little", signed=True)
    path.write_bytes(bytes(blob))
    e["crc32"] = crc32(bytes(blob[e["offset"]:e["offset"] + e["length"]]))
    m["weights_file"].update(sha256=sha256(bytes(blob)), crc32=crc32(bytes(blob)))
    (tiny_image_dir / "manifest.json").write_text(json.dumps(m))
    _raises(tiny_image_dir, "'norm.weight'", f"1 values outside the range of {small}")
