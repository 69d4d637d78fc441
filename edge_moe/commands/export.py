"""``edge-moe export``: write a weight image from a checkpoint or from a seeded random model.

    edge-moe export --checkpoint model.pt --config NAME -o DIR
    edge-moe export --random-seed N [--init unit|vit] --config NAME -o DIR

The main CLI adds the sub-command with :func:`add_export_parser` (which sets ``func=run_export``);
``python -m edge_moe.commands.export export ...`` runs it stand-alone. A checkpoint is a PyTorch file
(``torch.load(..., weights_only=True)``; a plain state_dict or one nested under ``"state_dict"``,
``"model"`` or ``"module"``) or a ``.npz`` of float arrays, with our or timm names.
Prints a table (tensor, shape, format, saturated count) and totals; saturation is printed as a
warning on stderr. Returns 0 on success, 1 on a bad input (the message names the problem).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from edge_moe.commands.config_arg import add_config_arg, load_config
from sim.config import ConfigError
from sim.params import INIT_STYLES, random_params

from model_io.export import export
from model_io.names import to_float_params
from sim.weight_format import SaturationWarning, WeightImageError

__all__ = ["add_export_parser", "run_export", "load_checkpoint", "main"]

_NESTED_KEYS = ("state_dict", "model", "module")


def add_export_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``export`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "export", help="write a quantized weight image (weights.bin + manifest.json)",
        description="Quantize a model for a config and write its weight image.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, metavar="FILE",
                     help="PyTorch state_dict (.pt/.pth) or .npz of float arrays")
    src.add_argument("--random-seed", type=int, metavar="N",
                     help="export a seeded random model (sim.params.random_params) instead")
    p.add_argument("--init", choices=INIT_STYLES, default="unit",
                   help="init style for --random-seed (default: unit)")
    add_config_arg(p, required=True)
    p.add_argument("-o", "--out", required=True, type=Path, metavar="DIR",
                   help="output directory")
    p.add_argument("--no-accuracy", action="store_true",
                   help="skip the accuracy check (golden model vs float on the bundled sample "
                        "image, every task; see `edge-moe accuracy`)")
    p.set_defaults(func=run_export)
    return p


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint file into a ``{name: tensor or array}`` dict."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    import torch  # only needed for PyTorch checkpoints
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError / RuntimeError for non-tensor pickles
        raise WeightImageError(f"cannot read {path} as a weights-only PyTorch checkpoint: "
                               f"{e}") from None
    for key in _NESTED_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise WeightImageError(f"{path} holds a {type(obj).__name__}, not a state_dict")
    return obj


def _accuracy_line(cfg, source) -> str:
    from model_io.accuracy import evaluate, summary_line   # torch: only when the check runs
    from model_io.images import prepare_image, sample_image

    params, _ = to_float_params(cfg, source)
    pixels = prepare_image(sample_image(cfg), cfg).pixels
    return summary_line(evaluate(cfg, params, pixels)["config"]) + " (bundled sample image)"


def run_export(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)   # a bad name or file: ConfigError, one line, exit 1
        if args.checkpoint is not None:
            source, note = load_checkpoint(args.checkpoint), f"checkpoint {args.checkpoint}"
        else:
            source = random_params(cfg, args.random_seed, args.init)
            note = f"random_params(seed={args.random_seed}, style={args.init!r})"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SaturationWarning)
            report = export(cfg, source, args.out, source_note=note)
    except (ConfigError, WeightImageError, FileNotFoundError) as e:
        print(f"edge-moe export: error: {e}", file=sys.stderr)
        return 1
    print(f"config {cfg.name}, source: {note}")
    print(report.table())
    print(f"wrote {report.weights_path} ({report.file_bytes:,} bytes, sha256 {report.sha256}) "
          f"and {report.manifest_path}")
    if not args.no_accuracy:
        print(_accuracy_line(cfg, source))
    for w in caught:
        if issubclass(w.category, SaturationWarning):
            print(f"WARNING: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_moe.commands.export")
    add_export_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
