"""The ``edge-moe`` command line: one entry point, one subcommand per job.

Each subcommand lives with the code it drives and registers itself through a function
``add_parser(subparsers)`` that sets ``func`` on its parser; this module only lists them.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (module, function) pairs that add a subcommand, in the order `--help` lists them. Each module
# keeps its heavy imports (Amaranth, torch) inside its run function, so `--help` stays fast.
SUBCOMMANDS = [
    ("edge_moe.commands.config", "add_parser"),
    ("edge_moe.commands.export", "add_export_parser"),
    ("edge_moe.commands.report", "add_parser"),
    ("edge_moe.commands.accuracy", "add_parser"),
    ("edge_moe.commands.demo", "add_parser"),
    ("edge_moe.commands.boards", "add_parser"),
    ("edge_moe.commands.dse", "add_parser"),
]

DESCRIPTION = """\
edge-moe: an open FPGA accelerator for multi-task mixture-of-experts vision transformers
(M3ViT), written in Amaranth HDL and bit-exact against a numpy fixed-point golden model.

Start with `edge-moe config --list`, then `edge-moe config --name m3vit-tiny-cityscapes`.
Every subcommand has its own --help."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-moe", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module, func in SUBCOMMANDS:
        getattr(importlib.import_module(module), func)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:         # output piped into `head`: not an error
        return 0
    except (ValueError, KeyError, OSError) as e:
        # Bad user input (unknown config, malformed weight image, missing file, no board on
        # the serial port): one clear line.
        print(f"edge-moe: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from host.run import FrameError           # the accelerator reported an error
        if not isinstance(e, FrameError):
            raise
        print(f"edge-moe: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
