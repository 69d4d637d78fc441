"""hw/fabric/bram.py and hw/fabric/ecp5_bram.py: a registered block-RAM read returns what a
plain memory holds, shifted by the documented latency, with random writes, random read
addresses and the read clock enable toggling.

- ``RegisteredReadPort`` on a ``lib.memory.Memory`` (generic) in pysim and in Icarus;
- ``Ecp5Bram`` (DP16KD ``Instance``s, ``REGMODE_B="OUTREG"``) in Icarus on
  tests/hw/ecp5_models/DP16KD.v, in each DP16KD aspect ratio (x36 included), with several blocks
  side by side, rows cascaded by address, the LUT-RAM remainder, and lanes written apart (on
  byte enables, or on columns of their own);
- all against a numpy memory (the word at the address when the block RAM samples it). Writes
  to the address being read at the same edge are left out of the stimulus: the DP16KD's
  collision result is undefined.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.fabric.bram import RegisteredReadPort
from hw.fabric.ecp5_bram import INIT_ASPECTS, Ecp5Bram, dp16kd_geometry, dp16kd_plan
from tests.harness.cycle_vectors import pipeline_reference, run_icarus, run_pysim
from tests.harness.seeds import seed_msg, seed  # noqa: F401  (pytest fixture)

MODELS = Path(__file__).parent / "ecp5_models"
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="Icarus Verilog (iverilog) is not on PATH: "
                                         "apt-get install iverilog")
# (width, depth[, write lanes]): one x18 block, three x18 side by side, x9, two x4, two x2;
# x36 with two lanes on byte enables; two x36 columns x three rows + 12 words of LUT RAM in four
# lanes (an M3ViT buffer's shape, narrowed); one x36 row + LUT RAM; 16-bit lanes on columns of
# their own + LUT RAM; three x18 rows cascaded
GEOMETRIES = [(16, 64), (40, 1000), (9, 2048), (5, 3000), (3, 5000),
              (36, 512, 2), (72, 1548, 4), (36, 516, 2), (32, 1040, 2), (18, 3000)]
GEOMETRIES = [g + (1,) * (3 - len(g)) for g in GEOMETRIES]     # (width, depth, lanes)
PORTS = ["w_addr", "w_data", "w_en", "r_addr", "r_en"]


class GenericBram(wiring.Component):
    """``Memory`` + a write port + :class:`RegisteredReadPort`, with Ecp5Bram's ports."""

    def __init__(self, width, depth, lanes=1, *, address_reg=False, init=()):
        self.memory = Memory(shape=width, depth=depth, init=list(init))
        self.write = self.memory.write_port(granularity=width // lanes if lanes > 1 else None)
        self.read = RegisteredReadPort(self.memory, address_reg=address_reg)
        self.latency = self.read.latency
        super().__init__({"w_addr": In(range(depth)), "w_data": In(width), "w_en": In(lanes),
                          "r_addr": In(range(depth)), "r_en": In(1), "r_data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory, m.submodules.read = self.memory, self.read
        m.d.comb += [self.write.addr.eq(self.w_addr), self.write.data.eq(self.w_data),
                     self.write.en.eq(self.w_en), self.read.addr.eq(self.r_addr),
                     self.read.en.eq(self.r_en), self.r_data.eq(self.read.data)]
        return m


def _stimulus(seed, width, depth, lanes, address_reg, n=300, init=()):
    """Inputs, and the word each cycle's read address finds in a numpy memory (holding
    ``init``, then zeros, before the first write)."""
    rng = np.random.default_rng(seed)
    hot = rng.choice(depth, size=min(depth, 24), replace=False)     # reuse a few addresses
    hot[:2] = [0, depth - 1]
    w_addr, r_addr = rng.choice(hot, n), rng.choice(hot, n)
    w_data = np.array([int(rng.integers(0, 1 << 62)) << 10 | int(rng.integers(0, 1 << 10))
                       for _ in range(n)], dtype=object) & ((1 << width) - 1)
    w_en = rng.integers(0, 1 << lanes, n) * (rng.random(n) < 0.5)
    lane_w = width // lanes
    r_en = (rng.random(n) < 0.7).astype(np.int64)
    mem = np.zeros(depth, dtype=object)
    mem[:len(init)] = list(init)
    read_word = np.zeros(n, dtype=object)
    latched = None                     # the address register's content (address_reg only)
    pending = []                       # cycles whose address the block has not sampled yet
    for t in range(n):
        sampled = r_addr[t] if not address_reg else latched
        if r_en[t] and sampled is not None and w_en[t] and w_addr[t] == sampled:
            w_en[t] = 0                  # no same-edge write to the address being read
        if r_en[t]:
            if not address_reg:
                read_word[t] = mem[r_addr[t]]
            else:
                for s in pending:        # the block samples the registered address now
                    read_word[s] = mem[latched]
                pending = [t]
                latched = r_addr[t]
        for g in range(lanes):
            if w_en[t] >> g & 1:
                field = ((1 << lane_w) - 1) << (g * lane_w)
                mem[w_addr[t]] = mem[w_addr[t]] & ~field | w_data[t] & field
    inputs = dict(w_addr=w_addr, w_data=w_data, w_en=w_en, r_addr=r_addr, r_en=r_en)
    return inputs, read_word, pending


def _check(got, inputs, read_word, unsampled, latency, where):
    expected, defined = pipeline_reference(read_word, inputs["r_en"], latency)
    checked = 0
    for t in np.flatnonzero(defined):
        source = [s for s in np.flatnonzero(inputs["r_en"][:t])][-latency]
        if source in unsampled:
            continue
        assert got[t] == expected[t], f"{where}: cycle {t}: r_data = {got[t]}, want {expected[t]}"
        checked += 1
    assert checked > len(read_word) // 3


@pytest.mark.parametrize("address_reg", [False, True], ids=["addr", "addr_reg"])
@pytest.mark.parametrize("geometry", GEOMETRIES[:3], ids=lambda g: f"{g[0]}x{g[1]}/{g[2]}")
def test_generic_pysim(geometry, address_reg, seed):
    inputs, read_word, unsampled = _stimulus(seed, *geometry, address_reg)
    dut = GenericBram(*geometry, address_reg=address_reg)
    assert dut.latency == 2 + address_reg
    got = run_pysim(dut, inputs, ["r_data"])["r_data"]
    _check(got, inputs, read_word, unsampled, dut.latency, seed_msg(seed))


@needs_icarus
@pytest.mark.parametrize("target", ["ecp5", "generic"])
@pytest.mark.parametrize("address_reg", [False, True], ids=["addr", "addr_reg"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0]}x{g[1]}/{g[2]}")
def test_icarus(geometry, address_reg, target, seed, tmp_path):
    inputs, read_word, unsampled = _stimulus(seed, *geometry, address_reg)
    if target == "ecp5":
        w, d, lanes = geometry
        dut = Ecp5Bram(w, d, address_reg=address_reg, write_lanes=lanes)
    else:
        dut = GenericBram(*geometry, address_reg=address_reg)
    got = run_icarus(dut, inputs, ["r_data"], tmp_path,
                     sources=[MODELS / "DP16KD.v"] if target == "ecp5" else ())["r_data"]
    _check(got, inputs, read_word, unsampled, 2 + address_reg,
           f"{target} {geometry} {seed_msg(seed)}")


def _init_words(seed, width, depth):
    """Random initial contents: every word but the last few (they stay zero)."""
    rng = np.random.default_rng(seed + 1)
    return [int(rng.integers(0, 1 << 62)) << 10 & ((1 << width) - 1) | int(rng.integers(0, 1 << 10))
            & ((1 << width) - 1) for _ in range(depth - 3)]


@needs_icarus
@pytest.mark.parametrize("target", ["ecp5", "generic"])
@pytest.mark.parametrize("geometry", [GEOMETRIES[i] for i in (0, 1, 2, 6, 7, 9)],
                         ids=lambda g: f"{g[0]}x{g[1]}/{g[2]}")
def test_icarus_initial_contents(geometry, target, seed, tmp_path):
    """Initial contents (DP16KD INITVAL, the LUT-RAM remainder's init) read back, then writes
    over them; reads of the first cycles see only the initial words."""
    w, d, lanes = geometry
    init = _init_words(seed, w, d)
    inputs, read_word, unsampled = _stimulus(seed, *geometry, False, init=init)
    if target == "ecp5":
        dut = Ecp5Bram(w, d, write_lanes=lanes, init=init)
        assert (dut.plan.block_width, dut.plan.block_depth) in INIT_ASPECTS
    else:
        dut = GenericBram(*geometry, init=init)
    got = run_icarus(dut, inputs, ["r_data"], tmp_path,
                     sources=[MODELS / "DP16KD.v"] if target == "ecp5" else ())["r_data"]
    _check(got, inputs, read_word, unsampled, 2, f"{target} {geometry} {seed_msg(seed)}")
    assert any(read_word[t] for t in range(len(read_word)))     # the init was seen at all


def test_init_validated():
    with pytest.raises(ValueError, match="3 initial words for a memory of 2"):
        Ecp5Bram(8, 2, init=[1, 2, 3])
    with pytest.raises(ValueError, match="does not fit 8 bits"):
        Ecp5Bram(8, 16, init=[256])
    assert dp16kd_plan(9, 2048, initialised=True).block_width == 18     # not x9: no INITVAL
    zero = Ecp5Bram(9, 2048, init=[0] * 4)
    zero._MustUse__silence = True                   # built for its plan only
    assert zero.plan.block_width == 9                                   # all zero: any aspect


def test_geometry():
    assert dp16kd_geometry(16, 64) == (18, 1)
    assert dp16kd_geometry(40, 1000) == (18, 3)
    assert dp16kd_geometry(64, 1024) == (18, 4)
    assert dp16kd_geometry(9, 2048) == (9, 1)
    assert dp16kd_geometry(5, 3000) == (4, 2)
    assert dp16kd_geometry(1, 16384) == (1, 1)
    assert dp16kd_geometry(18, 3000) == (18, 3)                      # three rows cascaded
    with pytest.raises(ValueError, match="width divisible by write_lanes"):
        Ecp5Bram(30, 64, write_lanes=4)


def _blocks(width, depth, lanes):
    """Fewest blocks by hand: x36 on byte enables when a lane is whole bytes, or each lane in
    the narrowest true-dual-port aspect that holds it, with a remainder of at most 32 words in
    LUT RAM (independent of dp16kd_plan's search)."""
    lane = width // lanes
    best = []
    for bw, bd in ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)):
        if lanes > 1 and not (lane % 9 == 0 and bw >= 9):
            cols = lanes * -(-lane // bw)
        else:
            cols = -(-width // bw)
        rows = depth // bd + (0 < depth % bd and (depth < bd or depth % bd > 32))
        best.append((cols * rows, depth % bd if rows * bd < depth else 0))
    return min(best)


@pytest.mark.parametrize("shape", [(288, 1548, 16), (288, 516, 16), (288, 1536, 16),
                                   (256, 1548, 16), (72, 1548, 4), (32, 1040, 2)])
def test_plan_is_fewest_blocks(shape):
    plan = dp16kd_plan(*shape)
    assert (plan.blocks, plan.fabric_words) == _blocks(*shape)
    w, d, _ = shape
    assert plan.rows * plan.block_depth + plan.fabric_words >= d
    assert plan.columns * plan.block_width >= w


def test_m3vit_buffer_plans():
    """The ECP5 buffer bank's shapes for m3vit-ecp5-85f: 16 lanes of 18 bits, 1548 (X, XN, Q:
    129 tokens x 12 words), 1536 (H) and 516 (K, V) deep."""
    x = dp16kd_plan(288, 1548, 16)
    assert (x.block_width, x.columns, x.rows, x.fabric_words) == (36, 8, 3, 12)
    h = dp16kd_plan(288, 1536, 16)
    assert (h.block_width, h.blocks, h.fabric_words) == (36, 24, 0)
    k = dp16kd_plan(288, 516, 16)
    assert (k.block_width, k.blocks, k.fabric_words) == (36, 8, 4)
