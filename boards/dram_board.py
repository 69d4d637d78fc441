"""DramBoardTop: the board-level wrapper of a DRAM build (accelerator + LiteDRAM on the board's DDR3).

``DramBoardTop(board, cfg, accelerator=True)`` for the board's amaranth-boards platform:

- the LiteDRAM core (non-simulation, boards/litedram_core.py) with its pads wired straight to the
  raw pins of the board's DRAM resource, as the board entry's ``dram_pads`` says (the core has
  its own I/O cells: ODDRX2F / IDDRX2DQA / TSHX2DQA / DQSBUFM and bidirectional TRELLIS_IO, so
  no Amaranth buffer sits in between); the core's Verilog is added to the build;
- clocks: the platform's default clock (the ECPIX-5's 100 MHz oscillator) is the design's
  ``sync`` clock and goes only to the core's ``clk`` / ``rst``; the core's own PLL and
  clock tree make the DDR3 clocks and the 50 MHz user clock, on which the accelerator, the
  switch, the host link and the UART run (:class:`~boards.dram_bridge.BridgedDramSystem`; the
  UART divisor is for the core's ``sys_clk_freq``). No PLL of ours (boards/ecp5_pll.py) and no
  clock-domain crossing;
- the UART pins through the host link (bridge registers below 0x8000: the accelerator, from
  0x8000: LiteDRAM's CSRs, for host/litedram_init.py), and status LEDs: ``busy`` = DRAM not
  initialised yet, ``done`` = the accelerator's ``irq``, ``error`` = ``init_error`` or a
  link / bus error, ``alive`` = a heartbeat of the oscillator.

``accelerator=False`` builds the DRAM bring-up design (no accelerator: init, memory test and
loading through the UART only). Errors (one line, ``ValueError``): a board without a DRAM
resource or pad map, a pad map naming a port the core does not have.
"""
from __future__ import annotations

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io

from sim.config import Config

from hw.link.uart import uart_divisor

from boards.boards import BOARDS, Board
from boards.dram_bridge import BridgedDramSystem
from boards.dram_system import check_beat
from boards.litedram_core import core_config

__all__ = ["DramBoardTop", "dram_pads", "user_clock_hz", "check_dram", "dram_summary"]


def user_clock_hz(board: Board, cfg: Config | None = None) -> float:
    """The LiteDRAM core's user clock on ``board`` (its config's ``sys_clk_freq``; ``cfg``
    default: the board's preset)."""
    return float(core_config(board.name, cfg)["sys_clk_freq"])


def dram_summary(board: Board, cfg: Config) -> dict:
    """What report.json says about a DRAM build: the chip, the PHY, the clocks."""
    c = core_config(board.name, cfg)
    rate = {"ECP5DDRPHY": 2, "GENSDRPHY": 1}[c["sdram_phy"]]   # DRAM clocks per user clock
    return {"module": c["sdram_module"], "memtype": c["memtype"], "phy": c["sdram_phy"],
            "data_bits": 8 * c["sdram_module_nb"], "user_clock_mhz": c["sys_clk_freq"] / 1e6,
            "dram_clock_mhz": rate * c["sys_clk_freq"] / 1e6,
            "axi_data_bits": c["user_ports"]["axi_0"]["data_width"]}


def _check_pin_map(board: Board) -> None:
    if not board.dram_resource or not board.dram_pads:
        raise ValueError(f"board {board.name} has no DRAM pin map (dram_resource / dram_pads "
                         f"in boards/boards.py); boards with one: "
                         f"{', '.join(n for n, b in BOARDS.items() if b.dram_pads)}")


def check_dram(board: Board, cfg: Config, *, accelerator: bool = True) -> None:
    """The checks a DRAM build needs before any tool runs: the board has a DRAM pin map and a
    LiteDRAM config, and (with the accelerator) the config's memory beat divides the core's AXI
    port by a power of two (the Axi4Master widens it; ConfigError otherwise, naming both
    widths)."""
    _check_pin_map(board)
    if accelerator:
        check_beat(board.name, cfg, f"DRAM build for {board.name}")


def _raw(port, path: str):
    """The raw I/O port at ``path`` ("dq", "clk.p") of a ``dir="-"`` resource."""
    obj = port
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj.io if hasattr(obj, "io") else obj


def dram_pads(board: Board, platform) -> dict:
    """``{core port: (kind, raw io port)}`` for DramSystem's ``pads``: requests the board's
    DRAM resource from ``platform``."""
    _check_pin_map(board)
    res = platform.request(board.dram_resource, 0, dir="-")
    return {core: (kind, _raw(res, path)) for core, path, kind in board.dram_pads}


class DramBoardTop(Elaboratable):
    """Board-level wrapper of a DRAM build (see the module docstring)."""

    def __init__(self, board: Board, cfg: Config, *, accelerator: bool = True):
        self.board, self.cfg, self.accelerator = board, cfg, accelerator
        # UART bit time in cycles of the clock the link runs on: the core's user clock
        self.divisor = uart_divisor(user_clock_hz(board, cfg), board.baud)

    def elaborate(self, platform):
        m = Module()
        b = self.board
        # sync = the oscillator, no reset (the core counts its own 65,535-cycle power-on reset
        # and resets the user clock domain from its PLL lock)
        m.domains.sync = cd = ClockDomain("sync")
        m.submodules.clk_buf = clk_buf = io.Buffer(
            "i", platform.request(platform.default_clk, dir="-"))
        m.d.comb += [cd.clk.eq(clk_buf.i), cd.rst.eq(0)]
        system = BridgedDramSystem(self.cfg, b.name, pads=dram_pads(b, platform),
                                   divisor=self.divisor,
                                   accelerator=self.accelerator)
        platform.add_file(system.core.name, system.core.read_text())
        m.submodules.system = system
        uart = platform.request(*b.uart, dir="-")
        m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [system.uart_rx.eq(rx_buf.i), tx_buf.o.eq(system.uart_tx)]
        beat = Signal(max(1, int(platform.default_clk_frequency).bit_length() - 1))
        m.d.sync += beat.eq(beat + 1)
        roles = {"busy": ~system.init_done, "done": system.irq,
                 "error": system.init_error | system.link_error | system.bus_error,
                 "alive": beat[-1]}
        requested = {}
        for role, led in b.leds.items():
            key = (led.name, led.number)
            if key not in requested:
                requested[key] = platform.request(led.name, led.number, dir="-")
            pin = getattr(requested[key], led.sub) if led.sub else requested[key]
            m.submodules[f"led_{role}"] = buf = io.Buffer("o", pin)
            m.d.comb += buf.o.eq(roles[role])
        return m
