"""``edge-moe dse``: size the accelerator for a board or a resource budget (boards/dse.py).

Searches every legal array / attention / memory-beat size of one model, prints the Pareto table
(cycles per frame against multipliers, block RAM, LUTs, and the DRAM bandwidth a frame needs),
marks the chosen point (fewest cycles within 85 % of every resource) and with ``--out`` writes
it as a config file that every command takes as ``--config FILE.json``. When nothing fits it
says what the smallest need of each resource is, and exits with status 2.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    from boards.dse import BUDGET_HELP, HEADROOM, MODELS
    p = sub.add_parser(
        "dse", help="size the accelerator for a board or a resource budget (Pareto table)",
        description=__doc__.split("\n\n")[1])
    tgt = p.add_mutually_exclusive_group(required=True)
    tgt.add_argument("--board", metavar="NAME", help="a board entry (`edge-moe build --list`)")
    tgt.add_argument("--budget", metavar="dsp=N,bram_kib=N,lut=N",
                     help="a part with no board entry, e.g. a ZCU102-class UltraScale+ "
                          "(dsp=2520,bram_kib=4050,lut=274080). " + BUDGET_HELP)
    p.add_argument("--model", choices=tuple(MODELS), default="m3vit",
                   help="model to size for: m3vit (M3ViT, m3vit-tiny-cityscapes' model; "
                        "default) or tiny (the CI model)")
    p.add_argument("--external-memory", action="store_true",
                   help="with --board: leave the frame memory out of the block RAM, as a build "
                        "with an external-memory controller would; edge-moe has none for the "
                        "ECP5 boards yet, so this is a sizing, not a buildable config")
    p.add_argument("--out", type=Path, metavar="FILE.json",
                   help="write the chosen config here (for --config FILE.json)")
    p.add_argument("--top", type=int, default=20, metavar="N",
                   help="print the N fastest Pareto points (default 20; the chosen one is "
                        f"always printed; 0: all). Chosen: fewest cycles within "
                        f"{HEADROOM * 100:.0f} %% of every resource")
    p.set_defaults(func=run)


def _table(res, top: int) -> list[str]:
    from boards.dse import HEADROOM
    t = res.target
    lim = t.limits()
    head = (f"  {'R x C':>7} {'p':>3} {'dw':>3} {'W':>3} {'ovl':>3} {'cycles/frame':>13} {'ms':>8} "
            f"{'mults':>11} {t.bram_kind:>12} {t.lut_kind:>15} {'GB/s':>6}")
    rows = [head, "  " + "-" * (len(head) - 2)]
    shown = res.pareto if top <= 0 else res.pareto[:top]
    if res.chosen is not None and res.chosen not in shown:
        shown = shown + [res.chosen]

    def pct(v, whole):
        return f"{v:,} {v / whole:4.0%}"

    for x in shown:
        mark = "*" if x == res.chosen else " "
        rows.append(f"{mark} {f'{x.R}x{x.C}':>7} {x.p:>3} {x.dw:>3} {x.W:>3} "
                    f"{'yes' if x.overlap else 'no':>3} {x.cycles:>13,} "
                    f"{x.cycles / (t.clock_mhz * 1e3):8.3f} {pct(x.mults, lim[0]):>11} "
                    f"{pct(x.brams, lim[1]):>12} {pct(x.luts, lim[2]):>15} "
                    f"{x.gbytes_per_s(t.clock_mhz):6.2f}")
    if len(shown) < len(res.pareto):
        rows.append(f"  ... {len(res.pareto) - len(shown)} more Pareto points (--top 0 "
                    f"prints all)")
    rows.append(f"  (* chosen: fewest cycles with every resource <= {HEADROOM:.0%}; R x C "
                f"PE array, p attention rows, dw attention dot width, W memory bytes/cycle, "
                f"ovl attention overlapped with the next head's QKV GEMMs; "
                f"ms at {t.clock_mhz:g} MHz; GB/s: DRAM bandwidth a frame needs = bytes per "
                f"frame / frame time)")
    return rows


def _no_fit(res) -> str:
    from boards.dse import HEADROOM
    t, s = res.target, res.smallest
    what = "fits" if res.fitting == 0 else f"fits within {HEADROOM:.0%} of every resource"
    need = (f"smallest need found (each resource minimized on its own): {s['mults']:,} "
            f"multipliers (the part has {t.dsps:,}), {s['brams']:,} {t.bram_kind} (has "
            f"{t.brams:,}), {s['luts']:,} {t.lut_kind} (has {t.luts:,})")
    if s["brams"] > t.brams:
        need += (f"; block RAM of the smallest point: "
                 f"{res.block_ram_breakdown(s['brams_point'])}")
    if not t.frame_memory_on_chip and s["brams"] > t.brams:
        need += " (the accelerator's own memories: they need an on-chip memory diet first)"
    if "frame_memory_blocks" in s:
        need += (f"; the frame memory alone takes {s['frame_memory_blocks']:,} {t.bram_kind}: "
                 f"{t.memory_note}; `--external-memory` sizes the accelerator without it")
    return f"no legal {res.model} config {what} on the {t.name}: {need}"


def run(args) -> int:
    from boards.boards import get_board
    from boards.dse import DseError, MODELS, board_target, budget_target, search

    if args.board:
        target = board_target(get_board(args.board), external_memory=args.external_memory)
    else:
        if args.external_memory:
            raise DseError("--external-memory goes with --board (a --budget part's frame "
                           "memory is always external)")
        target = budget_target(args.budget, MODELS[args.model])
    t0 = time.monotonic()
    res = search(args.model, target,
                 progress=lambda s: print(s, file=sys.stderr, flush=True))
    secs = time.monotonic() - t0
    print(f"edge-moe dse: {args.model} on the {target.name} ({target.dsps:,} multipliers, "
          f"{target.brams:,} {target.bram_kind}, {target.luts:,} {target.lut_kind}, "
          f"{target.clock_mhz:g} MHz)")
    print(f"  memory: {target.memory_note}")
    print(f"  {res.legal:,} legal points, {res.evaluated:,} costed, "
          f"{res.fitting:,} fit, {len(res.pareto):,} on the Pareto set; {secs:.1f} s")
    print("  multipliers: PE array + attention lanes + LayerNorm / normalizer / router (fit "
          "model, ~5 %); LUTs: rough (+-35 %, boards/fit.py)")
    if res.pareto:
        print("\n".join(_table(res, args.top)))
    if res.chosen is None:
        raise DseError(_no_fit(res))
    cfg = res.config(res.chosen)
    c = res.chosen
    print(f"chosen: {c.R}x{c.C} array, attention p = {c.p} x {c.dw}-wide"
          f"{', overlapped' if c.overlap else ', not overlapped'}, {c.W} B/cycle memory: "
          f"{c.cycles:,} cycles/frame")
    if args.external_memory:
        print(f"note: {target.memory_note}")
    if args.out:
        args.out.write_text(cfg.to_json() + "\n")
        print(f"wrote {args.out} (use it as --config {args.out})")
    return 0
