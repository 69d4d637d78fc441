"""The clock and the memory rate ``edge-moe report`` times a frame with, and where they come from.

Clock (:func:`report_clock`), first that applies:

1. a routed build of the config by ``edge-moe build`` in its default build directory
   (``build/<board>-<config>-top[-dram]/report.json`` under ``build_root``): the clock that
   bitstream runs at (a DRAM build: the LiteDRAM user clock), with nextpnr's Fmax beside it;
2. a board whose DRAM build is made for the config (``Board.dram_config``): the LiteDRAM core's
   user clock, on which the DRAM build runs the accelerator (boards/dram_board.py);
3. a board whose default config it is: that board's design clock (other such boards named);
4. the config's ``hw.clock_mhz``, assumed.

Memory rate (:func:`memory_rate`): on a DRAM board (as above) the board's measured sustained
read rate for the config's memory beat (``Board.dram_read_bytes_per_cycle``), else the beat
itself (the frame model's rate: on-chip memory serves a beat per cycle).
"""
from __future__ import annotations

import json
from pathlib import Path

from boards.boards import BOARDS, Board, default_build_dir
from sim.config import Config

__all__ = ["routed_build", "dram_board", "report_clock", "memory_rate", "DEFAULT_BUILD_ROOT"]

DEFAULT_BUILD_ROOT = Path(".")          # default_build_dir is relative to the working directory


def routed_build(cfg: Config, build_root: Path = DEFAULT_BUILD_ROOT) -> tuple[Path, dict] | None:
    """(report.json path, its contents) of the first routed accelerator build of ``cfg`` in
    the default build directories (DRAM builds first), or None."""
    for dram in (True, False):
        for b in BOARDS.values():
            path = Path(build_root) / default_build_dir(b.name, cfg.name, "top", dram) / \
                "report.json"
            if not path.is_file():
                continue
            rep = json.loads(path.read_text())
            if rep.get("config") == cfg.name and rep.get("fmax_mhz") and rep.get("clock_mhz"):
                return path, rep
    return None


def dram_board(cfg: Config, build_root: Path = DEFAULT_BUILD_ROOT) -> Board | None:
    """The board whose DRAM build carries ``cfg``: a routed DRAM build's, else the first with
    ``dram_config`` = ``cfg.name``."""
    routed = routed_build(cfg, build_root)
    if routed and routed[1].get("dram"):
        return BOARDS.get(routed[1]["board"])
    return next((b for b in BOARDS.values() if b.dram_config == cfg.name), None)


def report_clock(cfg: Config, build_root: Path = DEFAULT_BUILD_ROOT) -> tuple[float, str]:
    """(MHz, where it comes from): see the module docstring."""
    routed = routed_build(cfg, build_root)
    if routed:
        path, rep = routed
        mhz, fmax = float(rep["clock_mhz"]), float(rep["fmax_mhz"])
        what = "LiteDRAM user clock" if rep.get("dram") else "design clock"
        verdict = ("" if fmax >= mhz else
                   f", below the clock: the bitstream misses timing, this time is optimistic")
        return mhz, (f"{what} of the routed build {path.parent} ({rep['board']}; nextpnr Fmax "
                     f"{fmax:.1f} MHz{verdict})")
    b = dram_board(cfg, build_root)
    if b is not None:
        # the LiteDRAM core's config (and Amaranth) only when a board matches
        from boards.dram_board import user_clock_hz
        return user_clock_hz(b, cfg) / 1e6, (f"LiteDRAM user clock of board {b.name}'s DRAM "
                                             f"build (boards/litedram/{b.name}.yml; no routed "
                                             f"build)")
    boards = [b for b in BOARDS.values() if b.config == cfg.name]
    if not boards:
        return cfg.hw.clock_mhz, "assumed (no routed build)"
    # amaranth-boards and the PLL solver (Amaranth) only when a board matches
    from boards.build import design_clock_hz
    mhz = [design_clock_hz(b, b.platform_class()()) / 1e6 for b in boards]
    others = "".join(f"; {b.name} runs it at {f:g} MHz" for b, f in zip(boards[1:], mhz[1:]))
    return mhz[0], f"design clock of board {boards[0].name}{others}"


def memory_rate(cfg: Config, build_root: Path = DEFAULT_BUILD_ROOT) -> tuple[float, str]:
    """(bytes per cycle, where it comes from): see the module docstring."""
    W = cfg.hw.mem_bytes_per_cycle
    b = dram_board(cfg, build_root)
    if b is not None and W in b.dram_read_bytes_per_cycle:
        return b.dram_read_bytes_per_cycle[W], (
            f"{b.name} DRAM: sustained reads of the {W}-byte beat through Axi4Master on "
            f"LiteDRAM's simulation core of the board, measured (docs/boards.md)")
    if b is not None:
        return float(W), (f"the {W}-byte memory beat (no measured {b.name} DRAM rate for this "
                          f"beat: the beat is an upper bound)")
    return float(W), f"the {W}-byte memory beat (one beat per cycle, the frame model's rate)"
