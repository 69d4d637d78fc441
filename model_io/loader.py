"""Load and validate a weight image: ``load(path, cfg=None) -> (cfg, qparams, manifest)``.

Used by the simulator / top level and by the host driver. Everything is checked and every failure
raises :class:`~sim.weight_format.WeightImageError` (a ``ValueError``) naming the tensor, config
field or file and the expected vs found value:

1. the manifest parses and is an edge-moe weight image of a supported format version;
2. the config: rebuilt from the manifest, or -- if ``cfg`` (a Config or a preset name) is given --
   every ``model.*`` and ``num.*`` field of the manifest's config must equal ``cfg``'s (``name`` and
   ``hw.*`` do not change the weights and are not compared);
3. the tensor list equals ``sim.params.param_specs(cfg)``: no missing or extra tensor, every shape,
   Q-format, storage dtype and layout as the config and :mod:`sim.weight_layout` define them,
   offsets aligned and inside the file, lengths consistent;
4. ``weights.bin``: length, per-tensor CRC32, whole-file sha256 and CRC32;
5. every decoded value lies inside its Q-format's range.

The returned ``qparams`` are ``{name: int64 array}`` in logical shapes, exactly what
``sim.golden.forward`` takes.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sim.config import Config, ConfigError, get_config
from sim.fixed import QFormat
from sim.params import param_format, param_specs

from sim import weight_format as fmt
from sim.weight_layout import LAYOUTS, from_storage, stored_shape

__all__ = ["load", "read_manifest", "check_config", "WeightImageError"]

WeightImageError = fmt.WeightImageError


def _paths(path) -> tuple[Path, Path]:
    p = Path(path)
    manifest = p / fmt.MANIFEST_NAME if p.is_dir() else p
    return manifest, manifest.parent


def read_manifest(path) -> dict:
    """Parse ``manifest.json`` (a directory or the file) and check format name and version."""
    manifest_path, _ = _paths(path)
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise WeightImageError(f"no weight-image manifest at {manifest_path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightImageError(f"{manifest_path} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt.FORMAT_NAME:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise WeightImageError(f"{manifest_path} is not an edge-moe weight image: format is "
                               f"{found!r}, expected {fmt.FORMAT_NAME!r}")
    version = manifest.get("format_version")
    if version != fmt.FORMAT_VERSION:
        raise WeightImageError(f"unsupported weight image format version {version!r} in "
                               f"{manifest_path}: this loader reads version {fmt.FORMAT_VERSION}")
    for key in ("config", "weights_file", "tensors"):
        if key not in manifest:
            raise WeightImageError(f"manifest {manifest_path} lacks the {key!r} section")
    return manifest


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and not {"int_bits", "frac_bits"} <= v.keys():
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def check_config(cfg: Config, manifest_config: dict) -> None:
    """Raise naming every ``model.*`` / ``num.*`` field where the manifest differs from ``cfg``."""
    want = _flatten({k: v for k, v in cfg.to_dict().items() if k in ("model", "num")})
    have = _flatten({k: v for k, v in manifest_config.items() if k in ("model", "num")})
    diffs = []
    for key in sorted(set(want) | set(have)):
        w, h = want.get(key, "<absent>"), have.get(key, "<absent>")
        if isinstance(w, dict) and isinstance(h, dict):
            w, h = QFormat.from_dict(w), QFormat.from_dict(h)
        if w != h:
            diffs.append(f"config field {key}: weight image has {h}, expected {w}")
    if diffs:
        raise WeightImageError(f"weight image config {manifest_config.get('name')!r} does not "
                               f"match config {cfg.name!r}:\n  " + "\n  ".join(diffs))


def _resolve_config(cfg, manifest: dict) -> Config:
    if isinstance(cfg, str):
        try:
            cfg = get_config(cfg)
        except ConfigError as e:
            raise WeightImageError(str(e)) from None
    if cfg is None:
        try:
            return Config.from_dict(manifest["config"])
        except (ConfigError, KeyError, TypeError, ValueError) as e:
            raise WeightImageError(f"the manifest's config {manifest.get('config_name')!r} is "
                                   f"invalid: {e}") from None
    check_config(cfg, manifest["config"])
    return cfg


def _check_entry(cfg: Config, e: dict, shape: tuple, file_bytes: int, alignment: int) -> None:
    name = e["name"]

    def need(cond, what, expected, found):
        if not cond:
            raise WeightImageError(f"tensor {name!r}: {what} in weight image is {found}, "
                                   f"expected {expected}")

    need(tuple(e["shape"]) == shape, "shape", shape, tuple(e["shape"]))
    q = param_format(cfg, name)
    found_q = QFormat.from_dict(e["format"])
    need(found_q == q, "Q-format", q, found_q)
    need(e["dtype"] == q.numpy_dtype.str, "dtype", q.numpy_dtype.str, e["dtype"])
    need(e["layout"] in LAYOUTS, "layout", f"one of {list(LAYOUTS)}", repr(e["layout"]))
    st = stored_shape(e["layout"], shape)
    need(tuple(e["stored_shape"]) == st, "stored_shape", st, tuple(e["stored_shape"]))
    nbytes = math.prod(shape) * q.numpy_dtype.itemsize
    need(e["length"] == nbytes, "length", f"{nbytes} bytes", f"{e['length']} bytes")
    need(e["offset"] % alignment == 0, "offset", f"a multiple of {alignment}", e["offset"])
    need(e["offset"] + e["length"] <= file_bytes, "end offset",
         f"<= file size {file_bytes}", e["offset"] + e["length"])


def load(path, cfg: Config | str | None = None) -> tuple[Config, dict[str, np.ndarray], dict]:
    """Validate and load a weight image; returns (cfg, qparams, manifest). See the module doc."""
    manifest_path, root = _paths(path)
    manifest = read_manifest(manifest_path)
    cfg = _resolve_config(cfg, manifest)
    specs = param_specs(cfg)
    alignment = int(manifest.get("alignment", fmt.ALIGNMENT))

    try:
        entries = {e["name"]: e for e in manifest["tensors"]}
        wf = manifest["weights_file"]
        file_name, file_bytes, file_sha = wf["name"], int(wf["bytes"]), wf["sha256"]
    except (KeyError, TypeError) as e:
        raise WeightImageError(f"manifest {manifest_path} is malformed: missing field "
                               f"{e}") from None
    if len(entries) != len(manifest["tensors"]):
        raise WeightImageError("manifest lists a tensor twice")
    missing = [f"{n!r} (expected shape {s})" for n, s in specs.items() if n not in entries]
    extra = [repr(n) for n in entries if n not in specs]
    if missing or extra:
        raise WeightImageError(
            f"weight image tensors do not match config {cfg.name!r}:"
            + (f" missing tensor(s) {', '.join(missing)};" if missing else "")
            + (f" unexpected tensor(s) {', '.join(extra)} not in the config" if extra else ""))
    try:
        for name, shape in specs.items():
            _check_entry(cfg, entries[name], shape, file_bytes, alignment)
    except KeyError as e:
        raise WeightImageError(f"manifest entry is missing field {e}") from None
    spans = sorted((entries[n]["offset"], entries[n]["offset"] + entries[n]["length"], n)
                   for n in specs)
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise WeightImageError(f"tensors {a!r} and {b!r} overlap in the weight image")

    weights_path = root / file_name
    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise WeightImageError(f"weights file {weights_path} is missing") from None
    if len(blob) != file_bytes:
        kind = "truncated" if len(blob) < file_bytes else "longer than its manifest says"
        raise WeightImageError(f"{weights_path.name} is {kind}: manifest says {file_bytes} bytes, "
                               f"file has {len(blob)}")

    qparams = {}
    for name, shape in specs.items():
        e = entries[name]
        data = blob[e["offset"]:e["offset"] + e["length"]]
        crc = fmt.crc32(data)
        if crc != e["crc32"]:
            raise WeightImageError(f"tensor {name!r}: CRC32 mismatch (bytes {e['offset']}.."
                                   f"{e['offset'] + e['length'] - 1} of {weights_path.name}): "
                                   f"manifest {e['crc32']:#010x}, data {crc:#010x}")
        q = param_format(cfg, name)
        a = np.frombuffer(data, dtype=np.dtype(e["dtype"])).astype(np.int64)
        bad = np.count_nonzero((a < q.min_int) | (a > q.max_int))
        if bad:
            raise WeightImageError(f"tensor {name!r}: {bad} values outside the range of {q}")
        qparams[name] = from_storage(e["layout"], a, shape)
    sha = fmt.sha256(blob)
    if sha != file_sha:
        raise WeightImageError(f"{weights_path.name}: sha256 mismatch (padding or the file "
                               f"changed): manifest {file_sha}, file {sha}")
    if "crc32" in wf and fmt.crc32(blob) != wf["crc32"]:
        raise WeightImageError(f"{weights_path.name}: whole-file CRC32 mismatch")
    return cfg, qparams, manifest
