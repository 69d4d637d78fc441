"""``edge-moe report``: per-layer cycles, MAC utilization and memory traffic of one frame.

Numbers come from the frame model (sim/cycles/frame.py), which is checked against RTL frames
(tests/system/test_frame_model.py); they are set beside the ideal (all MACs on the array at 100 %)
and the published Edge-MoE reference (FPL 2023: 34.64 ms per frame, 256 MACs at 300 MHz).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from sim.config import PRESETS, get_config
from sim.cycles.frame import frame_cost

PUBLISHED_MS = 34.64
PUBLISHED_MHZ = 300.0
PUBLISHED_MACS = 256


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="per-layer cycle / utilization / traffic report of a frame",
                       description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--config", default="m3vit-tiny-cityscapes", metavar="NAME",
                   help=f"configuration preset (default m3vit-tiny-cityscapes; {', '.join(PRESETS)})")
    p.add_argument("--json", metavar="PATH", help="write the totals (and layers) as JSON")
    p.add_argument("--layers", action="store_true", help="print every descriptor, not per op kind")
    p.set_defaults(func=run)


def report(cfg) -> dict:
    f = frame_cost(cfg)
    return {
        "config": cfg.name,
        "cycles_per_frame": f.cycles,
        "ideal_cycles": cfg.ideal_cycles,
        "array_ideal_cycles": -(-f.array_macs // cfg.hw.macs_per_cycle),
        "mac_utilization": f.mac_utilization,
        "bytes_per_frame": f.bytes_read + f.bytes_written,
        "clock_mhz": cfg.hw.clock_mhz,
        "ms_per_frame": f.ms_per_frame,
        "published_ms_per_frame": PUBLISHED_MS,
        "layers": [vars(x) for x in f.layers],
    }


def run(args) -> int:
    cfg = get_config(args.config)
    r = report(cfg)
    f_layers = r["layers"]
    print(f"frame report: {cfg.name}, {cfg.hw.array_rows}x{cfg.hw.array_cols} array, "
          f"{cfg.hw.clock_mhz:g} MHz, {cfg.hw.mem_bytes_per_cycle} B/cycle memory "
          f"(model: sim/cycles/frame.py, validated against RTL)")
    if args.layers:
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
    print(f"\n  cycles per frame      {r['cycles_per_frame']:,} = {r['ms_per_frame']:.3f} ms at "
          f"{cfg.hw.clock_mhz:g} MHz")
    print(f"  ideal                 {r['ideal_cycles']:,} (all {cfg.model.macs_per_frame:,} MACs on "
          f"{cfg.hw.macs_per_cycle} MACs/cycle); array work alone {r['array_ideal_cycles']:,}")
    print(f"  MAC utilization       {r['mac_utilization']:.1%} of the array over the frame "
          f"(attention runs on its own unit: {cfg.hw.attn_parallel} lanes x "
          f"{cfg.hw.attn_dot_width} multipliers x 2)")
    print(f"  memory traffic        {r['bytes_per_frame'] / 1e6:.2f} MB per frame")
    pub_cycles = PUBLISHED_MS * PUBLISHED_MHZ * 1e3
    if cfg.model == get_config("m3vit-tiny-cityscapes").model:   # the published workload
        print(f"  published Edge-MoE    {PUBLISHED_MS} ms = {pub_cycles / 1e6:.2f} M cycles on "
              f"{PUBLISHED_MACS} MACs at {PUBLISHED_MHZ:g} MHz -> this design: "
              f"{pub_cycles / r['cycles_per_frame']:.2f}x fewer cycles")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
