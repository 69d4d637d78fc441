"""Expert streamer (hw/moe/expert_stream.py) in pysim.

A random routing's expert list (the reorder unit's, from tests/hw/test_patch_reorder.py's golden
model) goes in with random gaps; the consumer takes grants with random back-pressure. Checked
against the list and a table written through ``tbl_*`` with random addresses (an independent
dict, not the component's memory): grant order (fc1 then fc2 of each chosen expert, ascending,
once per chunk of at most ``hw.hidden_rows`` tokens when H is row-tiled, as m3vit-ecp5-85f is),
each grant's weight / bias addresses (table entries ``expert x 4 + matrix x 2 (+1)``), ``last``
only on the final fc2, the stream protocol, the documented 2-cycle grant latency at full rate,
and the stall counter against the consumer's own count of waits.
"""
from __future__ import annotations

import random

import pytest

from hw.moe.expert_stream import ExpertStreamer
from hw.moe.prefetcher import TENSORS
from host.pysim import run_pysim, stream_recv, stream_send
from sim.config import ConfigError, get_config, with_changes
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.hw.test_patch_reorder import golden_list, random_routing


def _want(cfg, beats, table) -> list[dict]:
    """The grants an independent reading of the rule gives: per chosen expert, fc1 then fc2 of
    each chunk of at most ``hidden_rows`` of its tokens (all of them when H is not row-tiled),
    ``last`` on the final fc2 of the list."""
    T = cfg.hw.hidden_rows or cfg.model.tokens
    out = []
    for i, b in enumerate(beats):
        chunks = [min(T, b["count"] - c) for c in range(0, b["count"], T)]
        for j, n in enumerate(chunks):
            for mt in (0, 1):
                base = b["expert"] * len(TENSORS) + 2 * mt
                out.append(dict(expert=b["expert"], count=n, matrix=mt,
                                last=int(mt == 1 and i == len(beats) - 1 and j == len(chunks) - 1),
                                w_addr=table[base], b_addr=table[base + 1]))
    return out


def _run(cfg, seed, full_rate: bool):
    rng = random.Random(seed)
    E = cfg.model.experts
    table = {i: rng.randrange(1 << cfg.hw.mem_addr_bits) & ~15 for i in range(E * len(TENSORS))}
    experts, weights = random_routing(cfg, rng)
    beats = golden_list(cfg, experts, weights)
    dut = ExpertStreamer(cfg, layers=1)
    got, took, accepted = [], [], []
    waits = []

    async def writer_and_list(ctx):
        for addr, val in table.items():
            ctx.set(dut.tbl_addr, addr)
            ctx.set(dut.tbl_data, val)
            ctx.set(dut.tbl_we, 1)
            await ctx.tick()
        ctx.set(dut.tbl_we, 0)
        await stream_send(ctx, dut.experts, beats, rng=None if full_rate else rng,
                          valid_prob=0.5, accepted_cycles=accepted)

    want = _want(cfg, beats, table)

    async def consumer(ctx):
        await ctx.tick().repeat(len(table))
        n, edges = 0, len(table)
        while n < len(want):
            take = full_rate or rng.random() < 0.6
            ctx.set(dut.grant.ready, int(take))
            _, _, valid, payload = await ctx.tick().sample(dut.grant.valid, dut.grant.payload)
            edges += 1
            if take and not valid:
                waits.append(edges)
            if take and valid:
                got.append(dict(expert=int(payload.expert), count=int(payload.count),
                                matrix=int(payload.matrix), last=int(payload.last),
                                w_addr=int(payload.w_addr), b_addr=int(payload.b_addr)))
                took.append(edges)
                n += 1
        ctx.set(dut.grant.ready, 0)
        await ctx.tick()
        # the counter runs from the edge that accepts the list's first beat
        first = len(table) + accepted[0]
        assert ctx.get(dut.stall_cycles) == len([w for w in waits if w > first]), f"seed={seed}"

    run_pysim(dut, [writer_and_list, consumer])
    assert got == want, f"seed={seed}"
    return beats, accepted, took, len(table)


@pytest.mark.parametrize("cfg_name", ["tiny", "m3vit-ecp5-85f"])
def test_grants_random(cfg_name, seed):
    _run(get_config(cfg_name), seed, full_rate=False)


def test_grant_latency_full_rate(seed):
    """Full rate: a grant is valid 2 cycles after its expert beat is accepted (fc1), fc2's 2
    cycles after fc1's was taken, the next expert's beat is accepted the cycle after fc2's."""
    cfg = get_config("tiny")
    beats, accepted, took, t0 = _run(cfg, seed, full_rate=True)
    for i in range(len(beats)):
        acc = t0 + accepted[i]                   # edge at which beat i transferred
        assert took[2 * i] == acc + 2, f"seed={seed}"
        assert took[2 * i + 1] == took[2 * i] + 2, f"seed={seed}"
        if i + 1 < len(beats):
            assert t0 + accepted[i + 1] == took[2 * i + 1] + 1, f"seed={seed}"


def test_expert_weights_validated():
    with pytest.raises(ConfigError, match=r"hw.expert_weights must be one of prefetch, stream, "
                                          r"got 'dram'"):
        with_changes(get_config("tiny"), hw=dict(expert_weights="dram"))
    assert get_config("m3vit-ecp5-85f").hw.expert_weights == "stream"
    assert get_config("m3vit-tiny-cityscapes").hw.expert_weights == "prefetch"
    assert get_config("tiny").hw.expert_weights == "prefetch"
