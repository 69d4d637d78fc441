"""``edge-moe accuracy``: the golden model's error against float on a checkpoint, and a format sweep.

For every task it runs the float64 PyTorch reference and the bit-exact golden model (the numbers
the accelerator produces) on one image and prints cosine similarity, mean / max absolute error,
relative RMS error, routing flips per MoE block and saturation counts (weights at export,
activations at every rounding point). The same is done for each candidate of a format sweep, next
to what the formats cost: multipliers per MAC on an ECP5 (18x18) and a DSP48E2 (27x18), block RAM
of the accelerator's buffers, DRAM bytes and cycles per frame (cycle model).
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from edge_moe.commands.config_arg import add_config_arg, load_config
from sim.params import INIT_STYLES, random_params

__all__ = ["add_parser", "run", "DEFAULT_SWEEP", "costs"]

# Candidates swept when --formats is not given: the 16-bit activations and LN gammas of the first
# design (together and alone), the one remaining 16-bit multiplier operand (weights) widened to
# 18 bits, and activations trading range for precision either way.
DEFAULT_SWEEP = ("act=Q8.8,ln_gamma=Q6.10", "act=Q8.8", "ln_gamma=Q6.10", "weight=Q2.16",
                 "act=Q7.11", "act=Q9.9")


def add_parser(sub) -> None:
    p = sub.add_parser("accuracy", help="golden-model error vs float on a checkpoint, format sweep",
                       description=__doc__.split("\n\n")[0].split(": ", 1)[1] + "\n\n"
                       + __doc__.split("\n\n")[1])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, metavar="FILE",
                     help="PyTorch state_dict (.pt/.pth) or .npz of float arrays (our names or "
                          "timm's)")
    src.add_argument("--random-seed", type=int, metavar="N",
                     help="a seeded random model (as `edge-moe export --random-seed`)")
    src.add_argument("--realistic-seed", type=int, metavar="N",
                     help="a synthetic model with a trained checkpoint's value ranges "
                          "(model_io.realistic)")
    p.add_argument("--init", choices=INIT_STYLES, default="unit",
                   help="init style for --random-seed (default: unit)")
    add_config_arg(p, required=True)
    p.add_argument("--image", type=Path, metavar="PATH",
                   help="input image (any Pillow format, resized to the config; or a .npy "
                        "float (C, H, W) array in [0, 1] at the config's size); default: the "
                        "bundled synthetic sample")
    p.add_argument("--task", type=int, action="append", metavar="T",
                   help="task id (repeat for several; default: every task)")
    p.add_argument("--formats", nargs="*", metavar="SPEC",
                   help="format candidates to sweep, e.g. act=Q8.10,weight=Q2.16 (fields: act, "
                        "weight, bias, ln_gamma, ln_norm, score, exp); default: "
                        + " ".join(DEFAULT_SWEEP) + "; give --formats alone for no sweep")
    p.add_argument("--json", type=Path, metavar="PATH", help="write every figure as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def costs(cfg) -> dict:
    """What a config's formats cost in hardware: multipliers, block RAM, DRAM traffic, cycles."""
    from boards.fit import estimate
    from sim.cycles.frame import frame_cost

    n = cfg.num
    a, w = n.act.bits, n.weight.bits
    f = frame_cost(cfg)
    est = estimate(cfg)
    return {
        "operand_bits": f"{a}x{w}",
        "mult18x18_per_mac": math.ceil(a / 18) * math.ceil(w / 18),
        "dsp48e2_per_mac": 1 if (min(a, w) <= 18 and max(a, w) <= 27) else
        math.ceil(max(a, w) / 27) * math.ceil(min(a, w) / 18),
        "weight_bytes_per_value": n.weight.storage_bytes,
        "bram_kbit": round(est.bram_bits / 1024),
        "dram_mb_per_frame": round((f.bytes_read + f.bytes_written) / 1e6, 3),
        "cycles_per_frame": f.cycles,
    }


def _load_params(args, cfg):
    from edge_moe.commands.export import load_checkpoint
    from model_io.names import to_float_params

    if args.checkpoint is not None:
        params, ignored = to_float_params(cfg, load_checkpoint(args.checkpoint))
        return params, f"checkpoint {args.checkpoint}" + (
            f" ({len(ignored)} unused keys ignored)" if ignored else "")
    if args.random_seed is not None:
        return (random_params(cfg, args.random_seed, args.init),
                f"random_params(seed={args.random_seed}, {args.init})")
    from model_io.realistic import realistic_params
    return realistic_params(cfg, args.realistic_seed), \
        f"realistic_params(seed={args.realistic_seed})"


def _image(args, cfg):
    from model_io.images import prepare_image, sample_image

    if args.image is None:
        return prepare_image(sample_image(cfg), cfg).pixels, "synthetic sample"
    if not args.image.is_file():
        raise FileNotFoundError(f"image {args.image} does not exist")
    if args.image.suffix == ".npy":                 # float (C, H, W) in [0, 1]: used as it is
        import numpy as np
        return np.load(args.image, allow_pickle=False), str(args.image)
    return prepare_image(args.image, cfg).pixels, str(args.image)


def _detail(row) -> list[str]:
    out = [f"  {row.summary()}"]
    flips = ", ".join(f"{k}: {v}" for k, v in row.routing_flips.items())
    if flips:
        out.append(f"    routing flips per MoE block: {flips}")
    for name, c in sorted(row.weight_saturation.items()):
        out.append(f"    weight saturated: {name}: {c} values")
    for name, (c, tot) in sorted(row.act_saturation.items()):
        out.append(f"    activation saturated: {name}: {c} of {tot}")
    return out


def run(args) -> int:
    from model_io.accuracy import (Candidate, candidate_config, evaluate, parse_formats,
                                   summary_line)

    cfg = load_config(args.config)
    specs = DEFAULT_SWEEP if args.formats is None else args.formats
    candidates = [Candidate()] + [parse_formats(s) for s in specs]
    for c in candidates:
        candidate_config(cfg, c)                    # a bad candidate fails before any model runs
    params, source = _load_params(args, cfg)
    image, image_note = _image(args, cfg)
    t0 = time.time()
    progress = None if args.quiet else (
        lambda s: print(f"[{time.time() - t0:5.1f} s] {s}", file=sys.stderr, flush=True))
    results = evaluate(cfg, params, image, args.task, candidates, progress)

    print(f"config {cfg.name}, model: {source}, image: {image_note}")
    base = results[candidates[0].label]
    print(f"formats of the config: act {cfg.num.act}, weight {cfg.num.weight}, bias {cfg.num.bias}"
          f", LN gamma {cfg.num.ln_gamma}, LN z {cfg.num.ln_norm}, score {cfg.num.score}")
    for row in base:
        print("\n".join(_detail(row)))
    print(summary_line(base))

    table = []
    for c in candidates:
        rows = results[c.label]
        table.append({"formats": c.label, "min_cosine": min(r.cosine for r in rows),
                      "mean_abs": max(r.mean_abs for r in rows),
                      "max_abs": max(r.max_abs for r in rows),
                      "rel_rms": max(r.rel_rms for r in rows),
                      "flips": sum(r.flips for r in rows),
                      "sat_weights": rows[0].weight_clipped,
                      "sat_acts": sum(r.act_clipped for r in rows),
                      **costs(candidate_config(cfg, c))})
    if len(candidates) > 1:
        print()
        head = (f"{'formats':26s} {'min cos':>8s} {'mean err':>9s} {'max err':>8s} {'flips':>5s} "
                f"{'sat w/a':>9s} {'operands':>8s} {'18x18':>5s} {'DSP48':>5s} {'w B':>3s} "
                f"{'BRAM kb':>8s} {'DRAM MB':>8s} {'cycles':>10s}")
        print(head)
        print("-" * len(head))
        for r in table:
            print(f"{r['formats']:26s} {r['min_cosine']:8.6f} {r['mean_abs']:9.4g} "
                  f"{r['max_abs']:8.4g} {r['flips']:5d} "
                  f"{str(r['sat_weights']) + '/' + str(r['sat_acts']):>9s} "
                  f"{r['operand_bits']:>8s} {r['mult18x18_per_mac']:5d} "
                  f"{r['dsp48e2_per_mac']:5d} {r['weight_bytes_per_value']:3d} "
                  f"{r['bram_kbit']:8,d} {r['dram_mb_per_frame']:8.3f} "
                  f"{r['cycles_per_frame']:10,d}")
        print("(18x18 / DSP48: multipliers per MAC on an ECP5 MULT18X18D / a DSP48E2; w B: weight "
              "bytes per value in DRAM; BRAM: the accelerator's buffers; min cos / max err: worst "
              "task)")
    if args.json:
        args.json.write_text(json.dumps({
            "config": cfg.name, "model": source, "image": image_note,
            "tasks": {c.label: [r.to_dict() for r in results[c.label]] for c in candidates},
            "sweep": table}, indent=1))
        print(f"wrote {args.json}")
    return 0
