"""``edge-moe report``: per-layer cycles, MAC utilization and memory traffic of one frame.

Numbers come from the frame model (sim/cycles/frame.py), which is checked against RTL frames
(tests/system/test_frame_model.py); they are set beside the ideal (all MACs on the array at 100 %)
and the published Edge-MoE reference (FPL 2023: 34.64 ms per frame, 256 MACs at 300 MHz).
Also: every multiplier of the top level (sim/multipliers.py) with its busy fraction over the
frame (sim/cycles/timeline.py), the frame at the published design's multiplier budget, the clock
and the memory rate and where they come from (a board build's clock and its DRAM's measured
rate: edge_moe/commands/report_board.py), and (``--plot``) a timeline of the frame.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from edge_moe.commands.config_arg import add_config_arg, load_config
from edge_moe.commands.report_board import DEFAULT_BUILD_ROOT, memory_rate, report_clock
from edge_moe.commands.report_timing import depth_line
from sim.config import Config, ConfigError, check_top_level, get_config, with_changes
from sim.cycles.frame import FrameCost, frame_cost
from sim.cycles.timeline import frame_timeline, unit_busy_cycles
from sim.multipliers import (attention_dot_multipliers, multiplier_count, multiplier_inventory,
                             unit_multipliers)

PUBLISHED_MS = 34.64
PUBLISHED_MHZ = 300.0
PUBLISHED_MACS = 256
PUBLISHED_ATTN_MULTS = 2 * 32       # the attention unit's two 32-multiplier dot products
PUBLISHED_MULTS = PUBLISHED_MACS + PUBLISHED_ATTN_MULTS    # 320: the published multiplier budget
PUBLISHED_ARRAY = (16, 16)          # the published 256 linear MACs as a 16 x 16 array
# units of the busy table, in print order (DMA moves data and has no multiplier of its own)
BUSY_UNITS = ("array", "epilogue", "attention", "layernorm", "router", "control", "dma")


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="per-layer cycle / utilization / traffic report of a frame",
                       description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    add_config_arg(p, "m3vit-tiny-cityscapes")
    p.add_argument("--json", metavar="PATH", help="write the totals (and layers) as JSON")
    p.add_argument("--layers", action="store_true", help="print every descriptor, not per op kind")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw the frame's unit timeline and per-descriptor array utilization")
    p.add_argument("--build-root", type=Path, default=DEFAULT_BUILD_ROOT, metavar="DIR",
                   help="where `edge-moe build` was run: a routed build of the config in its "
                        "default build directory (DIR/build/<board>-<config>-top[-dram]) "
                        "gives the clock (default: the working directory)")
    p.add_argument("--no-cpu-baseline", dest="cpu_baseline", action="store_false",
                   help="skip timing the same frame in PyTorch on this machine's CPU (it loads "
                        "PyTorch and runs the float model 6 times: seconds for M3ViT)")
    p.set_defaults(func=run)


def published_budget_variant(cfg: Config) -> tuple[Config, int] | None:
    """(variant, its frame cycles): ``cfg`` with the published 16 x 16 array and the fastest
    attention unit that keeps array + attention dot-product multipliers within PUBLISHED_MULTS
    (``mult_budget`` set to it).

    Candidates: every power-of-two ``attn_dot_width`` dividing head_dim, each with the most lanes
    ``attn_parallel`` the budget leaves (more lanes never make attention slower). None if no
    candidate passes ``Config`` validation and ``check_top_level``.
    """
    R, C = PUBLISHED_ARRAY
    room = (PUBLISHED_MULTS - R * C) // 2          # p x dw
    best = None
    dw = 1
    while dw <= min(cfg.model.head_dim, room):
        p = min(room // dw, cfg.model.tokens)
        try:
            v = check_top_level(with_changes(
                cfg, name=f"{cfg.name}@{PUBLISHED_MULTS}",
                hw=dict(array_rows=R, array_cols=C, attn_parallel=p, attn_dot_width=dw,
                        mult_budget=PUBLISHED_MULTS)))
            cycles = frame_cost(v).cycles
        except (ConfigError, ValueError):
            v = None
        if v is not None and (best is None or cycles < best[1]):
            best = (v, cycles)
        dw *= 2
    return best


def multiplier_table(cfg: Config, f: FrameCost) -> dict:
    """Multipliers and busy cycles per unit; the share of multiplier-cycles doing work."""
    mults = unit_multipliers(cfg)
    busy = unit_busy_cycles(cfg, f)
    units = {u: {"multipliers": mults.get(u, 0), "busy_cycles": busy[u],
                 "busy_fraction": busy[u] / f.cycles} for u in BUSY_UNITS}
    total = multiplier_count(cfg)
    assert total == sum(u["multipliers"] for u in units.values()), "a unit is missing"
    working = sum(u["multipliers"] * u["busy_cycles"] for u in units.values())
    return {"units": units, "multipliers_total": total,
            "multipliers_doing_work": working / (total * f.cycles),
            "macs_per_multiplier_cycle": cfg.model.macs_per_frame / (f.cycles * total)}


def memory_figures(cfg: Config, f: FrameCost, rate: float, mhz: float) -> dict:
    """The frame's traffic at the memory rate ``rate`` (bytes / cycle): the cycles it takes,
    and how many more than at the frame model's one beat per cycle (a bound on what a slower
    memory adds to the frame: all of it if every transfer is on the critical path)."""
    nbytes = f.bytes_read + f.bytes_written
    cycles = math.ceil(nbytes / rate)
    extra = max(0, cycles - math.ceil(nbytes / cfg.hw.mem_bytes_per_cycle))
    return {"memory_cycles": cycles, "memory_extra_cycles_bound": extra,
            "ms_per_frame_memory_bound": (f.cycles + extra) / (mhz * 1e3)}


def report(cfg, f: FrameCost | None = None, build_root: Path = DEFAULT_BUILD_ROOT) -> dict:
    f = f or frame_cost(cfg)
    mhz, source = report_clock(cfg, build_root)
    rate, rate_source = memory_rate(cfg, build_root)
    r = {
        "config": cfg.name,
        "cycles_per_frame": f.cycles,
        "ideal_cycles": cfg.ideal_cycles,
        "array_ideal_cycles": -(-f.array_macs // cfg.hw.macs_per_cycle),
        "mac_utilization": f.mac_utilization,
        "bytes_per_frame": f.bytes_read + f.bytes_written,
        "clock_mhz": mhz,
        "clock_source": source,
        "clock_estimate": depth_line(cfg.name),
        "ms_per_frame": f.cycles / (mhz * 1e3),
        "memory_bytes_per_cycle": rate,
        "memory_source": rate_source,
        **memory_figures(cfg, f, rate, mhz),
        "published_ms_per_frame": PUBLISHED_MS,
        "multipliers": [vars(g) for g in multiplier_inventory(cfg)],
        **multiplier_table(cfg, f),
        "published_budget": None,
        "timeline": {u: [list(iv) for iv in ivs] for u, ivs in frame_timeline(cfg, f).items()},
        "layers": [vars(x) for x in f.layers],
    }
    if cfg.model == get_config("m3vit-tiny-cityscapes").model:   # the published workload
        variant = published_budget_variant(cfg)
        if variant is not None:
            v, v_cycles = variant
            r["published_budget"] = {
                "multipliers": PUBLISHED_MULTS, "config": v.name,
                "array": [v.hw.array_rows, v.hw.array_cols],
                "attn_parallel": v.hw.attn_parallel, "attn_dot_width": v.hw.attn_dot_width,
                "array_attention_multipliers": v.hw.macs_per_cycle + attention_dot_multipliers(v),
                "multipliers_total": multiplier_count(v),
                "cycles_per_frame": v_cycles}
    return r


def _print_layers(cfg, r, by_descriptor: bool) -> None:
    f_layers = r["layers"]
    if by_descriptor:
        rows = [(f"{x['index']:3d} {x['op']:9s} {x['note']}", x["cycles"], x["macs"],
                 x["bytes_read"] + x["bytes_written"]) for x in f_layers]
    else:
        agg = defaultdict(lambda: [0, 0, 0, 0])
        for x in f_layers:
            a = agg[x["op"]]
            a[0] += 1
            a[1] += x["cycles"]
            a[2] += x["macs"]
            a[3] += x["bytes_read"] + x["bytes_written"]
        rows = [(f"{op} (x{a[0]})", a[1], a[2], a[3]) for op, a in agg.items()]
    print(f"{'layer':48s} {'cycles':>11s} {'share':>6s} {'array util':>10s} {'bytes':>12s}")
    for name, cyc, macs, nbytes in rows:
        util = f"{macs / (cyc * cfg.hw.macs_per_cycle):10.1%}" if macs else f"{'-':>10s}"
        print(f"{name[:48]:48s} {cyc:11,} {cyc / r['cycles_per_frame']:6.1%} {util} {nbytes:12,}")
    print(f"{'frame':48s} {r['cycles_per_frame']:11,} {'':6s} {r['mac_utilization']:10.1%} "
          f"{r['bytes_per_frame']:12,}")


def _print_multipliers(cfg, r) -> None:
    print(f"\nmultipliers and busy fraction over the frame (sim/multipliers.py, "
          f"sim/cycles/timeline.py)")
    print(f"  {'unit':10s} {'multipliers':>11s} {'busy cycles':>13s} {'busy':>7s}")
    for unit, u in r["units"].items():
        print(f"  {unit:10s} {u['multipliers']:11,} {u['busy_cycles']:13,} "
              f"{u['busy_fraction']:7.1%}")
    print(f"  {'all':10s} {r['multipliers_total']:11,}")
    lut = defaultdict(int)
    for g in r["multipliers"]:
        if g["kind"] == "shift-add":
            lut[g["unit"]] += g["count"]
    print(f"  array busy = useful MACs / (R x C); DMA = bytes / {cfg.hw.mem_bytes_per_cycle} B per "
          f"cycle; control = job-size and address products, once per descriptor.\n"
          f"  Products built from adders (no multiplier, not counted): "
          f"{', '.join(f'{u} {c}' for u, c in lut.items())}.")
    print(f"  multipliers doing work over the frame  {r['multipliers_doing_work']:.1%} "
          f"(sum of multipliers x busy cycles / ({r['multipliers_total']} x "
          f"{r['cycles_per_frame']:,}))")
    print(f"  work per multiplier   {r['macs_per_multiplier_cycle']:.3f} MACs per multiplier per "
          f"cycle ({cfg.model.macs_per_frame:,} MACs / ({r['cycles_per_frame']:,} cycles x "
          f"{r['multipliers_total']} multipliers))")
    pb = r["published_budget"]
    if pb:
        print(f"  at the published budget ({PUBLISHED_MULTS} = {PUBLISHED_MACS} linear + "
              f"{PUBLISHED_ATTN_MULTS} attention multipliers): {pb['array'][0]}x{pb['array'][1]} "
              f"array, attention p = {pb['attn_parallel']} x dw = {pb['attn_dot_width']} "
              f"({pb['array_attention_multipliers']} array + attention multipliers, "
              f"{pb['multipliers_total']} in all): {pb['cycles_per_frame']:,} cycles per frame "
              f"= {pb['cycles_per_frame'] / (r['clock_mhz'] * 1e3):.3f} ms, "
              f"{pb['cycles_per_frame'] / r['cycles_per_frame']:.2f} x this config's "
              f"{r['cycles_per_frame']:,}")


def run(args) -> int:
    cfg = load_config(args.config)
    f = frame_cost(cfg)
    r = report(cfg, f, args.build_root)
    mhz = r["clock_mhz"]
    print(f"frame report: {cfg.name}, {cfg.hw.array_rows}x{cfg.hw.array_cols} array, "
          f"{mhz:g} MHz clock, {r['clock_source']}; {r['memory_bytes_per_cycle']:g} B/cycle "
          f"memory, {r['memory_source']} (model: sim/cycles/frame.py, validated against RTL)")
    _print_layers(cfg, r, args.layers)
    print(f"\n  cycles per frame      {r['cycles_per_frame']:,} = {r['ms_per_frame']:.3f} ms at "
          f"{mhz:g} MHz")
    print(f"  clock                 {mhz:g} MHz: {r['clock_source']}")
    if r["clock_estimate"]:
        print(f"                        {r['clock_estimate']}")
    print(f"  ideal                 {r['ideal_cycles']:,} (all {cfg.model.macs_per_frame:,} MACs on "
          f"{cfg.hw.macs_per_cycle} MACs/cycle); array work alone {r['array_ideal_cycles']:,}")
    print(f"  MAC utilization       {r['mac_utilization']:.1%} of the array over the frame "
          f"(attention runs on its own unit: {cfg.hw.attn_parallel} lanes x "
          f"{cfg.hw.attn_dot_width} multipliers x 2)")
    print(f"  memory traffic        {r['bytes_per_frame'] / 1e6:.2f} MB per frame")
    print(f"  memory rate           {r['memory_bytes_per_cycle']:g} B/cycle: {r['memory_source']}")
    if r["memory_extra_cycles_bound"]:
        print(f"                        the frame's bytes take {r['memory_cycles']:,} cycles at "
              f"that rate, at most {r['memory_extra_cycles_bound']:,} more than the model's "
              f"{cfg.hw.mem_bytes_per_cycle} B/cycle: <= {r['ms_per_frame_memory_bound']:.3f} "
              f"ms per frame if all of them stalled it")
    pub_cycles = PUBLISHED_MS * PUBLISHED_MHZ * 1e3
    if cfg.model == get_config("m3vit-tiny-cityscapes").model:   # the published workload
        print(f"  published Edge-MoE    {PUBLISHED_MS} ms = {pub_cycles / 1e6:.2f} M cycles on "
              f"{PUBLISHED_MACS} MACs at {PUBLISHED_MHZ:g} MHz -> this design takes "
              f"{r['cycles_per_frame'] / pub_cycles:.2f}x its cycles, "
              f"{r['ms_per_frame'] / PUBLISHED_MS:.2f}x its time")
    if args.cpu_baseline:
        from edge_moe.commands.report_cpu import cpu_frame_time
        c = r["cpu_baseline"] = cpu_frame_time(cfg)
        print(f"  PyTorch on this CPU   {c['ms_median']:.3f} ms per frame (median of {c['runs']}, "
              f"best {c['ms_best']:.3f} ms; float32, batch 1, {c['threads']} threads, "
              f"torch {c['torch']}, {c['cpu']}) -> this design at {mhz:g} MHz: "
              f"{c['ms_median'] / r['ms_per_frame']:.2f}x the CPU's frame rate")
    _print_multipliers(cfg, r)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        # matplotlib only for --plot
        from edge_moe.commands.report_plot import plot_frame
        plot_frame(cfg, f, args.plot)
        print(f"wrote {args.plot}")
    return 0
