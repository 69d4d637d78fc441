"""MoE path benchmark: ``python -m host.bench.moe [--no-rtl] [--config NAME ...]``.

Prints, for the M3ViT MoE layer shape (analytic model, sim/cycles/moe.py):

- the cycles of one MoE layer by phase, the expert GEMM cycles, prefetch stalls and the bytes
  read from external memory per layer and per frame, for routings that use all experts and half
  of them (unchosen experts are never fetched);
- the **prefetch-stall sweep**: stall cycles and layer cycles against memory bytes per cycle, and
  the smallest bandwidth at which the double buffer fully hides expert-weight loading (no stall
  after the first load, which nothing can hide because the expert list only exists once every
  token is routed);

and then the same sweep measured on the RTL (host/bench/moe_layer.py + the DRAM model, pysim, ``tiny``
sizes, each run checked bit-exact against the golden MoE layer) next to the model's figures.
"""
from __future__ import annotations

import argparse
import sys
import time

from host.bench.moe_system import moe_beats, moe_case, run_moe_system
from sim.config import get_config, with_changes
from sim.golden.router import expert_queues, route
from sim.cycles.moe import (load_geometry, matrix_compute_cycles, moe_layer_cycles,
                         router_cycles_per_token, tokens_per_expert)

SWEEP = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128)
RTL_SWEEP = (2, 4, 8, 16, 32, 64)


def _layer_table(cfg, label, counts) -> list[str]:
    mc = moe_layer_cycles(cfg, counts)
    layers = len(cfg.model.moe_blocks)
    return [
        f"  {label}: {len(counts)} experts chosen, tokens/expert {min(counts)}..{max(counts)}",
        f"    cycles/layer {mc.total:>9,}  (load {mc.load:,}, route {mc.route:,}, experts "
        f"{mc.experts:,}, output {mc.output:,})",
        f"    expert GEMMs {mc.gemm:>9,}  stall {mc.stall:,} (first load + routing drain "
        f"{mc.first_wait:,}, prefetch {mc.prefetch_stall:,})",
        f"    bytes/layer  {mc.bytes:>9,}  bytes/frame ({layers} MoE layers) "
        f"{mc.bytes * layers:,}  -> {mc.bytes * layers / (mc.total * layers):.1f} B/cycle "
        f"average demand",
    ]


def analytic(cfg) -> str:
    md, hw = cfg.model, cfg.hw
    g = load_geometry(cfg)
    even = tokens_per_expert(cfg, "even")
    half = tokens_per_expert(cfg, "half")
    me = round(sum(even) / len(even))
    lines = [f"== {cfg.name}: {hw.array_rows}x{hw.array_cols} array, memory "
             f"{hw.mem_bytes_per_cycle} B/cycle, latency {hw.mem_latency}, "
             f"{hw.clock_mhz:g} MHz ==",
             f"  MoE layer: {md.tokens} tokens, top-{md.top_k} of {md.experts} experts, expert "
             f"MLP {md.dim} -> {md.expert_hidden} -> {md.dim}; one matrix load = "
             f"{g['bytes'][0]:,} B (weights + bias)",
             f"  router: {router_cycles_per_token(cfg)} cycles/token; fc1 of an expert with "
             f"{me} tokens: {matrix_compute_cycles(cfg, me, 0):,} cycles, fc2: "
             f"{matrix_compute_cycles(cfg, me, 1):,}"]
    lines += _layer_table(cfg, "even routing", even)
    lines += _layer_table(cfg, "half the experts", half)
    lines.append("")
    lines.append(f"  prefetch-stall sweep (even routing, latency {hw.mem_latency}):")
    head = (f"  {'B/cycle':>7} {'load/matrix':>11} {'prefetch stall':>14} {'first wait':>10} "
            f"{'layer cycles':>12} {'vs best':>7} {'ms/frame MoE':>12}")
    lines.append(head)
    best = moe_layer_cycles(cfg, even, beat=max(SWEEP)).total
    hide = None
    for w in SWEEP:
        mc = moe_layer_cycles(cfg, even, beat=w)
        load = -(-g["bytes"][0] // w)
        ms = mc.total * len(md.moe_blocks) / hw.clock_mhz / 1e3
        mark = ""
        if hide is None and mc.prefetch_stall == 0:
            hide, mark = w, "  <- prefetch fully hidden"
        lines.append(f"  {w:>7} {load:>11,} {mc.prefetch_stall:>14,} {mc.first_wait:>10,} "
                     f"{mc.total:>12,} {mc.total / best:>6.2f}x {ms:>12.3f}{mark}")
    if hide is None:
        lines.append("  prefetch is not hidden at any swept bandwidth")
    else:
        lines.append(f"  weight loading is fully hidden from {hide} B/cycle "
                     f"({hide * hw.clock_mhz / 1e3:.1f} GB/s at {hw.clock_mhz:g} MHz); "
                     f"the configured {hw.mem_bytes_per_cycle} B/cycle "
                     f"{'hides it' if hw.mem_bytes_per_cycle >= hide else 'does not'}")
    return "\n".join(lines)


def rtl_sweep(widths, seed: int) -> str:
    """The RTL MoE layer (pysim, tiny) at several memory widths vs the model."""
    base = get_config("tiny")
    lines = [f"== RTL (pysim) MoE layer, {base.name}: {base.model.tokens} tokens, "
             f"{base.model.experts} experts, {base.hw.array_rows}x{base.hw.array_cols} array, "
             f"latency {base.hw.mem_latency}, seed {seed} ==",
             f"  {'B/cycle':>7} {'first wait':>10} {'model':>6} {'RTL stall':>9} {'model':>6} "
             f"{'RTL cycles':>10} {'model':>6} "
             f"{'bytes read':>10} {'bit-exact':>9} {'sim s':>5}"]
    for w in widths:
        cfg = with_changes(base, hw=dict(mem_bytes_per_cycle=w))
        case = moe_case(cfg, seed)
        t0 = time.time()
        received, st = run_moe_system(cfg, case, deadline_cycles=500_000)
        dt = time.time() - t0
        p = f"blocks.{case['block']}."
        r = route(cfg, case["xn"], case["qp"][p + f"mlp.gates.{case['task']}.weight"])
        mc = moe_layer_cycles(cfg, [len(q.tokens) for q in expert_queues(cfg, r)])
        exact = received == moe_beats(cfg, case)["y"]
        lines.append(f"  {w:>7} {st['first_wait_cycles']:>10,} {mc.first_wait:>6,} "
                     f"{st['stall_cycles'] - st['first_wait_cycles']:>9,} {mc.prefetch_stall:>6,} "
                     f"{st['cycles']:>10,} {mc.total:>6,} {st['bytes_read']:>10,} "
                     f"{'yes' if exact else 'NO':>9} {dt:>5.1f}")
        if not exact:
            lines.append("  !! RTL output differs from the golden MoE layer")
    lines.append("  (first wait: routing drain + first matrix load, never hidden; stall: prefetch "
                 "stalls after the first grant)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append",
                    help="preset(s) for the analytic part (default: both M3ViT presets)")
    ap.add_argument("--no-rtl", action="store_true", help="skip the RTL sweep (about a minute)")
    ap.add_argument("--rtl-widths", type=int, nargs="*", default=list(RTL_SWEEP))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    for name in args.config or ["m3vit-tiny-cityscapes", "m3vit-ecp5-85f"]:
        print(analytic(get_config(name)))
        print()
    if not args.no_rtl:
        print(rtl_sweep(args.rtl_widths, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
