"""Shared RTL helpers (hw/common.py) against plain Python loops and sums, in pysim."""
from __future__ import annotations

import itertools
import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.common import Loop, count_nested, mul_const, tree_sum


def _run(m, bench, cycles_note=""):
    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("dims", [(3,), (2, 3), (3, 1, 4)])
def test_count_nested_walks_the_loop_nest_in_order(dims):
    m = Module()
    ctrs = [Signal(range(d + 1), name=f"c{i}") for i, d in enumerate(dims)]   # outermost first
    on, adv = Signal(init=1), Signal()
    with m.If(adv & on):
        count_nested(m, [Loop(c, d - 1) for c, d in reversed(list(zip(ctrs, dims)))],
                     done=[on.eq(0)])
    want = list(itertools.product(*(range(d) for d in dims)))

    async def bench(ctx):
        got = []
        rng = random.Random(1)
        while ctx.get(on):
            step = rng.random() < 0.7
            if step:
                got.append(tuple(ctx.get(c) for c in ctrs))
            ctx.set(adv, step)
            await ctx.tick()
        assert got == want
        assert [ctx.get(c) for c in ctrs] == [0] * len(dims)   # every level wrapped
    _run(m, bench)


def test_count_nested_step_is_last_and_keep_outer():
    """A level stepping by R with an explicit last test; the outer level keeps its value."""
    K, R, T = 10, 4, 3
    m = Module()
    k, t, on = Signal(range(K + R)), Signal(range(T + 1)), Signal(init=1)
    with m.If(on):
        count_nested(m, [Loop(k, is_last=k + R >= K, step=R), Loop(t, T - 1, first=None)],
                     done=[on.eq(0)])

    async def bench(ctx):
        got = []
        while ctx.get(on):
            got.append((ctx.get(t), ctx.get(k)))
            await ctx.tick()
        assert got == [(tt, kk) for tt in range(T) for kk in range(0, K, R)]
        assert ctx.get(t) == T                                    # first=None: not reloaded
    _run(m, bench)


def test_loop_needs_one_last():
    c = Signal(4)
    with pytest.raises(TypeError, match="exactly one of last= and is_last="):
        Loop(c)
    with pytest.raises(TypeError, match="exactly one of last= and is_last="):
        Loop(c, 3, is_last=c == 3)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_tree_sum_is_the_sum(n):
    rng = random.Random(n)
    xs = [Signal(signed(9), name=f"x{i}") for i in range(n)]
    y = Signal(signed(9 + n))
    m = Module()
    m.d.comb += y.eq(tree_sum(xs))

    async def bench(ctx):
        for _ in range(50):
            vals = [rng.randrange(-256, 256) for _ in xs]
            for x, v in zip(xs, vals):
                ctx.set(x, v)
            assert ctx.get(y) == sum(vals)
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("c", [0, 1, 2, 3, 12, 13, 129, 255])
@pytest.mark.parametrize("signedness", [unsigned, signed])
def test_mul_const_is_the_product(c, signedness):
    x = Signal(signedness(8))
    y = Signal(signed(18))
    m = Module()
    product = mul_const(x, c)
    m.d.comb += y.eq(product)
    lo, hi = (-128, 128) if signedness is signed else (0, 256)

    async def bench(ctx):
        for v in range(lo, hi):
            ctx.set(x, v)
            assert ctx.get(y) == v * c, (v, c)
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    # the product's own shape holds every value (no wrap before the assignment widens it)
    assert product.shape().signed == (signedness is signed) or c == 0
    assert 2 ** (len(product) - (1 if product.shape().signed else 0)) > max(abs(lo), hi) * c - 1


def test_mul_const_refuses_a_negative_constant():
    with pytest.raises(ValueError, match="mul_const"):
        mul_const(Signal(4), -3)
