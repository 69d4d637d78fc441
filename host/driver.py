"""Host driver: load weights and an image, start a frame, poll done, read tokens and counters.

The driver talks to the accelerator through a :class:`Transport`: four primitive operations
(register write / read, memory write / read) plus the ``host_mode`` switch that hands the
memory to the host. Implementations:

- :class:`BridgeTransport`: the byte protocol of hw/link/host_bridge.py over any byte *link* with
  ``write(bytes)`` and ``read(n) -> bytes`` -- a pyserial ``Serial`` on a board
  (:func:`open_serial`), or a simulated link into the bridge's byte streams / UART pins
  (host/sim_transport.py);
- :class:`host.sim_transport.PysimTransport` / :class:`~host.sim_transport.CocotbTransport`:
  the device's own ports in a simulator (no bridge), for tests and the cycle model.

:class:`EdgeMoeDriver` is the frame sequence, written once over a transport (the register map
is hw/top/csr.py's ``REGISTERS``)::

    drv = EdgeMoeDriver(BridgeTransport(open_serial("/dev/ttyUSB0")), get_config("tiny-ecp5"))
    layout = drv.load_frame(qparams, image_q)          # weights + program + image -> memory
    result = drv.run_frame(task=0)                      # start, poll done, read back
    result.tokens, result.counters

Errors: :class:`LinkError` (no / garbled answer from the bridge, a NAK), and
:class:`host.run.FrameError` (the accelerator flagged an error or did not finish).
"""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hw.link.host_bridge import (ACK, CMD, IDENT_LEN, IDENT_MAGIC, MEM_ADDR_BYTES, NAK,
                            PROTOCOL_VERSION, REG_ADDR_BYTES)
from boards.regmap import REGMAP
from hw.top.error_codes import describe_error

__all__ = ["Transport", "BridgeTransport", "LinkError", "open_serial", "EdgeMoeDriver",
           "DriverResult", "DemoDriver", "DEFAULT_BAUD"]

DEFAULT_BAUD = 115200


class LinkError(OSError):
    """The host link failed: timeout, garbled answer or a NAK from the bridge (an I/O error:
    the CLI reports it in one line)."""


class Transport(abc.ABC):
    """Register and memory access to a device (see the module docstring).

    Attributes set by implementations: ``reg_bytes`` (register width, bytes), ``beat_bytes``
    (memory beat), ``max_burst`` (beats per memory command). Memory addresses must be multiples
    of ``beat_bytes``; lengths are padded to whole beats (reads return exactly ``nbytes``).

    ``mem_base``: the device (bus / physical) address of the transport's memory address 0; the
    driver adds it to every region address it programs into the ``*_BASE`` registers (a Linux
    host's DMA buffer sits at some physical address, not at 0). ``mem_size``: bytes of memory
    the transport reaches (``None``: unknown, not checked).
    """

    reg_bytes: int
    beat_bytes: int
    max_burst: int
    mem_base: int = 0
    mem_size: int | None = None

    @abc.abstractmethod
    def write_reg(self, addr: int, value: int) -> None: ...

    @abc.abstractmethod
    def read_reg(self, addr: int) -> int: ...

    @abc.abstractmethod
    def set_host_mode(self, on: bool) -> None: ...

    @abc.abstractmethod
    def write_bursts(self, bursts: list[tuple[int, bytes]]) -> None:
        """Write each ``(addr, data)`` burst (``len(data)`` = 1..max_burst whole beats)."""

    @abc.abstractmethod
    def read_burst(self, addr: int, beats: int) -> bytes: ...

    def wait(self, cycles: int) -> None:
        """Let the device run for about ``cycles`` cycles (between status polls)."""

    def close(self) -> None:
        pass

    # ---- derived ----
    def _check_addr(self, addr: int, nbytes: int = 0) -> None:
        if addr < 0 or addr % self.beat_bytes:
            raise ValueError(f"memory address {addr:#x} is not a multiple of the "
                             f"{self.beat_bytes}-byte beat")
        if self.mem_size is not None and addr + nbytes > self.mem_size:
            raise ValueError(f"memory access {addr:#x}..{addr + nbytes:#x} runs past the end of "
                             f"the {self.mem_size:#x}-byte memory")

    def write_mem(self, addr: int, data: bytes) -> None:
        W = self.beat_bytes
        data = bytes(data) + bytes(-len(data) % W)
        self._check_addr(addr, len(data))
        step = W * self.max_burst
        self.write_bursts([(addr + o, data[o:o + step]) for o in range(0, len(data), step)])

    def read_mem(self, addr: int, nbytes: int) -> bytes:
        W = self.beat_bytes
        beats = -(-nbytes // W)
        self._check_addr(addr, beats * W)
        out = bytearray()
        a = addr
        while beats:
            n = min(beats, self.max_burst)
            out += self.read_burst(a, n)
            a += n * W
            beats -= n
        return bytes(out[:nbytes])


# --------------------------------------------------------------------------------------------
# The bridge protocol over a byte link (pyserial or simulated)
# --------------------------------------------------------------------------------------------

def open_serial(port: str, baud: int = DEFAULT_BAUD, timeout: float = 2.0):
    """A pyserial ``Serial`` (8N1) for :class:`BridgeTransport` (pyserial imported lazily)."""
    try:
        import serial
    except ImportError as e:
        raise LinkError("the UART transport needs pyserial: pip install pyserial") from e
    return serial.Serial(port, baudrate=baud, bytesize=8, parity="N", stopbits=1,
                         timeout=timeout)


class BridgeTransport(Transport):
    """hw/link/host_bridge.py's protocol over ``link`` (``write(bytes)``, ``read(n) -> bytes``).

    ``window``: memory-write bursts sent before their acknowledgements are collected (the
    board's receive FIFO holds the bytes that arrive while the bridge answers).
    """

    def __init__(self, link, *, window: int = 4):
        self.link = link
        self.window = max(1, window)
        ident = self._transact(bytes([CMD["IDENT"]]), IDENT_LEN)
        if ident[:3] != IDENT_MAGIC or ident[3] != PROTOCOL_VERSION:
            raise LinkError(f"no edge-moe bridge on the link (IDENT answered {ident.hex()})")
        self.reg_bytes, self.beat_bytes, self.max_burst, self.reg_addr_bits = ident[4:8]

    def _read(self, n: int) -> bytes:
        got = bytes(self.link.read(n))
        if len(got) != n:
            raise LinkError(f"bridge answered {len(got)} of {n} bytes (timeout or no device)")
        return got

    def _transact(self, cmd: bytes, n_answer: int) -> bytes:
        self.link.write(cmd)
        return self._read(n_answer)

    def _ack(self, what: str) -> None:
        b = self._read(1)[0]
        if b != ACK:
            kind = "NAK" if b == NAK else f"unexpected byte {b:#04x}"
            raise LinkError(f"{what}: bridge answered {kind}")

    def write_reg(self, addr: int, value: int) -> None:
        if not 0 <= addr < (1 << self.reg_addr_bits):
            raise ValueError(f"register address {addr} out of range")
        self.link.write(bytes([CMD["REG_WRITE"]]) + addr.to_bytes(REG_ADDR_BYTES, "little")
                        + (value % (1 << 8 * self.reg_bytes)).to_bytes(self.reg_bytes, "little"))
        self._ack(f"register write {addr}")

    def read_reg(self, addr: int) -> int:
        if not 0 <= addr < (1 << self.reg_addr_bits):
            raise ValueError(f"register address {addr} out of range")
        raw = self._transact(bytes([CMD["REG_READ"]]) + addr.to_bytes(REG_ADDR_BYTES, "little"),
                             self.reg_bytes)
        return int.from_bytes(raw, "little")

    def set_host_mode(self, on: bool) -> None:
        self.link.write(bytes([CMD["HOST_MODE"], int(bool(on))]))
        self._ack("host mode")

    def _mem_cmd(self, op: str, addr: int, beats: int) -> bytes:
        self._check_addr(addr)
        if not 1 <= beats <= self.max_burst:
            raise ValueError(f"burst of {beats} beats (1..{self.max_burst})")
        return bytes([CMD[op]]) + addr.to_bytes(MEM_ADDR_BYTES, "little") + bytes([beats])

    def write_bursts(self, bursts):
        W = self.beat_bytes
        for i in range(0, len(bursts), self.window):
            chunk = bursts[i:i + self.window]
            self.link.write(b"".join(self._mem_cmd("MEM_WRITE", a, len(d) // W) + bytes(d)
                                     for a, d in chunk))
            for a, _ in chunk:
                self._ack(f"memory write at {a:#x}")

    def read_burst(self, addr: int, beats: int) -> bytes:
        return self._transact(self._mem_cmd("MEM_READ", addr, beats), beats * self.beat_bytes)

    def wait(self, cycles: int) -> None:
        if hasattr(self.link, "wait"):          # simulated links advance the simulation
            self.link.wait(cycles)
        else:
            time.sleep(0.001)

    def close(self) -> None:
        if hasattr(self.link, "close"):
            self.link.close()


# --------------------------------------------------------------------------------------------
# The frame sequence
# --------------------------------------------------------------------------------------------

@dataclass
class DriverResult:
    tokens: np.ndarray        # (tokens, dim) int64 in the activation format
    counters: dict            # host.run.counters_dict() of the CSR counters
    status: int

    @property
    def cycles(self) -> int:
        return self.counters["cycles"]


class EdgeMoeDriver:
    """One accelerator (hw/top) behind a transport; see the module docstring.

    ``poll_cycles``: device cycles between STATUS polls (simulated transports advance that
    many cycles; the UART transport sleeps 1 ms).
    """

    def __init__(self, transport: Transport, cfg, *, poll_cycles: int = 512):
        from hw.top.csr import CSR_ID, REGISTERS
        self.t = transport
        self.cfg = cfg
        self.regs = REGISTERS
        self.poll_cycles = poll_cycles
        self.layout = None
        self._ctrl = {f.name: f for f in REGMAP["CTRL"].fields}
        self._status = {f.name: f for f in REGMAP["STATUS"].fields}
        got = self.t.read_reg(REGISTERS["ID"])
        if got != CSR_ID:
            raise LinkError(f"device ID {got:#010x} is not the edge-moe top level ({CSR_ID:#010x})")
        if self.t.beat_bytes != cfg.hw.mem_bytes_per_cycle:
            raise LinkError(f"device memory beat {self.t.beat_bytes} B != config "
                            f"{cfg.hw.mem_bytes_per_cycle} B: wrong config for this bitstream?")

    # ---- memory ----
    def write_memory(self, addr: int, data: bytes) -> None:
        """Write ``data`` at ``addr`` while the host owns the memory."""
        self.t.set_host_mode(True)
        try:
            self.t.write_mem(addr, data)
        finally:
            self.t.set_host_mode(False)

    def read_memory(self, addr: int, nbytes: int) -> bytes:
        self.t.set_host_mode(True)
        try:
            return self.t.read_mem(addr, nbytes)
        finally:
            self.t.set_host_mode(False)

    def regions(self, layout) -> dict[str, tuple[int, int]]:
        """The frame's memory regions, base register -> (driver address, bytes)."""
        m, act = self.cfg.model, self.cfg.num.act
        table = m.tokens * m.dim * act.storage_bytes          # the embed-pos table
        image = m.image_channels * m.image_height * m.image_width * act.storage_bytes
        return {"WEIGHT_BASE": (layout.weights, layout.weight_bytes),
                "PROG_BASE": (layout.program, layout.embed_pos + table),
                "IMAGE_BASE": (layout.image, image),
                "OUT_BASE": (layout.out, layout.out_bytes)}

    def base_registers(self, layout) -> dict[str, int]:
        """The ``*_BASE`` register values: device addresses (the transport's ``mem_base`` plus
        each region's driver address)."""
        return {name: self.t.mem_base + addr for name, (addr, _) in self.regions(layout).items()}

    def check_layout(self, layout, image_len: int | None = None) -> None:
        """Raise ValueError naming the culprit unless every region starts on a bus beat (device
        address), lies inside the image and the transport's memory, and no two overlap."""
        W = self.t.beat_bytes
        if self.t.mem_base % W:
            raise ValueError(f"EdgeMoeDriver: the transport's mem_base must be a multiple of the "
                             f"{W}-byte beat, got {self.t.mem_base:#x}")
        regions = sorted(self.regions(layout).items(), key=lambda kv: kv[1][0])
        ends = []
        if image_len is not None:
            ends.append(("the memory image", layout.weights + image_len))
        if self.t.mem_size is not None:
            ends.append(("the transport's memory", self.t.mem_size))
        for name, (addr, n) in regions:
            if addr < 0 or (self.t.mem_base + addr) % W:
                raise ValueError(f"EdgeMoeDriver: {name} must be a multiple of the {W}-byte "
                                 f"beat, got {self.t.mem_base + addr:#x}")
            for what, end in ends:
                if addr + n > end:
                    raise ValueError(f"EdgeMoeDriver: {name} region {addr:#x}..{addr + n:#x} "
                                     f"runs past the end of {what} ({end:#x})")
        for (a, (sa, na)), (b, (sb, _)) in zip(regions, regions[1:]):
            if sa + na > sb:
                raise ValueError(f"EdgeMoeDriver: {a} region {sa:#x}..{sa + na:#x} overlaps "
                                 f"{b} at {sb:#x}")

    def load_image_bytes(self, mem: bytes, layout) -> None:
        """Load a whole memory image (sim.memory_image.build_memory_image, which starts at
        ``layout.weights``) and remember its layout; writes the base registers. The layout is
        checked (:meth:`check_layout`) before anything is written."""
        self.check_layout(layout, len(mem))
        self.write_memory(layout.weights, mem)
        self.layout = layout
        for name, val in self.base_registers(layout).items():
            self.t.write_reg(self.regs[name], val)

    def load_frame(self, qparams: dict, image_q, task: int = 0):
        """Weights + program + image (quantized) into memory; returns the MemoryLayout."""
        from sim.memory_image import build_memory_image
        self._check_task(task)
        mem, layout = build_memory_image(self.cfg, qparams, image_q, task)
        self.load_image_bytes(mem, layout)
        return layout

    def load_image(self, image_q) -> None:
        """Replace only the input image of an already loaded frame (weights stay)."""
        from sim.memory_image import image_bytes
        if self.layout is None:
            raise RuntimeError("load_frame() first")
        self.write_memory(self.layout.image, image_bytes(self.cfg, image_q))

    # ---- control ----
    def start(self, task: int) -> None:
        self._check_task(task)
        self.t.write_reg(self.regs["CTRL"], self._ctrl["CLEAR"].mask)   # drop done / error
        self.t.write_reg(self.regs["TASK"], task)
        self.t.write_reg(self.regs["CTRL"], self._ctrl["START"].mask)

    def _check_task(self, task: int) -> None:
        n = self.cfg.model.tasks
        if not (isinstance(task, (int, np.integer)) and 0 <= task < n):
            raise ValueError(f"EdgeMoeDriver: task must be in 0..{n - 1}, got {task!r}")

    def status(self) -> int:
        return self.t.read_reg(self.regs["STATUS"])

    def wait_done(self, *, max_polls: int = 100_000,
                  progress: Callable[[int], None] | None = None) -> int:
        """Poll STATUS until done or error; returns STATUS. Raises FrameError on error or when
        ``max_polls`` polls did not see done."""
        from host.run import FrameError
        for i in range(max_polls):
            st = self.status()
            if st & self._status["ERROR"].mask:
                err = self.t.read_reg(self.regs["ERROR"])
                raise FrameError(f"accelerator error {describe_error(err)}")
            if st & self._status["DONE"].mask:
                return st
            if progress is not None:
                progress(i)
            self.t.wait(self.poll_cycles)
        raise FrameError(f"frame not done after {max_polls} status polls")

    def read_counters(self) -> dict:
        from hw.top.csr import COUNTERS
        from host.run import counters_dict
        return counters_dict({n: self.t.read_reg(self.regs[n]) for n in COUNTERS})

    def read_output(self) -> np.ndarray:
        lay = self.layout
        raw = self.read_memory(lay.out, lay.out_bytes)
        m = self.cfg.model
        return np.frombuffer(raw, dtype=self.cfg.num.act.numpy_dtype).astype(np.int64).reshape(
            m.tokens, m.dim)

    def run_frame(self, task: int = 0, **wait_kw) -> DriverResult:
        """Start a frame on the loaded memory, wait, read the output tokens and the counters."""
        if self.layout is None:
            raise RuntimeError("load_frame() first")
        self.start(task)
        st = self.wait_done(**wait_kw)
        return DriverResult(self.read_output(), self.read_counters(), st)


class DemoDriver:
    """The demo board design (boards/demo_device.py): requantize accumulators on the device.

    ``requantize(accs)`` writes ``lanes`` accumulators, starts, polls done and returns the
    ``lanes`` activations; ``scratch_*`` use the scratch memory.
    """

    def __init__(self, transport: Transport, cfg, *, poll_cycles: int = 4):
        from boards.demo_device import DEMO_ID, acc_words, demo_registers
        self.t = transport
        self.cfg = cfg
        self.poll_cycles = poll_cycles
        got = self.t.read_reg(0)
        if got != DEMO_ID:
            raise LinkError(f"device ID {got:#010x} is not the demo design ({DEMO_ID:#010x})")
        self.lanes = self.t.read_reg(4)
        self.regs = demo_registers(cfg, self.lanes)
        self.words = acc_words(cfg)

    def requantize(self, accs) -> list[int]:
        accs = [int(a) for a in accs]
        if len(accs) != self.lanes:
            raise ValueError(f"{len(accs)} accumulators for {self.lanes} lanes")
        bits = 8 * self.t.reg_bytes
        for lane, a in enumerate(accs):
            u = a % (1 << (bits * self.words))
            for w in range(self.words):
                self.t.write_reg(self.regs["ACC"] + lane * self.words + w,
                                 (u >> (bits * w)) & ((1 << bits) - 1))
        self.t.write_reg(self.regs["CTRL"], 1)
        for _ in range(10_000):
            if self.t.read_reg(self.regs["STATUS"]) & 2:
                break
            self.t.wait(self.poll_cycles)
        else:
            raise LinkError("demo device never finished")
        out = []
        for lane in range(self.lanes):
            v = self.t.read_reg(self.regs["OUT"] + lane)
            out.append(v - (1 << bits) if v >> (bits - 1) else v)
        return out

    def scratch_write(self, addr: int, data: bytes) -> None:
        self.t.write_mem(addr, data)

    def scratch_read(self, addr: int, nbytes: int) -> bytes:
        return self.t.read_mem(addr, nbytes)
