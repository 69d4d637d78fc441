"""``edge-moe config``: list presets and print one configuration (text or JSON).

The JSON it prints is a config file every subcommand takes as ``--config FILE.json``.
"""
from __future__ import annotations

import argparse

from edge_moe.commands.config_arg import add_config_arg, load_config
from sim.config import PRESETS, get_config


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="print a configuration preset",
                       description="Print the model sizes, numeric formats and hardware sizes of a "
                                   "configuration preset.")
    add_config_arg(p, "tiny")
    p.add_argument("--name", dest="config", help=argparse.SUPPRESS)   # the option's old name
    p.add_argument("--json", action="store_true", help="print the full configuration as JSON")
    p.add_argument("--list", action="store_true", help="list the preset names and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.list:
        for name in PRESETS:
            cfg = get_config(name)
            m = cfg.model
            print(f"{name:24s} {m.tokens} tokens, dim {m.dim}, {m.depth} blocks, "
                  f"{m.experts} experts top-{m.top_k}, array {cfg.hw.array_rows}x{cfg.hw.array_cols}")
        return 0
    cfg = load_config(args.config)
    print(cfg.to_json() if args.json else cfg.summary())
    return 0
