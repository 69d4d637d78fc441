"""GEMM engine benchmark: cycles and MAC utilization of the M3ViT linear layers.

    python -m host.bench.gemm                      # analytic model, m3vit-tiny-cityscapes (16x16)
    python -m host.bench.gemm --config m3vit-ecp5-85f
    python -m host.bench.gemm --rtl                # + reduced shapes simulated in RTL (pysim)

The table uses :mod:`sim.cycles.gemm` (exact for the RTL with no back-pressure). ``--rtl`` runs
the GemmEngine of the same array size on reduced shapes (small M, K, N, odd ones included) in
the Amaranth simulator with always-valid inputs and an always-ready output, checks the output
bit-exact against sim/golden, and prints the RTL cycle counter next to the formula.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from amaranth.sim import Simulator

from hw.array.epilogue import EpilogueMode
from hw.array.gemm_engine import GemmEngine, gemm_output, gemm_streams
from sim.config import Config, generic_config, get_config
from sim.cycles.gemm import (gemm_active_cycles, gemm_cycles, gemm_utilization,
                          steady_state_utilization)
from sim.golden.linear import linear, residual_add, scaled_accumulate

__all__ = ["m3vit_shapes", "measure_rtl", "main"]


def m3vit_shapes(cfg: Config) -> list[tuple[str, int, int, int, int]]:
    """(name, m, k, n, count per frame) of every linear layer, experts split per expert.

    ``cfg.model.gemms()`` lists the expert GEMMs with all routed tokens (M = tokens * top_k); the
    engine runs one GEMM per expert with its tokens only, so they appear here split evenly over
    the experts (e.g. 258 = 2 x 17 + 14 x 16 tokens), plus a row with M = tokens (one expert takes
    every token: the largest single expert GEMM) and one with M = R / 4 (an expert with few
    tokens: the weight stream, R cycles per tile, bounds it); both count 0 (not in the total).
    """
    md = cfg.model
    out = []
    for g in md.gemms():
        if g.name.startswith("expert_"):
            per, extra = divmod(g.m, md.experts)
            if extra:
                out.append((f"{g.name} ({per + 1} tok)", per + 1, g.k, g.n, g.count * extra))
            if per:
                out.append((f"{g.name} ({per} tok)", per, g.k, g.n,
                            g.count * (md.experts - extra)))
            out.append((f"{g.name} ({md.tokens} tok)", md.tokens, g.k, g.n, 0))
            few = max(1, cfg.hw.array_rows // 4)    # M < R: weight-load bound
            out.append((f"{g.name} ({few} tok)", few, g.k, g.n, 0))
        else:
            out.append((g.name, g.m, g.k, g.n, g.count))
    return out


def measure_rtl(cfg: Config, m: int, k: int, n: int, *, seed: int = 0, bias: bool = True,
                gelu: bool = True, mode: str = "scaled") -> dict:
    """Run one GEMM on the RTL (pysim), no gaps / back-pressure; returns cycles and a check.

    Result: ``{"cycles", "active", "model", "exact"}`` where ``exact`` says the output matched
    sim/golden bit for bit.
    """


    rng = np.random.default_rng(seed)
    nm = cfg.num
    x = rng.integers(nm.act.min_int, nm.act.max_int + 1, size=(m, k)) >> rng.integers(0, 8, (m, k))
    w = rng.integers(nm.weight.min_int, nm.weight.max_int + 1, size=(n, k)) >> 4
    b = rng.integers(-(1 << 20), 1 << 20, size=n) if bias else None
    res = rng.integers(nm.act.min_int, nm.act.max_int + 1, size=(m, n)) >> 2
    score = rng.integers(0, nm.exp.max_int + 1, size=m)
    y = linear(cfg, x, w, b, gelu=gelu)
    modes = {"plain": EpilogueMode.PLAIN, "residual": EpilogueMode.RESIDUAL,
             "scaled": EpilogueMode.SCALED}
    if mode == "residual":
        y = residual_add(cfg, res, y)
    elif mode == "scaled":
        y = scaled_accumulate(cfg, res, y, score)
    else:
        res = score = None
    beats = gemm_streams(cfg, x, w, b, res, score)
    dut = GemmEngine(generic_config(cfg), max_m=m, max_k=k, max_n=n)   # pysim: no primitives
    n_out = -(-n // cfg.hw.array_cols) * m
    got, result = [], {}

    def feeder(port, payloads):
        async def feed(ctx):     # always valid: one beat per cycle whenever the engine is ready
            ctx.set(port.valid, 1)
            for p in payloads:
                ctx.set(port.payload, p)
                await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)
        return feed

    async def main_tb(ctx):
        ctx.set(dut.cmd.payload, dict(m=m, k=k, n=n, bias=int(bias), gelu=int(gelu),
                                      mode=modes[mode]))
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)
        ctx.set(dut.o.ready, 1)
        while len(got) < n_out:
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                got.append([payload[c] for c in range(cfg.hw.array_cols)])
        await ctx.tick()
        result["cycles"] = ctx.get(dut.cycles)
        result["active"] = ctx.get(dut.mac_active_cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main_tb)
    res_beats = [{"x": r, "score": int(s)} for r, s in
                 zip(beats["res_x"].tolist(), beats["res_score"].tolist())]
    for port, payloads in ((dut.act, beats["act"].tolist()), (dut.w, beats["w"].tolist()),
                           (dut.bias, beats["bias"].tolist()), (dut.res, res_beats)):
        sim.add_testbench(feeder(port, payloads), background=True)
    sim.run()
    result["model"] = gemm_cycles(cfg, m, k, n)
    result["exact"] = bool(np.array_equal(gemm_output(cfg, got, m, n), y))
    return result


def _table(cfg: Config) -> str:
    R, C = cfg.hw.array_rows, cfg.hw.array_cols
    lines = [f"GEMM engine, {cfg.name}: {R} x {C} array ({R * C} MACs/cycle), "
             f"{cfg.hw.clock_mhz:g} MHz; analytic model sim/cycles/gemm.py",
             f"{'layer':<28}{'M':>5}{'K':>5}{'N':>5}{'tiles':>7}{'cycles':>9}{'util':>8}"
             f"{'steady':>8}{'/frame':>8}{'frame cycles':>14}"]
    tot_cyc = tot_mac = 0
    for name, m, k, n, count in m3vit_shapes(cfg):
        cyc = gemm_cycles(cfg, m, k, n)
        tiles = gemm_active_cycles(cfg, m, k, n) // m
        lines.append(f"{name:<28}{m:>5}{k:>5}{n:>5}{tiles:>7}{cyc:>9,}"
                     f"{gemm_utilization(cfg, m, k, n):>8.1%}"
                     f"{steady_state_utilization(cfg, m, k, n):>8.1%}{count:>8}"
                     f"{cyc * count:>14,}")
        tot_cyc += cyc * count
        tot_mac += m * k * n * count
    lines.append(f"{'linear layers, one frame':<28}{'':>39}{tot_mac / (tot_cyc * R * C):>8.1%}"
                 f"{'':>16}{tot_cyc:>14,}")
    lines.append(f"  = {tot_cyc / cfg.hw.clock_mhz / 1e3:.3f} ms at {cfg.hw.clock_mhz:g} MHz for "
                 f"{tot_mac:,} MACs (ideal {-(-tot_mac // (R * C)):,} cycles); experts with the "
                 f"tokens spread evenly")
    return "\n".join(lines)


RTL_SHAPES = [(33, 64, 48), (20, 32, 32), (17, 40, 36), (9, 48, 16), (3, 20, 19), (1, 7, 5)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="m3vit-tiny-cityscapes", help="config preset")
    ap.add_argument("--rtl", action="store_true",
                    help="also simulate reduced shapes in RTL and compare with the formula")
    args = ap.parse_args(argv)
    cfg = get_config(args.config)
    print(_table(cfg))
    if args.rtl:
        print(f"\nRTL (pysim) on the same {cfg.hw.array_rows} x {cfg.hw.array_cols} array, "
              f"reduced shapes, no back-pressure:")
        print(f"{'M':>5}{'K':>5}{'N':>5}{'RTL cycles':>12}{'model':>8}{'diff':>7}{'util':>8}"
              f"  bit-exact")
        ok = True
        for m, k, n in RTL_SHAPES:
            r = measure_rtl(cfg, m, k, n)
            util = m * k * n / (r["cycles"] * cfg.hw.macs_per_cycle)
            print(f"{m:>5}{k:>5}{n:>5}{r['cycles']:>12}{r['model']:>8}"
                  f"{r['cycles'] - r['model']:>+7}{util:>8.1%}  {'yes' if r['exact'] else 'NO'}")
            ok &= r["exact"] and r["cycles"] == r["model"]
        if not ok:
            print("MISMATCH between RTL and model or golden output", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
