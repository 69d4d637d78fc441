"""hw/fabric/bram.py and hw/fabric/ecp5_bram.py: a registered block-RAM read returns what a
plain memory holds, shifted by the documented latency, with random writes, random read
addresses and the read clock enable toggling.

- ``RegisteredReadPort`` on a ``lib.memory.Memory`` (generic) in pysim and in Icarus;
- ``Ecp5Bram`` (DP16KD ``Instance``s, ``REGMODE_B="OUTREG"``) in Icarus on
  tests/hw/ecp5_models/DP16KD.v, in each DP16KD aspect ratio and with several blocks side by side;
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
from hw.fabric.ecp5_bram import Ecp5Bram, dp16kd_geometry
from tests.harness.cycle_vectors import pipeline_reference, run_icarus, run_pysim
from tests.harness.seeds import seed_msg, seed  # noqa: F401  (pytest fixture)

MODELS = Path(__file__).parent / "ecp5_models"
needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="Icarus Verilog (iverilog) is not on PATH: "
                                         "apt-get install iverilog")
# (width, depth): one x18 block, three x18 side by side, x9, two x4, two x2
GEOMETRIES = [(16, 64), (40, 1000), (9, 2048), (5, 3000), (3, 5000)]
PORTS = ["w_addr", "w_data", "w_en", "r_addr", "r_en"]


class GenericBram(wiring.Component):
    """``Memory`` + a write port + :class:`RegisteredReadPort`, with Ecp5Bram's ports."""

    def __init__(self, width, depth, *, address_reg=False):
        self.memory = Memory(shape=width, depth=depth, init=[])
        self.write = self.memory.write_port()
        self.read = RegisteredReadPort(self.memory, address_reg=address_reg)
        self.latency = self.read.latency
        super().__init__({"w_addr": In(range(depth)), "w_data": In(width), "w_en": In(1),
                          "r_addr": In(range(depth)), "r_en": In(1), "r_data": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory, m.submodules.read = self.memory, self.read
        m.d.comb += [self.write.addr.eq(self.w_addr), self.write.data.eq(self.w_data),
                     self.write.en.eq(self.w_en), self.read.addr.eq(self.r_addr),
                     self.read.en.eq(self.r_en), self.r_data.eq(self.read.data)]
        return m


def _stimulus(seed, width, depth, address_reg, n=300):
    """Inputs, and the word each cycle's read address finds in a numpy memory."""
    rng = np.random.default_rng(seed)
    hot = rng.choice(depth, size=min(depth, 24), replace=False)     # reuse a few addresses
    hot[:2] = [0, depth - 1]
    w_addr, r_addr = rng.choice(hot, n), rng.choice(hot, n)
    w_data = rng.integers(0, 1 << width, n, dtype=np.int64)
    w_en = (rng.random(n) < 0.5).astype(np.int64)
    r_en = (rng.random(n) < 0.7).astype(np.int64)
    mem = np.zeros(depth, dtype=np.int64)
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
        if w_en[t]:
            mem[w_addr[t]] = w_data[t]
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
@pytest.mark.parametrize("geometry", GEOMETRIES[:3], ids=lambda g: f"{g[0]}x{g[1]}")
def test_generic_pysim(geometry, address_reg, seed):
    inputs, read_word, unsampled = _stimulus(seed, *geometry, address_reg)
    dut = GenericBram(*geometry, address_reg=address_reg)
    assert dut.latency == 2 + address_reg
    got = run_pysim(dut, inputs, ["r_data"])["r_data"]
    _check(got, inputs, read_word, unsampled, dut.latency, seed_msg(seed))


@needs_icarus
@pytest.mark.parametrize("target", ["ecp5", "generic"])
@pytest.mark.parametrize("address_reg", [False, True], ids=["addr", "addr_reg"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0]}x{g[1]}")
def test_icarus(geometry, address_reg, target, seed, tmp_path):
    inputs, read_word, unsampled = _stimulus(seed, *geometry, address_reg)
    if target == "ecp5":
        dut = Ecp5Bram(geometry[0], geometry[1], address_reg=address_reg)
    else:
        dut = GenericBram(*geometry, address_reg=address_reg)
    got = run_icarus(dut, inputs, ["r_data"], tmp_path,
                     sources=[MODELS / "DP16KD.v"] if target == "ecp5" else ())["r_data"]
    _check(got, inputs, read_word, unsampled, 2 + address_reg,
           f"{target} {geometry} {seed_msg(seed)}")


def test_geometry():
    assert dp16kd_geometry(16, 64) == (18, 1)
    assert dp16kd_geometry(40, 1000) == (18, 3)
    assert dp16kd_geometry(64, 1024) == (18, 4)
    assert dp16kd_geometry(9, 2048) == (9, 1)
    assert dp16kd_geometry(5, 3000) == (4, 2)
    assert dp16kd_geometry(1, 16384) == (1, 1)
    with pytest.raises(ValueError, match="Ecp5Bram: depth must be at most 16384 words"):
        Ecp5Bram(8, 16385)
