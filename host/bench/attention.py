"""p-sweep of the attention unit: cycles per head and K/V bytes per cycle, from RTL simulation.

    python -m host.bench.attention [--tokens 33] [--ps 1,2,4,8] [--heads 2]

For each p (cfg.hw.attn_parallel) it simulates hw.attention.attention.Attention in Amaranth's simulator
on a reduced size (default 33 tokens x head_dim 16 of the ``tiny`` config with 16 multipliers per
lane, i.e. one key per cycle), checks the outputs bit-exact against the golden model, and reports:

- cycles of one isolated head (first clock edge to last output) and the model's figure
  (sim.cycles.attention.attention_head_cycles, exact);
- cycles per head back to back (two heads: the second head's increment);
- the K/V port's bytes (the unit's ``kv_bytes`` counter) per cycle while the K/V stream runs,
  and the largest number of bytes read in any single cycle (the memory-port model: sampled
  every cycle);
- speedup over p = 1.

Then the analytic table for one M3ViT head (129 tokens x head_dim 64, 64 multipliers per lane),
and, for comparison, the same head computed on the shared PE array (QK^T and PV as GEMMs via
sim.cycles.gemm, scores written out and softmaxed in between). The claim: K/V bandwidth stays
~2 * dw * bytes per cycle for every p while cycles drop ~1/p.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from amaranth.lib import data
from amaranth.sim import Simulator

from hw.attention.attention import Attention
from hw.attention.attention_stream import attention_reference, kv_beats, o_beats, q_beats
from sim.config import get_config, with_changes
from sim.cycles.attention import (attention_head_cycles, attention_kv_bytes,
                               attention_steady_cycles, attention_sweep)
from sim.cycles.gemm import gemm_cycles

__all__ = ["simulate_attention", "rtl_sweep", "main"]


def simulate_attention(cfg, tokens: int, heads: int = 2, seed: int = 1) -> dict:
    """Simulate ``heads`` heads back to back at full rate; returns the measured figures."""


    dut = Attention(cfg, tokens)
    ap = dut.ap
    rng = np.random.default_rng(seed)
    one = 1 << cfg.num.act.frac_bits
    q, k, v = (rng.normal(0, 2 * one, size=(heads, ap.N, ap.hd)).astype(np.int64)
               for _ in range(3))
    want = o_beats(cfg, attention_reference(cfg, q, k, v), ap.norm_width)
    qb, kvb = q_beats(cfg, q), kv_beats(cfg, k, v)
    res = {"out": [], "out_edges": [], "kv_edges": [], "max_bytes_per_cycle": 0}

    def plain(value):
        if isinstance(value, data.Const):
            lay = data.Layout.cast(value.shape())
            if isinstance(lay, data.ArrayLayout):
                return [plain(value[i]) for i in range(lay.length)]
            return {name: plain(value[name]) for name, _ in lay}
        return value

    async def send(ctx, port, beats, edges=None):
        edge = 0
        for b in beats:
            ctx.set(port.payload, b)
            ctx.set(port.valid, 1)
            while True:
                edge += 1
                _, _, ready = await ctx.tick().sample(port.ready)
                if ready:
                    break
            if edges is not None:
                edges.append(edge)
        ctx.set(port.valid, 0)

    async def q_tb(ctx):
        await send(ctx, dut.q, qb)

    async def kv_tb(ctx):
        await send(ctx, dut.kv, kvb, res["kv_edges"])

    async def o_tb(ctx):
        ctx.set(dut.o.ready, 1)
        edge, last_bytes = 0, 0
        while len(res["out"]) < len(want):
            _, _, valid, payload, kv_bytes = await ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.kv_bytes)
            edge += 1
            res["max_bytes_per_cycle"] = max(res["max_bytes_per_cycle"], kv_bytes - last_bytes)
            last_bytes = kv_bytes
            if valid:
                res["out"].append(plain(payload))
                res["out_edges"].append(edge)
        res["kv_bytes"] = last_bytes

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(q_tb)
    sim.add_testbench(kv_tb)
    sim.add_testbench(o_tb)
    sim.run()
    if res["out"] != want:
        bad = next(i for i, (g, w) in enumerate(zip(res["out"], want)) if g != w)
        raise AssertionError(f"p={ap.p}: output beat {bad} differs from the golden model")
    per_head = len(want) // heads
    first_head_end = res["out_edges"][per_head - 1]
    kv = res["kv_edges"]
    stream_cycles = kv[-1] - kv[0] + 1
    return dict(p=ap.p, tokens=ap.N, head_dim=ap.hd, heads=heads, norm_width=ap.norm_width,
                cycles_first_head=first_head_end,
                cycles_per_head_steady=(res["out_edges"][-1] - first_head_end) / (heads - 1)
                if heads > 1 else float("nan"),
                kv_bytes=res["kv_bytes"], kv_bytes_per_cycle=res["kv_bytes"] / stream_cycles,
                max_bytes_per_cycle=res["max_bytes_per_cycle"],
                model_head_cycles=attention_head_cycles(cfg, tokens),
                model_steady=attention_steady_cycles(cfg, tokens),
                model_kv_bytes=heads * attention_kv_bytes(cfg, tokens))


def rtl_sweep(tokens: int = 33, ps=(1, 2, 4, 8), heads: int = 2, base: str = "tiny",
              dot_width: int | None = None) -> list[dict]:
    cfg0 = get_config(base)
    dw = cfg0.model.head_dim if dot_width is None else dot_width
    rows = []
    for p in ps:
        cfg = with_changes(cfg0, hw=dict(attn_parallel=p, attn_dot_width=dw))
        rows.append(simulate_attention(cfg, tokens, heads))
    return rows


def _pe_array_head_cycles(cfg) -> int:
    """One head on the shared PE array: S = Q K^T, softmax (1 score / cycle / array column),
    O = P V, as GEMMs of sim.cycles.gemm."""
    n, hd = cfg.model.tokens, cfg.model.head_dim
    softmax = -(-n * n // cfg.hw.array_cols)
    return gemm_cycles(cfg, n, hd, n) + softmax + gemm_cycles(cfg, n, n, hd)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=33)
    ap.add_argument("--ps", default="1,2,4,8")
    ap.add_argument("--heads", type=int, default=2)
    args = ap.parse_args(argv)
    ps = tuple(int(x) for x in args.ps.split(","))

    rows = rtl_sweep(args.tokens, ps, args.heads)
    r0 = rows[0]
    print(f"RTL (Amaranth pysim), {r0['tokens']} tokens x head_dim {r0['head_dim']}, one key per "
          f"cycle per lane, {args.heads} heads back to back, outputs bit-exact vs golden")
    print(f"{'p':>3} {'cycles/head':>12} {'model':>7} {'steady/head':>12} {'speedup':>8} "
          f"{'K/V bytes':>10} {'B/cycle':>8} {'max B/cyc':>9} {'nw':>3}")
    for r in rows:
        assert r["cycles_first_head"] == r["model_head_cycles"], r
        assert r["kv_bytes"] == r["model_kv_bytes"], r
        print(f"{r['p']:>3} {r['cycles_first_head']:>12} {r['model_head_cycles']:>7} "
              f"{r['cycles_per_head_steady']:>12.0f} "
              f"{rows[0]['cycles_per_head_steady'] / r['cycles_per_head_steady']:>7.2f}x "
              f"{r['kv_bytes'] // r['heads']:>10} {r['kv_bytes_per_cycle']:>8.1f} "
              f"{r['max_bytes_per_cycle']:>9} {r['norm_width']:>3}")

    cfg = get_config("m3vit-tiny-cityscapes")
    sweep = attention_sweep(cfg, ps)
    print(f"\nModel, one M3ViT head ({cfg.model.tokens} tokens x head_dim "
          f"{cfg.model.head_dim}, {cfg.hw.attn_dot_width} multipliers per lane):")
    print(f"{'p':>3} {'cycles/head':>12} {'steady':>8} {'N^2/p+p-1':>10} {'K/V MB':>7} "
          f"{'K/V B/cycle':>12} {'all B/cycle':>12}")
    for s in sweep:
        print(f"{s['p']:>3} {s['cycles']:>12} {s['steady_cycles']:>8} {s['ideal_cycles']:>10.0f} "
              f"{s['kv_bytes'] / 1e6:>7.3f} {s['kv_bytes_per_steady_cycle']:>12.1f} "
              f"{s['total_bytes_per_steady_cycle']:>12.1f}")
    pe = _pe_array_head_cycles(cfg)
    s4 = next((s for s in sweep if s["p"] == cfg.hw.attn_parallel), sweep[-1])
    print(f"\nSame head on the {cfg.hw.array_rows}x{cfg.hw.array_cols} PE array "
          f"(QK^T GEMM + softmax pass + PV GEMM): {pe} cycles vs {s4['steady_cycles']} on "
          f"the attention unit (p = {s4['p']}); frame total for {cfg.model.depth} blocks x "
          f"{cfg.model.heads} heads: {pe * cfg.model.depth * cfg.model.heads:,} vs "
          f"{s4['steady_cycles'] * cfg.model.depth * cfg.model.heads:,} cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
