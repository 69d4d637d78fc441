"""Memory-mapped transport for the host driver: Linux on a Zynq (or any SoC) with the AXI top.

:class:`MmioTransport` implements :class:`host.driver.Transport` for hw/top/axi_top.py behind a
processor's own buses: the AXI4-Lite register window is mapped into the process (register ``i``
at byte ``4 * i``, boards/regmap.py), and the frame's memory is a physically contiguous buffer
that the CPU writes and the accelerator's AXI4 master reads. ``set_host_mode`` does nothing (CPU
and accelerator reach the DDR independently); ``mem_base`` is the buffer's physical address, so
the driver programs physical addresses into the ``*_BASE`` registers.

Where the two mappings come from (helpers below; untested on hardware):

- registers: a UIO device (``/dev/uioN``, map 0: :func:`open_uio`), ``/dev/mem`` at the
  window's physical address (:func:`open_devmem`), or a ``pynq.MMIO``;
- memory: ``pynq.allocate`` (:func:`allocate_pynq`, when the PyPI ``pynq`` package is there),
  a u-dma-buf device (:func:`open_udmabuf`), or ``/dev/mem`` over a reserved carve-out.

Registers are written and read as single aligned 32-bit accesses (a ``memoryview`` cast to
``"I"``), never byte by byte: the AXI-Lite slave ignores WSTRB, so a byte write would clobber a
register. Both AXI and the Zynq's Arm cores are little-endian; a big-endian host is refused. A
buffer with ``flush()`` / ``invalidate()`` (pynq's cacheable buffers) is flushed after host
writes and invalidated before host reads.

    regs = open_uio("/dev/uio0")
    buf, phys = allocate_pynq(16 << 20)
    t = MmioTransport(regs, buf, phys, beat_bytes=cfg.hw.mem_bytes_per_cycle)
    drv = EdgeMoeDriver(t, cfg)
"""
from __future__ import annotations

import mmap
import os
import sys
import time
from pathlib import Path

from host.driver import Transport
from hw.link.axil_csr import AXIL_ADDR_BITS

__all__ = ["MmioTransport", "open_uio", "open_devmem", "open_udmabuf", "allocate_pynq"]

WINDOW_BYTES = 1 << AXIL_ADDR_BITS


class MmioTransport(Transport):
    """Registers in a mapped AXI-Lite window, memory in a physically contiguous buffer.

    Parameters
    ----------
    regs
        The register window: a writable buffer (``mmap``, ``memoryview``) of at least the
        registers used, or an object with pynq.MMIO's ``read(offset)`` / ``write(offset, value)``.
    mem
        The frame buffer: a writable buffer (``mmap``, a pynq buffer, a numpy array).
    mem_phys_base
        Physical (bus) address of ``mem[0]``, a multiple of ``beat_bytes``.
    beat_bytes
        The accelerator's memory beat (``cfg.hw.mem_bytes_per_cycle``; the driver checks it).
    poll_sleep
        Seconds :meth:`wait` sleeps between status polls.
    """

    reg_bytes = 4
    max_burst = 1 << 16           # no bus bursts here: a "burst" is one buffer copy

    def __init__(self, regs, mem, mem_phys_base: int, *, beat_bytes: int,
                 poll_sleep: float = 1e-4):
        if sys.byteorder != "little":
            raise RuntimeError("MmioTransport: the host must be little-endian like AXI, got "
                               f"{sys.byteorder}")
        if beat_bytes <= 0 or mem_phys_base < 0 or mem_phys_base % beat_bytes:
            raise ValueError(f"MmioTransport: mem_phys_base must be a multiple of the "
                             f"{beat_bytes}-byte beat, got {mem_phys_base:#x}")
        self.beat_bytes = beat_bytes
        self.mem_base = mem_phys_base
        self._mem_owner = mem
        self.mem = memoryview(mem).cast("B")
        self.mem_size = len(self.mem)
        try:
            view = memoryview(regs).cast("B")
        except TypeError:                   # not a buffer: a pynq.MMIO-like object
            self._mmio, self._words = regs, None
            self._reg_window = WINDOW_BYTES
        else:
            self._mmio = None
            self._reg_window = min(len(view), WINDOW_BYTES)
            self._words = view[:self._reg_window - self._reg_window % 4].cast("I")
        self.poll_sleep = poll_sleep

    def _reg_offset(self, addr: int) -> int:
        if not 0 <= 4 * addr <= self._reg_window - 4:
            raise ValueError(f"MmioTransport: register index must be in "
                             f"0..{self._reg_window // 4 - 1}, got {addr}")
        return 4 * addr

    def write_reg(self, addr: int, value: int) -> None:
        off = self._reg_offset(addr)
        value %= 1 << 32
        if self._mmio is not None:
            self._mmio.write(off, value)
        else:
            self._words[off // 4] = value

    def read_reg(self, addr: int) -> int:
        off = self._reg_offset(addr)
        if self._mmio is not None:
            return int(self._mmio.read(off)) & 0xFFFF_FFFF
        return self._words[off // 4]

    def set_host_mode(self, on: bool) -> None:
        pass

    def write_bursts(self, bursts: list[tuple[int, bytes]]) -> None:
        for addr, data in bursts:
            self._check_addr(addr, len(data))
            self.mem[addr:addr + len(data)] = data
        if hasattr(self._mem_owner, "flush"):
            self._mem_owner.flush()

    def read_burst(self, addr: int, beats: int) -> bytes:
        n = beats * self.beat_bytes
        self._check_addr(addr, n)
        if hasattr(self._mem_owner, "invalidate"):
            self._mem_owner.invalidate()
        return bytes(self.mem[addr:addr + n])

    def wait(self, cycles: int) -> None:
        time.sleep(self.poll_sleep)


# --------------------------------------------------------------------------------------------
# Where the mappings come from on Linux
# --------------------------------------------------------------------------------------------

def _map(path: str, size: int, offset: int = 0) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | os.O_SYNC)
    try:
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                         offset=offset)
    finally:
        os.close(fd)


def open_uio(dev: str = "/dev/uio0", map_index: int = 0) -> mmap.mmap:
    """The register window of a UIO device (``generic-uio`` on the AXI-Lite slave's node):
    map N is at mmap offset ``N * page size``; its size is in sysfs."""
    name = Path(dev).name
    size = int(Path(f"/sys/class/uio/{name}/maps/map{map_index}/size").read_text(), 0)
    return _map(dev, size, map_index * mmap.PAGESIZE)


def open_devmem(phys: int, size: int = WINDOW_BYTES) -> mmap.mmap:
    """``size`` bytes of ``/dev/mem`` at physical address ``phys`` (page aligned; root)."""
    if phys % mmap.PAGESIZE:
        raise ValueError(f"open_devmem: phys must be a multiple of the {mmap.PAGESIZE}-byte page, "
                         f"got {phys:#x}")
    return _map("/dev/mem", size, phys)


def open_udmabuf(name: str = "udmabuf0") -> tuple[mmap.mmap, int]:
    """A u-dma-buf buffer (``/dev/<name>``): (mapping, physical address)."""
    sysfs = Path(f"/sys/class/u-dma-buf/{name}")
    phys = int((sysfs / "phys_addr").read_text(), 0)
    size = int((sysfs / "size").read_text(), 0)
    return _map(f"/dev/{name}", size), phys


def allocate_pynq(nbytes: int):
    """A physically contiguous ``pynq.allocate`` buffer: (buffer, physical address)."""
    import pynq                 # optional: the PYNQ image's package, only on the board
    buf = pynq.allocate(shape=(nbytes,), dtype="u1")
    return buf, int(buf.physical_address)
