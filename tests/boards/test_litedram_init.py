"""host/litedram_init.py against LiteDRAM's own output and a model of the ECP5 PHY's CSRs.

- ``test_init_commands_match_generated_header``: the init sequence built from LiteDRAM's Python
  (``get_sdram_phy_init_sequence`` on the PHY / module settings of each generated core) equals,
  write for write, the ``init_sequence()`` LiteDRAM's generator wrote into that core's
  ``sdram_phy.h`` (parsed independently by ``boards.litedram_core.init_sequence``), for the
  ECPIX-5 and ULX3S board and simulation cores;
- ``test_settings_match_header``: the PHY figures the leveling uses equal the ``SDRAM_PHY_*``
  defines of the generated header;
- ``test_lfsr_matches_libbase``: the LFSR against a bit-serial Galois LFSR written from the
  polynomial;
- ``test_read_leveling_*``: :func:`read_leveling` on :class:`FakeEcp5Csr`, a model of the
  ECPIX-5 core's CSRs (csr.json of the real core) whose DRAM returns a lane's bytes intact
  only for chosen (bitslip, delay) pairs: the chosen bitslip / delay must be the middle of the
  widest window we planted, per lane; a lane with no window raises CalibrationError naming
  the lane and listing the scan.

All use the generated cores in the LiteDRAM cache (~1-3 s each on a cold cache).
"""
from __future__ import annotations

import random
import re

import pytest

from boards.litedram_core import generate, init_sequence
from host.litedram_init import (CalibrationError, CoreCsr, core_settings, dfii_constants,
                                init_commands, initialize, lfsr32, read_leveling)
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)

CORES = [("ecpix5-85f", False), ("ecpix5-85f", True), ("ulx3s-85f", False), ("ulx3s-85f", True)]


@pytest.mark.parametrize("board,sim", CORES)
def test_init_commands_match_generated_header(board, sim):
    core = generate(board, sim=sim, quiet=True)
    got = init_commands(core_settings(core))
    want = init_sequence(core)
    assert got == want


@pytest.mark.parametrize("board,sim", CORES)
def test_settings_match_header(board, sim):
    core = generate(board, sim=sim, quiet=True)
    header = (core.parent.parent / "software/include/generated/sdram_phy.h").read_text()
    defines = {k: int(v) for k, v in re.findall(r"#define SDRAM_PHY_(\w+) (\d+)\n", header)}
    phy = core_settings(core).phy
    assert (phy.nphases, phy.rdphase, phy.wrphase, phy.cl, phy.dfi_databits,
            phy.databits // phy.strobes) == (
        defines["PHASES"], defines["RDPHASE"], defines["WRPHASE"], defines["CL"],
        defines["DFI_DATABITS"], defines["DQ_DQS_RATIO"])
    assert phy.read_leveling == ("READ_LEVELING_CAPABLE" in header)
    if phy.read_leveling:
        assert (phy.delays, phy.bitslips) == (defines["DELAYS"], defines["BITSLIPS"])


def test_lfsr_matches_libbase():
    # x^32 + x^22 + x^2 + x + 1 in Galois form: taps 0x80200003 (libbase/lfsr.h)
    def serial(state):
        out = state & 1
        state >>= 1
        if out:
            for bit in (31, 21, 1, 0):
                state ^= 1 << bit
        return state
    s = t = 42
    for _ in range(1000):
        s, t = lfsr32(s), serial(t)
        assert s == t


class FakeEcp5Csr:
    """The ECPIX-5 core's CSRs (by the real csr.json) around a one-burst DRAM: a DFII write
    with WRDATA stores every phase's wrdata; a read with RDDATA returns it in the rddata
    registers, with byte lane m's bytes inverted unless (bitslip[m], delay[m]) is in
    ``good[m]``; the burst detector sees lane m when its delay is in ``dqs[m]``. The per-lane
    delay and bitslip follow ddrphy_dly_sel and the rst / inc strobes as in ECP5DDRPHY."""

    def __init__(self, core, good: dict, dqs: dict, delays=8, bitslips=4):
        import json
        self.map = json.loads((core.parent.parent / "csr.json").read_text())["csr_registers"]
        self.by_addr = {}
        for name, r in self.map.items():
            for i in range(r["size"]):
                self.by_addr[r["addr"] + 4 * i] = (name, i, r["size"])
        self.words = {}
        self.good, self.dqs = good, dqs
        self.delays, self.bitslips = delays, bitslips
        self.delay = {m: 0 for m in good}
        self.bitslip = {m: 0 for m in good}
        self.burst = None
        self.seen = 0
        self.cycles = 0

    def _value(self, name):
        r = self.map[name]
        v = 0
        for i in range(r["size"]):
            v = (v << 32) | self.words.get(r["addr"] + 4 * i, 0)
        return v

    def _set(self, name, value):
        r = self.map[name]
        for i in range(r["size"]):
            self.words[r["addr"] + 4 * i] = (value >> (32 * (r["size"] - 1 - i))) & 0xFFFFFFFF

    def wait(self, n):
        self.cycles += n

    def read(self, addr):
        name, _, _ = self.by_addr[addr]
        if name == "ddrphy_burstdet_seen":
            return self.seen
        return self.words.get(addr, 0)

    def write(self, addr, value):
        name, _, _ = self.by_addr[addr]
        self.words[addr] = value
        sel = self._value("ddrphy_dly_sel")
        lanes = [m for m in self.delay if sel >> m & 1]
        if name == "ddrphy_rdly_dq_rst":
            for m in lanes:
                self.delay[m] = 0
        elif name == "ddrphy_rdly_dq_inc":
            for m in lanes:
                self.delay[m] = (self.delay[m] + 1) % self.delays
        elif name == "ddrphy_rdly_dq_bitslip_rst":
            for m in lanes:
                self.bitslip[m] = 0
        elif name == "ddrphy_rdly_dq_bitslip":
            for m in lanes:
                self.bitslip[m] = (self.bitslip[m] + 1) % self.bitslips
        elif name == "ddrphy_burstdet_clr":
            self.seen = 0
        elif m_ := re.fullmatch(r"sdram_dfii_pi(\d)_command_issue", name):
            self._issue(int(m_[1]))

    def _issue(self, phase):
        c = dfii_constants()
        cmd = self._value(f"sdram_dfii_pi{phase}_command")
        if cmd & c["DFII_COMMAND_WRDATA"]:
            self.burst = [self._value(f"sdram_dfii_pi{p}_wrdata") for p in range(2)]
        if cmd & c["DFII_COMMAND_RDDATA"]:
            for p in range(2):
                data = bytearray(self.burst[p].to_bytes(8, "big"))
                for m in self.delay:
                    if (self.bitslip[m], self.delay[m]) not in self.good[m]:
                        for b in (3 - m, 7 - m):          # the lane's two bytes (big-endian)
                            data[b] ^= 0xA5
                self._set(f"sdram_dfii_pi{p}_rddata", int.from_bytes(data, "big"))
            for m in self.delay:
                if self.delay[m] in self.dqs[m]:
                    self.seen |= 1 << m


def _ecp5_core():
    return generate("ecpix5-85f", sim=False, quiet=True)


def test_read_leveling_picks_window_middle(seed):
    rng = random.Random(seed)
    core = _ecp5_core()
    settings = core_settings(core)
    good, dqs, want = {}, {}, {}
    for m in range(2):
        bitslip = rng.randrange(4)
        lo = rng.randrange(0, 5)
        hi = rng.randrange(lo + 1, 8)
        # a narrower window on another bitslip, and a lone passing delay (no two in a row)
        other = (bitslip + 1 + rng.randrange(3)) % 4
        good[m] = {(bitslip, d) for d in range(lo, hi + 1)} | {(other, 0)}
        dqs[m] = set(range(8))
        want[m] = (bitslip, (lo + hi) // 2, (lo, hi))
    fake = FakeEcp5Csr(core, good, dqs)
    csr = CoreCsr(core, fake.read, fake.write, fake.wait)
    lanes = read_leveling(csr, settings)
    for lane in lanes:
        b, d, window = want[lane.module]
        assert (lane.bitslip, lane.delay, lane.window) == (b, d, window), (lane, seed)
        # the PHY was left at the chosen values
        assert (fake.bitslip[lane.module], fake.delay[lane.module]) == (b, d), seed
    print(f"read leveling on the model: {csr.accesses} CSR accesses")


def test_read_leveling_needs_burst_detect(seed):
    """Data right but no DQS burst seen counts as an error (ECP5): the window shrinks to the
    delays where the burst detector fires."""
    core = _ecp5_core()
    good = {m: {(2, d) for d in range(8)} for m in range(2)}
    dqs = {0: set(range(2, 6)), 1: set(range(5, 8))}
    fake = FakeEcp5Csr(core, good, dqs)
    lanes = read_leveling(CoreCsr(core, fake.read, fake.write, fake.wait), core_settings(core))
    assert [(ln.bitslip, ln.window, ln.delay) for ln in lanes] == [(2, (2, 5), 3),
                                                                   (2, (5, 7), 6)], seed


def test_read_leveling_failure_names_lane():
    core = _ecp5_core()
    good = {0: {(1, d) for d in range(3, 6)}, 1: {(0, 4)}}
    fake = FakeEcp5Csr(core, good, {m: set(range(8)) for m in range(2)})
    with pytest.raises(CalibrationError, match=r"read leveling failed on byte lane 1: no two "
                                               r"passing read delays in a row at any bitslip "
                                               r"\(tried bitslips 0\.\.3 x delays 0\.\.7.*"
                                               r"bitslip 0: \d+ \d+ \d+ \d+ 0 \d+"):
        read_leveling(CoreCsr(core, fake.read, fake.write, fake.wait), core_settings(core))


def test_initialize_on_model():
    """The whole sdram_init() on the model: init sequence, leveling, hardware control,
    init_done; a failing memtest sets init_error and raises."""
    core = _ecp5_core()
    c = dfii_constants()
    good = {m: {(1, d) for d in range(2, 7)} for m in range(2)}
    fake = FakeEcp5Csr(core, good, {m: set(range(8)) for m in range(2)})
    csr = CoreCsr(core, fake.read, fake.write, fake.wait)
    res = initialize(csr, core)
    assert [(ln.bitslip, ln.delay) for ln in res.lanes] == [(1, 4), (1, 4)]
    assert fake._value("sdram_dfii_control") == c["DFII_CONTROL_SEL"]
    assert fake._value("ddrctrl_init_done") == 1 and fake._value("ddrctrl_init_error") == 0
    assert fake.cycles >= 60_000          # the init sequence's reset and CKE pauses
    fake2 = FakeEcp5Csr(core, good, {m: set(range(8)) for m in range(2)})
    with pytest.raises(CalibrationError, match="memory test after init failed: word 3 wrong"):
        initialize(CoreCsr(core, fake2.read, fake2.write, fake2.wait), core,
                   memtest=lambda: "word 3 wrong")
    assert fake2._value("ddrctrl_init_error") == 1
