"""Accuracy of the bit-exact golden model against the float model, for one checkpoint and image.

:func:`evaluate` runs the float64 PyTorch reference once per task and the integer golden model
(:func:`sim.golden.forward`) once per task and numeric-format candidate, and returns per task:
cosine similarity of the output tokens, mean / max absolute error, relative RMS error, routing
flips per MoE block (tokens whose chosen expert *set* differs from float) and saturation counts:
weights at export (per tensor) and activations at every rounding point of the golden model (per
layer and format, via :class:`sim.fixed.SaturationProbe`).

:func:`parse_formats` reads a candidate such as ``act=Q8.10,weight=Q2.16``; the bias format
follows the accumulator scale (``act.frac + weight.frac``, keeping its integer bits) unless it is
given.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from sim.config import Config, ConfigError
from sim.fixed import QFormat, SaturationProbe, dequantize
from sim.golden import forward as golden_forward, quantize_image, quantize_params

from model_io.compare import cosine, routing_differences
from model_io.torch_model import from_params

__all__ = ["TaskAccuracy", "Candidate", "evaluate", "parse_formats", "candidate_config",
           "FORMAT_FIELDS", "float_reference", "summary_line"]

# NumericsConfig fields a candidate may set (QFormat-valued).
FORMAT_FIELDS = ("act", "weight", "bias", "ln_gamma", "ln_norm", "score", "exp")
_QRE = re.compile(r"^(U?)Q(\d+)\.(\d+)$")


@dataclass(frozen=True)
class Candidate:
    """A set of format overrides, e.g. ``{"act": QFormat(8, 10)}`` (empty: the config's own)."""
    formats: tuple = ()          # ((field, QFormat), ...) in a stable order

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.formats) or "config"

    def as_dict(self) -> dict:
        return dict(self.formats)


def parse_formats(spec: str) -> Candidate:
    """``"act=Q8.10,weight=Q2.16"`` -> :class:`Candidate`; ValueError naming a bad part."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "=" not in part:
            raise ValueError(f"format spec {spec!r}: expected FIELD=QI.F, got {part!r}")
        key, val = (s.strip() for s in part.split("=", 1))
        if key not in FORMAT_FIELDS:
            raise ValueError(f"format spec {spec!r}: unknown field {key!r} "
                             f"(one of {', '.join(FORMAT_FIELDS)})")
        m = _QRE.match(val)
        if not m:
            raise ValueError(f"format spec {spec!r}: {key}={val!r} is not a Q-format like Q8.10 "
                             f"or UQ1.15")
        out[key] = QFormat(int(m.group(2)), int(m.group(3)), signed=not m.group(1))
    if not out:
        raise ValueError(f"format spec {spec!r} sets no format")
    return Candidate(tuple((k, out[k]) for k in FORMAT_FIELDS if k in out))


def candidate_config(cfg: Config, cand: Candidate) -> Config:
    """``cfg`` with the candidate's formats; the bias keeps accumulator scale unless set."""
    num = dataclasses.replace(cfg.num, **cand.as_dict())
    if "bias" not in cand.as_dict():
        acc_frac = num.act.frac_bits + num.weight.frac_bits
        num = dataclasses.replace(num, bias=QFormat(cfg.num.bias.int_bits, acc_frac))
    try:
        return dataclasses.replace(cfg, num=num)
    except ConfigError as e:
        raise ValueError(f"formats {cand.label}: {e}") from None


@dataclass
class TaskAccuracy:
    """Golden-vs-float error of one task under one candidate."""
    task: int
    candidate: str
    cosine: float
    mean_abs: float
    max_abs: float
    rel_rms: float
    routing_flips: dict                       # {"blocks.i": tokens}
    weight_saturation: dict                   # {tensor: clipped values} (non-zero only)
    act_saturation: dict                      # {"scope [format]": [clipped, total]} (non-zero)
    act_values: int = 0                       # values rounded in the frame

    @property
    def flips(self) -> int:
        return sum(self.routing_flips.values())

    @property
    def weight_clipped(self) -> int:
        return sum(self.weight_saturation.values())

    @property
    def act_clipped(self) -> int:
        return sum(c for c, _ in self.act_saturation.values())

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(flips=self.flips, weight_clipped=self.weight_clipped,
                 act_clipped=self.act_clipped)
        return d

    def summary(self) -> str:
        return (f"task {self.task}: cosine {self.cosine:.6f}, mean abs err {self.mean_abs:.4g}, "
                f"max {self.max_abs:.4g}, rel RMS {self.rel_rms:.4g}, routing flips {self.flips}, "
                f"saturated: {self.weight_clipped} weights, {self.act_clipped} activations")


@dataclass
class FloatReference:
    """The float model's output and routing for one task (shared by every candidate)."""
    task: int
    tokens: np.ndarray
    experts: dict = field(default_factory=dict)


def float_reference(cfg: Config, params: dict, image, task: int) -> FloatReference:
    model = from_params(cfg, params, torch.float64)
    trace: dict = {}
    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(image, np.float64)), task, trace).numpy()
    return FloatReference(task, out, {f"blocks.{i}": trace[f"blocks.{i}.experts"]
                                      for i in cfg.model.moe_blocks})


def _golden(cfg: Config, params: dict, image, ref: FloatReference, label: str,
            quantized=None) -> TaskAccuracy:
    qp, wsat = quantized if quantized is not None else quantize_params(cfg, params)
    trace: dict = {}
    with SaturationProbe() as probe:
        out_q = golden_forward(cfg, qp, quantize_image(cfg, image), ref.task, trace)
    got = dequantize(out_q, cfg.num.act)
    want = ref.tokens
    err = np.abs(got - want)
    experts = {f"blocks.{i}": trace[f"blocks.{i}.routing"].experts for i in cfg.model.moe_blocks}
    rel = float(np.sqrt(np.mean((got - want) ** 2) / max(np.mean(want ** 2), 1e-300)))
    act_sat = {f"{s} [{f}]": v for (s, f), v in probe.counts.items() if v[0]}
    return TaskAccuracy(
        task=ref.task, candidate=label, cosine=float(cosine(want.ravel(), got.ravel())),
        mean_abs=float(err.mean()), max_abs=float(err.max()), rel_rms=rel,
        routing_flips=routing_differences(cfg, ref.experts, experts),
        weight_saturation={k: v for k, v in wsat.items() if v},
        act_saturation=act_sat, act_values=sum(t for _, t in probe.counts.values()))


def evaluate(cfg: Config, params: dict, image, tasks=None, candidates=(Candidate(),),
             progress=None) -> dict[str, list[TaskAccuracy]]:
    """``{candidate label: [TaskAccuracy per task]}``; ``progress(text)`` is told each step."""
    m = cfg.model
    tasks = list(range(m.tasks)) if tasks is None else list(tasks)
    for t in tasks:
        if not 0 <= t < m.tasks:
            raise ValueError(f"task {t} out of range: config {cfg.name!r} has {m.tasks} tasks")
    img = np.asarray(image, np.float64)
    want = (m.image_channels, m.image_height, m.image_width)
    if img.shape != want:
        raise ValueError(f"image shape {img.shape} does not match config {cfg.name!r}: "
                         f"expected {want} (C, H, W)")
    refs = []
    for t in tasks:
        if progress:
            progress(f"float model, task {t}")
        refs.append(float_reference(cfg, params, img, t))
    out = {}
    for cand in candidates:
        ccfg = candidate_config(cfg, cand)
        quantized = quantize_params(ccfg, params)
        rows = []
        for ref in refs:
            if progress:
                progress(f"golden model {cand.label}, task {ref.task}")
            rows.append(_golden(ccfg, params, img, ref, cand.label, quantized))
        out[cand.label] = rows
    return out


def summary_line(rows) -> str:
    """One line over all tasks: worst cosine, worst max error, flips, saturation."""
    worst = min(rows, key=lambda r: r.cosine)
    return (f"accuracy vs float: cosine >= {worst.cosine:.6f} over {len(rows)} task(s), "
            f"max abs err {max(r.max_abs for r in rows):.4g}, routing flips "
            f"{sum(r.flips for r in rows)}, saturated {rows[0].weight_clipped} weights / "
            f"{sum(r.act_clipped for r in rows)} activations")
