"""The host side of a frame on a DRAM board (``edge-moe demo --port DEV --board B --dram``).

A bitstream from ``edge-moe build --board B --config C --dram`` (boards/dram_board.py) keeps the
frame memory in the board's DRAM behind a LiteDRAM core with no CPU, so before a frame the host
must bring the DRAM up itself. The sequence, over host/driver.py's ``BridgeTransport`` (the
UART on a board; a simulated byte link in tests/cocotb/test_dram_demo_tb.py):

1. :func:`check_dram_frame` (before the port is opened): the board has a DRAM pin map and a
   LiteDRAM config, the config's memory beat fits the core's AXI port (what the board top
   needs, boards/dram_board.check_dram), and the frame's memory image (weights, program,
   input, output: sim.memory_image) fits the DRAM (boards/litedram_core.dram_bytes) and the
   accelerator's address range (``hw.mem_addr_bits``);
2. :func:`open_dram_board`: :class:`host.driver.EdgeMoeDriver` on the transport (its ID and
   memory-beat checks catch a wrong bitstream before the long init), then
   host/litedram_init.init_board_dram (init sequence, read leveling, memory test, one line per
   step) through the bridge's LiteDRAM CSR window; the transport's ``mem_size`` becomes the
   DRAM's size, so every region the driver writes is checked against it;
3. :func:`run_frame_on_board`: the frame's memory image into DRAM in host mode (once: it is
   the same for every task), base registers, TASK, start, poll, tokens and counters back
   (EdgeMoeDriver.load_frame / run_frame).
"""
from __future__ import annotations

from typing import Callable

from sim.config import Config
from sim.memory_image import build_memory_image, memory_size

from boards.boards import Board
from boards.dram_board import check_dram
from boards.litedram_core import dram_bytes

from host.driver import DriverResult, EdgeMoeDriver, Transport
from host.litedram_init import init_board_dram

__all__ = ["check_dram_frame", "open_dram_board", "run_frame_on_board", "usable_dram_bytes"]


def usable_dram_bytes(board: Board, cfg: Config) -> int:
    """DRAM bytes the accelerator can address on ``board``: the DRAM's size, or less when the
    config's memory address is narrower."""
    return min(dram_bytes(board.name), 1 << cfg.hw.mem_addr_bits)


def check_dram_frame(board: Board, cfg: Config, qparams: dict, image_q, tasks) -> int:
    """Raise one clear error (ValueError / ConfigError) unless ``cfg``'s frames can run on the
    DRAM build of ``board`` (see the module docstring, step 1); returns the bytes a frame
    needs."""
    check_dram(board, cfg)
    need = 0
    for task in tasks:
        mem, layout = build_memory_image(cfg, qparams, image_q, task)
        need = max(need, memory_size(layout, cfg))
    have = usable_dram_bytes(board, cfg)
    if need > have:
        raise ValueError(
            f"the frame of config {cfg.name} needs {need:,} bytes of memory (weight image "
            f"{layout.weight_bytes:,} + program, input and output) but the DRAM of {board.name} "
            f"holds {have:,} bytes the accelerator can address")
    return need


def open_dram_board(transport: Transport, board: Board, cfg: Config, *, core=None,
                    memtest_beats: int = 256, poll_cycles: int = 512,
                    log: Callable[[str], None] = print) -> EdgeMoeDriver:
    """The driver of a DRAM board whose DRAM is initialised, calibrated and tested (module
    docstring, step 2). ``core``: the LiteDRAM core's Verilog path when it is not the board
    core generated for ``cfg`` (the simulation core in a test)."""
    driver = EdgeMoeDriver(transport, cfg, poll_cycles=poll_cycles)
    init_board_dram(transport, board.name, cfg, core=core, memtest_beats=memtest_beats,
                    log=log)
    transport.mem_size = usable_dram_bytes(board, cfg)
    return driver


def run_frame_on_board(driver: EdgeMoeDriver, qparams: dict, image_q, task: int,
                       **wait_kw) -> DriverResult:
    """One frame (module docstring, step 3). The memory image is the same for every task (the
    program is task-independent, TASK is a register, and a frame writes only its output
    region), so it goes over the link only for the driver's first frame: over the UART that is
    most of the time (the M3ViT image is ~37 MB)."""
    if driver.layout is None:
        driver.load_frame(qparams, image_q, task)
    return driver.run_frame(task, **wait_kw)
