"""Board entries: everything that differs between boards is data here, never accelerator code.

A :class:`Board` names an amaranth-boards platform class, the device's resources (for the fit
check before any tool runs), the default accelerator config, the UART resource and baud rate,
and the status LEDs. Adding a board = adding one entry to :data:`BOARDS`.

Device figures (Lattice ECP5 family data sheet, FPGA-DS-02012, table 1.1; the same numbers
nextpnr-ecp5 reports as ``TRELLIS_COMB`` / ``TRELLIS_FF`` / ``MULT18X18D`` / ``DP16KD``
capacity): LFE5U-85F and LFE5UM5G-85F: 83,640 LUT4 (= flip-flops), 156 18x18 multipliers,
208 DP16KD (18 Kbit) blocks; LFE5U-45F / LFE5UM-45F: 43,848 LUT4, 72 multipliers, 108 DP16KD;
LFE5U-25F: 24,288 LUT4, 28 multipliers, 56 DP16KD.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace

__all__ = ["Device", "Board", "BOARDS", "get_board", "DEVICES", "default_build_dir"]


@dataclass(frozen=True)
class Device:
    name: str
    family: str               # "ecp5" (synth_report family)
    luts: int                 # LUT4
    ffs: int
    dsps: int                 # MULT18X18D
    brams: int                # DP16KD
    bram_bits: int = 18 * 1024

    @property
    def total_bram_bits(self) -> int:
        return self.brams * self.bram_bits


DEVICES = {
    "LFE5U-85F": Device("LFE5U-85F", "ecp5", 83_640, 83_640, 156, 208),
    "LFE5UM5G-85F": Device("LFE5UM5G-85F", "ecp5", 83_640, 83_640, 156, 208),
    "LFE5UM-45F": Device("LFE5UM-45F", "ecp5", 43_848, 43_848, 72, 108),
    "LFE5U-45F": Device("LFE5U-45F", "ecp5", 43_848, 43_848, 72, 108),
    "LFE5U-25F": Device("LFE5U-25F", "ecp5", 24_288, 24_288, 28, 56),
}


@dataclass(frozen=True)
class Led:
    """A status LED: amaranth-boards resource ``name`` number ``number``, optional subsignal
    (e.g. ``"g"`` of an RGB LED)."""
    name: str
    number: int
    sub: str | None = None


@dataclass(frozen=True)
class Board:
    name: str
    platform: str                    # "module:Class" of an amaranth-boards platform
    device: str                      # key of DEVICES (checked against the platform class)
    config: str                      # default accelerator config preset
    baud: int = 115_200
    # the accelerator's clock: None runs it on the oscillator; a lower frequency is made by the
    # device's PLL (boards/ecp5_pll.py) when the oscillator is faster than the design's Fmax
    clock_hz: float | None = None
    uart: tuple[str, int] = ("uart", 0)
    leds: dict = field(default_factory=dict)   # role ("busy", "done", "error", "alive") -> Led
    # outputs to drive to a constant level, e.g. a transceiver enable: (resource, number, value)
    constant_outputs: tuple = ()
    notes: str = ""
    # peak bandwidth of the board's DRAM through its LiteDRAM core's user port (docs/boards.md,
    # "External memory"); None: no DRAM core for this board
    dram_bytes_per_s: float | None = None
    # the DRAM pins: amaranth-boards resource and (LiteDRAM core port, subsignal, Instance port
    # kind) for each pad the core drives (boards/dram_board.py; "clk.p": the P pin of a pair)
    dram_resource: str | None = None
    dram_pads: tuple = ()
    # the accelerator config the board's DRAM build is made for (`edge-moe build --dram
    # --config ...`): `edge-moe report` times that config at the DRAM build's clock
    dram_config: str | None = None
    # sustained full-rate reads through the accelerator's Axi4Master on the board's LiteDRAM
    # core, bytes per user-clock cycle, per memory beat in bytes (measured on LiteDRAM's
    # simulation core of the board: docs/boards.md, tests/cocotb/test_litedram_axi4_master_tb.py)
    dram_read_bytes_per_cycle: dict = field(default_factory=dict)

    def platform_class(self):
        mod, cls = self.platform.split(":")
        return getattr(importlib.import_module(mod), cls)

    @property
    def dev(self) -> Device:
        return DEVICES[self.device]


BOARDS = {
    # Radiona ULX3S with the 85k-LUT ECP5; 25 MHz oscillator (x2 by the PLL for the on-chip
    # accelerator), FTDI UART (the USB port "US1").
    "ulx3s-85f": Board(
        name="ulx3s-85f", platform="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        device="LFE5U-85F", config="tiny-ecp5", clock_hz=50e6,
        leds={"busy": Led("led", 0), "done": Led("led", 1), "error": Led("led", 2),
              "alive": Led("led", 7)},
        notes="FTDI UART on US1 (/dev/ttyUSB0), 25 MHz oscillator; the accelerator runs at "
              "50 MHz from the PLL (routed Fmax 66.3-91.8 MHz on this speed-6 part at a 100 MHz "
              "constraint over the seeds and heads of sessions 19-24, build --clock-mhz 100; "
              "its DRAM build runs on the oscillator)",
        dram_bytes_per_s=50e6),
    # LambdaConcept ECPIX-5 with the 85k-LUT ECP5-5G; 100 MHz oscillator, FTDI UART (channel B).
    "ecpix5-85f": Board(
        name="ecpix5-85f", platform="amaranth_boards.ecpix5:ECPIX585Platform",
        device="LFE5UM5G-85F", config="tiny-ecp5", clock_hz=50e6,
        # the FT2232H makes 2 Mbaud exactly (12 MHz / 6) and 50 MHz / 2 Mbaud is a whole 25
        # clocks per bit: the M3ViT image (~37 MB) loads in ~3 min instead of ~53 at 115,200
        baud=2_000_000,
        leds={"busy": Led("rgb_led", 0, "b"), "done": Led("rgb_led", 0, "g"),
              "error": Led("rgb_led", 0, "r"), "alive": Led("rgb_led", 1, "g")},
        notes="FTDI UART (second interface of the USB port), 100 MHz oscillator; the "
              "accelerator runs at 50 MHz from the PLL (routed Fmax ~65 MHz on this speed-8 part)",
        dram_bytes_per_s=400e6, dram_resource="ddr3", dram_config="m3vit-ecp5-85f",
        dram_read_bytes_per_cycle={4: 3.77, 8: 7.26},
        # LiteX drives the DDR3 pins' physical levels (ras_n etc.): amaranth-boards' PinsN
        # inversion does not apply to the raw pins. No cs_n / reset_n pins on this board. DQ and
        # DQS go through the core's own bidirectional cells (LiteX declares them "input").
        dram_pads=(("ddram_a", "a", "o"), ("ddram_ba", "ba", "o"), ("ddram_ras_n", "ras", "o"),
                   ("ddram_cas_n", "cas", "o"), ("ddram_we_n", "we", "o"),
                   ("ddram_cke", "clk_en", "o"), ("ddram_odt", "odt", "o"),
                   ("ddram_dm", "dm", "o"), ("ddram_clk_p", "clk.p", "o"),
                   ("ddram_dq", "dq", "io"), ("ddram_dqs_p", "dqs.p", "io"))),
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None


def with_clock(board: Board, mhz: float, dram: bool = False) -> Board:
    """``board`` with its accelerator clocked at ``mhz`` from the PLL (``edge-moe build
    --clock-mhz``); refused for a DRAM build (the DRAM controller makes that clock) and for a
    frequency the board's PLL cannot make from its oscillator."""
    from boards.ecp5_pll import pll_params
    if dram:
        raise ValueError("--clock-mhz: a DRAM build runs on the DRAM controller's user clock, "
                         "not the board PLL's; drop --clock-mhz or --dram")
    if not mhz > 0:
        raise ValueError(f"--clock-mhz must be > 0, got {mhz:g}")
    osc = board.platform_class()().default_clk_frequency
    try:
        pll_params(osc, mhz * 1e6)
    except ValueError as e:
        raise ValueError(f"--clock-mhz {mhz:g} on {board.name}: {e}") from None
    return replace(board, clock_hz=mhz * 1e6)


def default_build_dir(board: str, config: str, design: str = "top", dram: bool = False) -> str:
    """``edge-moe build``'s build directory when no ``-o`` is given (relative to the working
    directory): ``build/<board>-<config>-<design>[-dram]``."""
    return f"build/{board}-{config}-{design}{'-dram' if dram else ''}"
