"""Map an incoming state_dict's names onto ours and check names and shapes against the config.

Our names (:func:`sim.params.param_specs`) are timm's ``VisionTransformer`` names wherever the
tensor exists in timm, so a timm ViT's patch embedding, cls token, pos embed, attention,
LayerNorms and dense-block MLPs map one-to-one with no renaming. Handled here:

- a leading ``module.`` (DataParallel / DDP checkpoints) is stripped;
- timm tensors that do not affect the encoder's output tokens are dropped and reported:
  :data:`TIMM_IGNORED` (the classifier ``head.*`` and the pooled-feature ``fc_norm.*``);
- anything else that is not ours (e.g. timm's ``ls1.gamma`` LayerScale, ``norm_pre``, ``reg_token``,
  or a dense ``blocks.{i}.mlp.fc1`` where the config has an MoE block) is *not* silently dropped:
  it is reported as an unexpected tensor, because it would change the computed function.

A timm checkpoint has no per-task gates or experts, so exporting one for a config with MoE blocks
fails, naming every missing MoE tensor.
"""
from __future__ import annotations

import numpy as np

from sim.config import Config
from sim.params import param_specs

from sim.weight_format import WeightImageError

__all__ = ["TIMM_IGNORED", "normalize_names", "check_params", "to_float_params"]

TIMM_IGNORED = ("head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias")

_MAX_LISTED = 20


def normalize_names(state_dict: dict) -> tuple[dict, list[str]]:
    """(state_dict with our names, sorted list of dropped timm-only keys)."""
    out, ignored = {}, []
    for key, value in state_dict.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if name in TIMM_IGNORED:
            ignored.append(key)
        else:
            out[name] = value
    return out, sorted(ignored)


def _shape(v) -> tuple[int, ...]:
    return tuple(int(s) for s in (v.shape if hasattr(v, "shape") else np.shape(v)))


def check_params(cfg: Config, params: dict, what: str = "parameters") -> None:
    """Raise :class:`WeightImageError` naming every missing, unexpected or wrong-shaped tensor."""
    specs = param_specs(cfg)
    problems = []
    for name, shape in specs.items():
        if name not in params:
            problems.append(f"missing tensor {name!r} (expected shape {shape})")
        elif _shape(params[name]) != shape:
            problems.append(f"tensor {name!r} has shape {_shape(params[name])}, "
                            f"config expects {shape}")
    problems += [f"unexpected tensor {name!r} (shape {_shape(v)}) is not a parameter of the config"
                 for name, v in params.items() if name not in specs]
    if problems:
        listed = problems[:_MAX_LISTED]
        more = len(problems) - len(listed)
        raise WeightImageError(
            f"{what} do not match config {cfg.name!r} ({len(problems)} problem"
            f"{'s' if len(problems) > 1 else ''}):\n  " + "\n  ".join(listed)
            + (f"\n  ... and {more} more" if more else ""))


def to_float_params(cfg: Config, source) -> tuple[dict[str, np.ndarray], list[str]]:
    """Checked float64 ``{name: array}`` from a state_dict, a module or a numpy dict.

    ``source`` may be a PyTorch ``nn.Module`` (its ``state_dict()`` is used), a dict of tensors
    (our names or timm's) or a dict of numpy arrays. Returns the params and the ignored timm keys.
    """
    if hasattr(source, "state_dict") and callable(source.state_dict):
        source = source.state_dict()
    if not isinstance(source, dict):
        raise WeightImageError(f"expected a state_dict or a {{name: array}} dict, got "
                               f"{type(source).__name__}")
    named, ignored = normalize_names(source)
    check_params(cfg, named)
    out = {}
    for name in param_specs(cfg):
        v = named[name]
        if hasattr(v, "detach"):  # a torch tensor: no torch import needed here
            v = v.detach().cpu().double().numpy()
        a = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise WeightImageError(f"tensor {name!r} contains {np.count_nonzero(~np.isfinite(a))} "
                                   f"NaN or infinite values")
        out[name] = a
    return out, ignored
