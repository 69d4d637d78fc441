"""ChunkReader (2-D strided read DMA) and ReadArbiter on the DRAM model, pysim.

Three readers share one memory port: a strided weight-tile reader (multi-beat chunks), a
contiguous reader and a one-beat strided reader, with random back-pressure on every output;
every chunk must equal the bytes of the image at its address, in order.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from hw.mem.onchip_memory import OnChipMemory
from hw.top.chunk_reader import ChunkReader
from hw.mem.read_arbiter import ReadArbiter
from sim.config import get_config, with_changes
from tests.harness import StreamDriver, StreamMonitor, run_pysim
from tests.harness.seeds import seed  # noqa: F401


def _expected(img: bytes, cmd: dict, U: int) -> list[int]:
    out = []
    for o in range(cmd["outer"]):
        for i in range(cmd["inner"]):
            a = cmd["addr"] + o * cmd["outer_stride"] + i * cmd["inner_stride"]
            out.append(int.from_bytes(img[a:a + U], "little"))
    return out


class _Rig(wiring.Component):
    def __init__(self, cfg, image, units, data_reg=False):
        self.cfg, self.image, self.units, self.data_reg = cfg, image, units, data_reg
        self.readers = [ChunkReader(cfg, u) for u in units]
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dram = dram = OnChipMemory(self.cfg, self.image)
        m.submodules.arb = arb = ReadArbiter(self.cfg, len(self.readers),
                                             data_reg=self.data_reg)
        for i, r in enumerate(self.readers):
            m.submodules[f"r{i}"] = r
            wiring.connect(m, r.bus, arb.masters[i])
        wiring.connect(m, arb.mem, dram.rd)
        return m


@pytest.mark.parametrize("cfgname,latency,data_reg", [
    ("tiny", 8, 0), ("tiny", 2, 0), ("m3vit", 20, 0),
    ("tiny", 8, 1), ("tiny", 2, 1),             # data_reg: read data through registers
    ("tiny", 8, 2), ("m3vit", 20, 2)])
def test_chunk_readers_share_memory(cfgname, latency, data_reg, seed):
    base = get_config("tiny" if cfgname == "tiny" else "m3vit-tiny-cityscapes")
    cfg = with_changes(base, hw=dict(mem_latency=latency, mem_max_burst=4))
    W = cfg.hw.mem_bytes_per_cycle
    rng = random.Random(seed)
    image = bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8))
    units = [2 * W, W, 4 * W]
    cmds = [
        # weight-tile style: 3 column tiles of 2W bytes, 7 rows of 6W bytes
        [dict(addr=64, outer=3, outer_stride=2 * W, inner=7, inner_stride=6 * W),
         dict(addr=0, outer=1, outer_stride=0, inner=5, inner_stride=2 * W)],
        # contiguous vector, then a strided one-beat read
        [dict(addr=1024, outer=2, outer_stride=40 * W, inner=13, inner_stride=W),
         dict(addr=8 * W, outer=4, outer_stride=W, inner=3, inner_stride=5 * W)],
        [dict(addr=2048, outer=1, outer_stride=0, inner=9, inner_stride=4 * W)],
    ]
    dut = _Rig(cfg, image, units, data_reg)
    tbs = []
    for i, (r, cs, u) in enumerate(zip(dut.readers, cmds, units)):
        want = [c for cmd in cs for c in _expected(image, cmd, u)]
        tbs.append(StreamDriver(r.cmd, cs, rng=random.Random(seed + 10 * i), valid_prob=0.5))
        mon = StreamMonitor(r.o, len(want), rng=random.Random(seed + 10 * i + 1), ready_prob=0.5)
        mon.want = want
        tbs.append(mon)
    run_pysim(dut, tbs, deadline_cycles=20000)
    for t in tbs:
        if isinstance(t, StreamMonitor):
            assert t.received == t.want, f"seed={seed}"
