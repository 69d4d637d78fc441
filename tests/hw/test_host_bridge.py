# amaranth: UnusedElaboratable=no
"""HostBridge (hw/link/host_bridge.py) and the host driver's transports in pysim.

The device is the demo board design (boards/demo_device.py: Requantize on registers + a OnChipMemory
scratch memory) behind :class:`boards.system.BridgedSystem` (byte streams, no UART: hw/link/uart.py
has its own tests). The host side is the real driver code (host/driver.py) over
:class:`host.sim_transport.PysimByteLink`, with random valid gaps on ``rx`` and random
back-pressure on ``tx``. Checked against models that do not use the code under test:

- IDENT reports the config's beat / burst / register sizes;
- random register writes / reads against a dict model;
- memory writes and reads of random length and beat-aligned address against a bytearray model
  (bursts split by the driver, several write bursts pipelined before their acknowledgements);
- the demo's Requantize through registers, bit-exact vs ``sim.fixed.requantize``;
- protocol errors: an unknown command answers ``?``, a burst of 0 or > max beats answers ``E``
  with no data phase, a write outside the memory answers ``E``; the bridge then still works;
- the same driver over :class:`host.sim_transport.PysimTransport` (the device's own ports,
  random gaps on the memory streams) gives the same answers.
"""
from __future__ import annotations

import pytest

from boards.demo_device import DemoDevice, demo_registers
from host.driver import BridgeTransport, DemoDriver, LinkError
from host.sim_transport import PysimByteLink, PysimRunner, PysimTransport
from boards.system import BridgedSystem
from hw.link.host_bridge import CMD, NAK, UNKNOWN, HostBridge, bridge_csr_signature, ident_bytes
from sim.config import get_config, with_changes
from sim.fixed import requantize
from tests.harness.seeds import rng, seed  # noqa: F401  (pytest fixtures)
from tests.hw.test_requantize import random_accumulator_beats


def _configs():
    tiny = get_config("tiny")
    # a 16-byte beat and short bursts: other field sizes in the protocol
    wide = with_changes(tiny, name="tiny-w16", hw=dict(mem_bytes_per_cycle=16, mem_max_burst=4))
    return [pytest.param(tiny, id="tiny"), pytest.param(wide, id="beat16-burst4")]


def _bridge_setup(cfg, rng, valid_prob=0.6, ready_prob=0.5):
    dev = DemoDevice(cfg)
    dut = BridgedSystem(dev, cfg)
    runner = PysimRunner(dut)
    link = PysimByteLink(runner, dut.rx, dut.tx, rng=rng, valid_prob=valid_prob,
                         ready_prob=ready_prob, timeout_cycles=5000)
    return dev, runner, link


@pytest.mark.parametrize("cfg", _configs())
def test_bridge_registers_memory_requantize(cfg, rng, seed):
    dev, runner, link = _bridge_setup(cfg, rng)
    t = BridgeTransport(link, window=3)
    assert (t.reg_bytes, t.beat_bytes, t.max_burst) == (4, cfg.hw.mem_bytes_per_cycle,
                                                        cfg.hw.mem_max_burst)
    drv = DemoDriver(t, cfg)
    regs = demo_registers(cfg, drv.lanes)

    # registers: the ACC array is read/write
    model = {}
    for _ in range(30):
        a = rng.randrange(regs["ACC"], regs["OUT"])
        if rng.random() < 0.6 or a not in model:
            model[a] = rng.getrandbits(32)
            t.write_reg(a, model[a])
        else:
            assert t.read_reg(a) == model[a], f"register {a} (seed={seed})"

    # memory: random aligned transfers against a bytearray
    W = t.beat_bytes
    size = dev.scratch_bytes
    mem = bytearray(size)
    for _ in range(6):
        beats = rng.randrange(1, 3 * cfg.hw.mem_max_burst + 2)
        addr = W * rng.randrange(size // W - beats + 1)
        data = bytes(rng.randrange(256) for _ in range(beats * W))
        t.write_mem(addr, data)
        mem[addr:addr + len(data)] = data
        n = rng.randrange(1, beats * W + 1)
        a2 = W * rng.randrange(size // W - (-(-n // W)) + 1)
        assert t.read_mem(a2, n) == bytes(mem[a2:a2 + n]), f"read {a2:#x}+{n} (seed={seed})"

    # Requantize through registers, vs the golden function
    for beat in random_accumulator_beats(cfg, drv.lanes, rng, 8):
        want = [int(requantize(a, cfg.num.acc_frac, cfg.num.act)) for a in beat]
        assert drv.requantize(beat) == want, f"accumulators {beat} (seed={seed})"


def test_bridge_protocol_errors(rng, seed):
    cfg = get_config("tiny")
    dev, runner, link = _bridge_setup(cfg, rng)
    t = BridgeTransport(link)
    W, B = t.beat_bytes, t.max_burst
    link.write(bytes([0x7E]))
    assert link.read(1) == bytes([UNKNOWN])
    for beats in (0, B + 1):               # bad burst length: E, no data phase
        link.write(bytes([CMD["MEM_WRITE"]]) + (0).to_bytes(4, "little") + bytes([beats]))
        assert link.read(1) == bytes([NAK])
        link.write(bytes([CMD["MEM_READ"]]) + (0).to_bytes(4, "little") + bytes([beats]))
        assert link.read(1) == bytes([NAK])
    with pytest.raises(LinkError, match="NAK"):   # past the end of the scratch memory
        t.write_mem(dev.scratch_bytes, bytes(W))
    link.write(bytes([CMD["NOP"]] * 5))           # NOPs are ignored
    t.write_reg(demo_registers(cfg, 4)["ACC"], 1234)
    assert t.read_reg(demo_registers(cfg, 4)["ACC"]) == 1234
    assert t.read_reg(3) & 0b1000, "the scratch memory's error flag should be visible in STATUS"
    with pytest.raises(ValueError):
        t.read_mem(3, 4)                           # unaligned: refused by the driver


def test_ident_bytes():
    cfg = get_config("tiny")
    sig = bridge_csr_signature(6, 32)
    assert ident_bytes(cfg, sig) == b"EMB" + bytes([1, 4, cfg.hw.mem_bytes_per_cycle,
                                                     cfg.hw.mem_max_burst, 6])
    with pytest.raises(ValueError):
        HostBridge(cfg, bridge_csr_signature(6, 12))      # not whole bytes
    with pytest.raises(ValueError):
        HostBridge(with_changes(cfg, hw=dict(mem_max_burst=300)))


def test_port_transport_matches(rng, seed):
    """The device's own ports (no bridge), random gaps on the memory streams."""
    cfg = get_config("tiny")
    dev = DemoDevice(cfg)
    t = PysimTransport(PysimRunner(dev), dev, cfg, rng=rng, valid_prob=0.6, ready_prob=0.5)
    drv = DemoDriver(t, cfg)
    data = bytes(rng.randrange(256) for _ in range(333))
    t.write_mem(8, data)
    assert t.read_mem(8, len(data)) == data
    for beat in random_accumulator_beats(cfg, drv.lanes, rng, 8):
        want = [int(requantize(a, cfg.num.acc_frac, cfg.num.act)) for a in beat]
        assert drv.requantize(beat) == want, f"accumulators {beat} (seed={seed})"


def test_bridged_top_pysim(rng, seed):
    """The accelerator (TopWithMemory, tiny) behind the bridge, as the ECP5 board design wires
    it, without a whole frame: EdgeMoeDriver checks the top's ID and memory beat through the
    bridge; memory written and read back through the bridge (host_mode, host_wr / host_rd of the
    top's DRAM model) vs a bytearray; a one-descriptor END program started through the bridge
    ends done, a corrupted one ends with STATUS.error and ERROR = BAD_MAGIC (the device's
    ``done`` / ``error`` and CSRs wired). A whole frame through the bridge, on the Verilog, is
    tests/hw/test_host_bridge_verilator.py's test_bridge_frame_verilator (-m slow)."""
    from host.driver import EdgeMoeDriver
    from host.run import FrameError
    from hw.top.error_codes import ErrorCode
    from hw.top.top_with_memory import TopWithMemory
    from sim.memory_image import DESC_BYTES, Desc, HwOp, encode_desc

    cfg = get_config("tiny")
    W, size = cfg.hw.mem_bytes_per_cycle, 0x1000
    dut = BridgedSystem(TopWithMemory(cfg, size=size), cfg)
    runner = PysimRunner(dut)
    link = PysimByteLink(runner, dut.rx, dut.tx, rng=rng, valid_prob=0.6, ready_prob=0.5,
                         timeout_cycles=5000)
    drv = EdgeMoeDriver(BridgeTransport(link, window=3), cfg, poll_cycles=16)

    mem = bytearray(size)
    end = encode_desc(Desc(HwOp.END))
    bad = bytearray(end)
    bad[0] ^= 0x40                                    # wrong magic byte
    progs = {"end": 0, "bad": DESC_BYTES}
    drv.write_memory(0, end + bytes(bad))
    mem[:2 * DESC_BYTES] = end + bytes(bad)
    for _ in range(3):
        beats = rng.randrange(1, 2 * cfg.hw.mem_max_burst + 2)
        addr = W * rng.randrange(2 * DESC_BYTES // W, size // W - beats + 1)
        data = bytes(rng.randrange(256) for _ in range(beats * W))
        drv.write_memory(addr, data)
        mem[addr:addr + len(data)] = data
        n = rng.randrange(1, beats * W + 1)
        a2 = W * rng.randrange(size // W - (-(-n // W)) + 1)
        assert drv.read_memory(a2, n) == bytes(mem[a2:a2 + n]), f"read {a2:#x}+{n} (seed={seed})"

    regs = drv.regs
    drv.t.write_reg(regs["PROG_BASE"], progs["end"])
    drv.start(0)
    assert drv.wait_done(max_polls=50) & 0b111 == 0b010          # done, not busy, no error
    assert drv.t.read_reg(regs["DESCRIPTORS"]) == 1
    drv.t.write_reg(regs["PROG_BASE"], progs["bad"])
    drv.start(0)
    with pytest.raises(FrameError, match="BAD_MAGIC"):
        drv.wait_done(max_polls=50)
    assert drv.t.read_reg(regs["ERROR"]) & 0xFF == ErrorCode.BAD_MAGIC
    runner.close()
