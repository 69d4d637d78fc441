"""cocotb tests of hw.attention.exp2.Exp2 on its Verilog (run by tests/hw/test_exp2_verilator.py).

params: ``config`` (Config.to_dict()), ``seed``, ``en_prob``, ``n_random``. The inputs are every
x of the useful range plus random very negative x (same set as the pysim test); the expected
values come from sim.golden.softmax.exp2_fixed.
"""
from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.attention.exp2 import Exp2, exp2_params
from sim.config import Config
from sim.golden.softmax import exp2_fixed
from tests.harness.cocotb_tb import setup_dut, tb_params


def _inputs(cfg: Config, rng: np.random.Generator, n_random: int) -> np.ndarray:
    fs = cfg.num.score.frac_bits
    lo = -(exp2_params(cfg)["max_shift"] + 1) << fs
    xmin = 2 * cfg.num.score.min_int
    return np.concatenate([np.arange(lo, 1, dtype=np.int64),
                           rng.integers(xmin, lo, size=n_random, dtype=np.int64),
                           np.array([xmin, cfg.num.score.min_int, lo - 1], dtype=np.int64)])


@cocotb.test()
async def exp2_all_inputs(dut):
    """Every useful x with a random pipeline enable; y must match exp2_fixed `latency` enabled
    edges later and hold while en is low."""
    p, cfg = tb_params()
    seed = p["seed"]
    rng = random.Random(seed)
    xs = _inputs(cfg, np.random.default_rng(seed), p["n_random"])
    want = exp2_fixed(cfg, xs)
    lat = Exp2.latency
    await setup_dut(dut, pins={"en": 0, "x": 0})
    sampled = []      # index of the x sampled at each enabled edge (len(xs) while flushing)
    k = 0
    checked = 0
    new = False       # the previous edge was enabled: y holds a new result
    while checked < len(xs):
        # Inputs are written just after a rising edge; y (registered) is read at the falling
        # edge, so it reflects the edges before this one.
        en = rng.random() < p["en_prob"]
        dut.x.value = int(xs[k]) if k < len(xs) else 0
        dut.en.value = int(en)
        await FallingEdge(dut.clk)
        await ReadOnly()
        if len(sampled) >= lat and sampled[-lat] < len(xs):
            idx = sampled[-lat]
            y = int(dut.y.value)
            # With en low the pipeline holds, so the same expectation must still be met.
            assert y == want[idx], (f"x={xs[idx]}: got {y}, expected {want[idx]} "
                                    f"(seed={seed})")
            checked += new
        await RisingEdge(dut.clk)
        new = en
        if en:
            sampled.append(min(k, len(xs)))
            k += 1
    dut._log.info("checked %d inputs (seed=%d)", checked, seed)
