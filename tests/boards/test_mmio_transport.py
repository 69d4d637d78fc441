"""host/mmio_transport.py and the driver's memory base, without hardware.

Anonymous ``mmap.mmap(-1, n)`` objects stand in for the AXI-Lite register window and the DMA
buffer:

- registers are single little-endian 32-bit words at byte ``4 * index``; an index outside the
  4 KiB window is refused; a pynq.MMIO-like ``read`` / ``write`` object works the same way;
- memory accesses land at their offset in the buffer; unaligned or past-the-end ones are refused;
- with the buffer at a nonzero physical address, the ``*_BASE`` registers are that address plus
  each region's offset -- checked against ``build_memory_image(..., base=phys)``, which lays the
  image out at that address by itself;
- a whole frame through :class:`EdgeMoeDriver` against a fake device that reads its operands
  through the physical addresses in the base registers (the golden image interpreter,
  :func:`sim.memory_image.run_image`) gives the golden model's tokens;
- bad input is refused before anything is written: unaligned base, overlapping regions, a region
  past the end of the buffer, a task id out of range.
"""
from __future__ import annotations

import dataclasses
import mmap

import numpy as np
import pytest

from host.driver import EdgeMoeDriver
from host.mmio_transport import MmioTransport
from hw.top.csr import CSR_ID, REGISTERS
from sim.memory_image import build_memory_image, run_image
from tests.system.frames import frame_case, tiny

PHYS = 0x3E00_0000          # a CMA-like physical address, 64-byte (region) aligned
BEAT = 8                    # tiny's memory beat


class FakeDevice:
    """pynq.MMIO-like register window of an accelerator whose memory is ``buf`` at ``phys``:
    a start runs the golden interpreter on the buffer through the base registers."""

    def __init__(self, cfg, buf, phys):
        self.cfg, self.buf, self.phys = cfg, buf, phys
        self.regs = {REGISTERS["ID"]: CSR_ID}
        self.layout = None              # the driver's layout, for the non-address fields
        self.accesses = []

    def read(self, offset, length=4):
        assert offset % 4 == 0 and length == 4
        return self.regs.get(offset // 4, 0)

    def write(self, offset, value):
        assert offset % 4 == 0
        self.accesses.append((offset, value))
        word = offset // 4
        if word == REGISTERS["CTRL"]:
            if value & 2:
                self.regs[REGISTERS["STATUS"]] = 0
            if value & 1:
                self._run()
        else:
            self.regs[word] = value

    def _run(self):
        r = {n: self.regs[REGISTERS[n]] - self.phys
             for n in ("WEIGHT_BASE", "PROG_BASE", "IMAGE_BASE", "OUT_BASE")}
        lay = dataclasses.replace(self.layout, weights=r["WEIGHT_BASE"], program=r["PROG_BASE"],
                                  image=r["IMAGE_BASE"], out=r["OUT_BASE"])
        tokens, _ = run_image(self.cfg, bytes(self.buf), lay, self.regs[REGISTERS["TASK"]])
        raw = np.asarray(tokens).astype(self.cfg.num.act.numpy_dtype).tobytes()
        self.buf[lay.out:lay.out + len(raw)] = raw
        self.regs[REGISTERS["STATUS"]] = 0b010


def test_registers_are_little_endian_words_at_4i():
    regs, buf = mmap.mmap(-1, 4096), mmap.mmap(-1, 4096)
    t = MmioTransport(regs, buf, PHYS, beat_bytes=BEAT)
    t.write_reg(5, 0x1122_3344)
    assert regs[20:24] == b"\x44\x33\x22\x11" and regs[16:20] == regs[24:28] == bytes(4)
    regs[0x3C:0x40] = b"\x01\x00\x00\x80"
    assert t.read_reg(15) == 0x8000_0001
    t.write_reg(1, -1)
    assert regs[4:8] == b"\xff" * 4
    for bad in (-1, 1024):
        with pytest.raises(ValueError, match=rf"register index must be in 0..1023, got {bad}"):
            t.read_reg(bad)
    small = MmioTransport(mmap.mmap(-1, 64), buf, PHYS, beat_bytes=BEAT)
    with pytest.raises(ValueError, match="0..15, got 16"):
        small.write_reg(16, 0)


def test_memory_offsets_and_bounds():
    buf = mmap.mmap(-1, 256)
    t = MmioTransport(mmap.mmap(-1, 4096), buf, PHYS, beat_bytes=BEAT)
    assert (t.mem_base, t.mem_size) == (PHYS, 256)
    t.write_mem(16, b"\x01\x02\x03")
    assert buf[16:24] == b"\x01\x02\x03" + bytes(5) and buf[:16] == bytes(16)
    buf[240:256] = bytes(range(16))
    assert t.read_mem(240, 16) == bytes(range(16)) and t.read_mem(248, 3) == bytes([8, 9, 10])
    with pytest.raises(ValueError, match="0xf4 is not a multiple of the 8-byte beat"):
        t.write_mem(0xF4, b"x")
    with pytest.raises(ValueError, match=r"0xf8\.\.0x108 runs past the end of the 0x100-byte"):
        t.write_mem(0xF8, bytes(9))
    with pytest.raises(ValueError, match="runs past the end"):
        t.read_mem(0xF8, 9)
    with pytest.raises(ValueError, match="mem_phys_base must be a multiple of the 8-byte beat, "
                                         "got 0x3e000004"):
        MmioTransport(mmap.mmap(-1, 4096), buf, PHYS + 4, beat_bytes=BEAT)


def _setup(nbytes=1 << 20):
    case = frame_case(tiny(), 3, task=1)
    cfg = case["cfg"]
    buf = mmap.mmap(-1, nbytes)
    dev = FakeDevice(cfg, buf, PHYS)
    drv = EdgeMoeDriver(MmioTransport(dev, buf, PHYS, beat_bytes=BEAT), cfg)
    return case, cfg, buf, dev, drv


def test_base_registers_are_physical():
    case, cfg, buf, dev, drv = _setup()
    mem0, lay0 = build_memory_image(cfg, case["qparams"], case["image_q"])
    _, lay_phys = build_memory_image(cfg, case["qparams"], case["image_q"], base=PHYS)
    drv.load_image_bytes(mem0, lay0)
    assert {n: dev.regs[REGISTERS[n]] for n in ("WEIGHT_BASE", "PROG_BASE", "IMAGE_BASE",
                                                 "OUT_BASE")} == \
        {"WEIGHT_BASE": lay_phys.weights, "PROG_BASE": lay_phys.program,
         "IMAGE_BASE": lay_phys.image, "OUT_BASE": lay_phys.out}
    assert lay_phys.weights == PHYS and lay_phys.out - PHYS == lay0.out
    assert buf[:len(mem0)] == mem0


def test_frame_through_mmio_matches_golden():
    case, cfg, buf, dev, drv = _setup()
    dev.layout = drv.load_frame(case["qparams"], case["image_q"], task=case["task"])
    result = drv.run_frame(task=case["task"])
    np.testing.assert_array_equal(result.tokens, case["want"])


def test_bad_input_refused_before_anything_runs():
    case, cfg, buf, dev, drv = _setup()
    mem, lay = build_memory_image(cfg, case["qparams"], case["image_q"])
    bad = {
        "OUT_BASE must be a multiple of the 8-byte beat, got 0x3e0": dataclasses.replace(
            lay, out=lay.out + 4),
        "IMAGE_BASE region 0x[0-9a-f]+..0x[0-9a-f]+ overlaps OUT_BASE": dataclasses.replace(
            lay, out=lay.image + 8),
        "PROG_BASE region .* overlaps IMAGE_BASE": dataclasses.replace(
            lay, program=lay.image - 8),
        "OUT_BASE region .* runs past the end of the memory image": dataclasses.replace(
            lay, out=lay.size),
    }
    for msg, layout in bad.items():
        with pytest.raises(ValueError, match=f"EdgeMoeDriver: {msg}"):
            drv.load_image_bytes(mem, layout)
    small = mmap.mmap(-1, lay.size - 64)
    drv_small = EdgeMoeDriver(MmioTransport(FakeDevice(cfg, small, PHYS), small, PHYS,
                                            beat_bytes=BEAT), cfg)
    with pytest.raises(ValueError, match="OUT_BASE region .* runs past the end of the "
                                         "transport's memory"):
        drv_small.load_image_bytes(mem, lay)
    for task in (2, -1, 0.5):
        with pytest.raises(ValueError, match=rf"EdgeMoeDriver: task must be in 0..1, got {task}"):
            drv.start(task)
        with pytest.raises(ValueError, match=rf"task must be in 0..1, got {task}"):
            drv.load_frame(case["qparams"], case["image_q"], task=task)
    assert dev.accesses == [] and buf[:64] == bytes(64), "nothing may be written on bad input"
    drv.t.mem_base = PHYS + 4
    with pytest.raises(ValueError, match="mem_base must be a multiple of the 8-byte beat, "
                                         "got 0x3e000004"):
        drv.load_image_bytes(mem, lay)
