"""Export a float parameter set as a quantized weight image (``weights.bin`` + ``manifest.json``).

Input: a PyTorch state_dict / module (our names, or timm ViT names where they map, see
:mod:`model_io.names`) or a float numpy ``{name: array}`` dict. Every tensor is checked against
``sim.params.param_specs(cfg)`` (a missing, unexpected or wrong-shaped tensor raises
:class:`~sim.weight_format.WeightImageError` naming it), quantized with the golden model's own
``sim.golden.quantize_params`` (round half up, saturate, format from ``sim.params.param_format``)
and written in the layout of :func:`sim.weight_layout.layout_for`. Values clipped by saturation are
counted per tensor and trigger a :class:`~sim.weight_format.SaturationWarning`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.config import Config
from sim.fixed import QFormat
from sim.golden import quantize_params
from sim.params import param_format, param_specs

from sim import weight_format as fmt
from sim.weight_image import build_image
from sim.weight_layout import LAYOUTS
from model_io.names import to_float_params

__all__ = ["export", "ExportReport", "TensorReport", "build_image", "manifest_json"]


@dataclass(frozen=True)
class TensorReport:
    name: str
    shape: tuple[int, ...]
    qformat: str
    dtype: str
    offset: int
    length: int
    saturated: int

    @property
    def count(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class ExportReport:
    """What :func:`export` wrote: paths, per-tensor rows, totals and ignored input keys."""

    out_dir: Path
    manifest_path: Path
    weights_path: Path
    file_bytes: int
    sha256: str
    tensors: list[TensorReport] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def total_values(self) -> int:
        return sum(t.count for t in self.tensors)

    @property
    def total_saturated(self) -> int:
        return sum(t.saturated for t in self.tensors)

    @property
    def saturated(self) -> dict[str, int]:
        """``{tensor: clipped values}`` for the tensors that saturated."""
        return {t.name: t.saturated for t in self.tensors if t.saturated}

    def table(self) -> str:
        """Readable table: tensor, shape, format, saturated count, and the totals."""
        rows = [(t.name, "x".join(map(str, t.shape)), t.qformat, str(t.saturated))
                for t in self.tensors]
        head = ("tensor", "shape", "format", "saturated")
        w = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
        line = "  ".join("{:<%d}" % x for x in w[:3]) + "  {:>%d}" % w[3]
        out = [line.format(*head), line.format(*("-" * x for x in w))]
        out += [line.format(*r) for r in rows]
        out.append(f"{len(self.tensors)} tensors, {self.total_values:,} values, "
                   f"{self.file_bytes:,} bytes, {self.total_saturated:,} saturated")
        if self.ignored:
            out.append(f"ignored input keys (do not affect the output tokens): "
                       f"{', '.join(self.ignored)}")
        return "\n".join(out)


def _manifest(cfg: Config, blob: bytes, entries: list[dict], source: str) -> dict:
    qformats = {f.name: getattr(cfg.num, f.name) for f in dataclasses.fields(cfg.num)}
    formats = {k: {**v.to_dict(), "qformat": str(v), "dtype": v.numpy_dtype.str}
               for k, v in qformats.items() if isinstance(v, QFormat)}
    return {
        "format": fmt.FORMAT_NAME,
        "format_version": fmt.FORMAT_VERSION,
        "byte_order": "little",
        "alignment": fmt.ALIGNMENT,
        "source": source,
        "config_name": cfg.name,
        "config": cfg.to_dict(),
        "formats": formats,
        "layouts": dict(LAYOUTS),
        "weights_file": {"name": fmt.WEIGHTS_NAME, "bytes": len(blob),
                         "sha256": fmt.sha256(blob), "crc32": fmt.crc32(blob)},
        "tensors": entries,
    }


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def manifest_json(manifest: dict) -> str:
    """The manifest as indented JSON with one line per tensor entry."""
    head = json.dumps({k: v for k, v in manifest.items() if k != "tensors"}, indent=1)
    rows = ",\n".join("  " + json.dumps(e) for e in manifest["tensors"])
    return head[:-2] + ',\n "tensors": [\n' + rows + "\n ]\n}\n"


def export(cfg: Config, source, out_dir, *, source_note: str = "") -> ExportReport:
    """Quantize ``source`` for ``cfg`` and write ``out_dir/weights.bin`` and ``manifest.json``.

    ``source``: PyTorch state_dict or module (our or timm names), or float numpy params dict.
    Raises :class:`WeightImageError` naming any missing, unexpected, wrong-shaped or non-finite
    tensor (nothing is written then); warns :class:`SaturationWarning` listing clipped tensors.
    """
    params, ignored = to_float_params(cfg, source)
    qparams, sat = quantize_params(cfg, params)
    blob, entries = build_image(cfg, qparams)
    manifest = _manifest(cfg, blob, entries, source_note)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights_path, manifest_path = out / fmt.WEIGHTS_NAME, out / fmt.MANIFEST_NAME
    _write_atomic(weights_path, blob)
    _write_atomic(manifest_path, manifest_json(manifest).encode())

    rows = [TensorReport(e["name"], tuple(e["shape"]), e["qformat"], e["dtype"], e["offset"],
                         e["length"], int(sat[e["name"]])) for e in entries]
    report = ExportReport(out, manifest_path, weights_path, len(blob),
                          manifest["weights_file"]["sha256"], rows, ignored)
    if report.total_saturated:
        counts = {t.name: t.count for t in rows}
        worst = sorted(report.saturated.items(), key=lambda kv: -kv[1])
        warnings.warn(fmt.SaturationWarning(
            f"{report.total_saturated} parameter values saturated (clipped to their fixed-point "
            f"range) in {len(worst)} tensor(s): "
            + ", ".join(f"{n} ({c} of {counts[n]} values, format {param_format(cfg, n)})"
                        for n, c in worst)), stacklevel=2)
    return report
