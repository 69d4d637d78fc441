"""LiteDRAM cores for the boards' external memory, made by LiteDRAM's own generator.

``generate(board_name, sim=False) -> Path`` returns the Verilog of a standalone LiteDRAM core
(module ``litedram_core``) for the board's DRAM:

1. reads the board's LiteDRAM config, ``boards/litedram/<board>.yml`` (the memory chip, the PHY,
   the clocks, the FPGA device) and adds the one user port the accelerator needs: AXI4 with
   :data:`AXI_ID_BITS` of ID, as wide as the accelerator's memory beat (``8 *
   cfg.hw.mem_bytes_per_cycle`` of the board's config preset) but never narrower than the
   controller word (:func:`controller_bits`): LiteDRAM's up-converter (a port narrower than the
   controller) never completes a write in litedram 2024.12 (docs/boards.md), while its
   down-converter works;
2. looks for it in the cache (``~/.cache/edge-moe/litedram/`` or ``$EDGE_MOE_LITEDRAM_CACHE``),
   in a directory keyed by a hash of that config, the ``sim`` flag and the versions of the
   LiteDRAM packages, and returns the cached core when it is complete;
3. otherwise runs ``python -m litedram.gen <config> --no-compile`` (``--sim`` for LiteDRAM's
   simulation model of the DRAM and PHY, ``SDRAMPHYModel``) with this Python, as a child
   process, into a fresh directory that is renamed into the cache once the core is there.

Why LiteDRAM's generator and not a controller of ours: the controller, the ECP5 DDR3 PHY
(read leveling, DQS handling) and the SDR PHY are mature and used on these very boards by
LiteX; the standalone core has plain Verilog ports, so the board top instantiates it like any
vendor IP. The cost is the ``litedram``/``litex``/``migen`` pip packages at generation time
only (the Verilog needs nothing at run time).

The cache directory holds what LiteDRAM writes: ``gateware/litedram_core.v``, ``csr.csv`` /
``csr.json`` (the control registers on the ``wb_ctrl`` port, see :func:`csr_map`),
``software/include/generated/sdram_phy.h`` (LiteDRAM's init sequence in C), the exact config
handed to the generator (``litedram.yml``) and its log. Ports, clocks and the init sequence are
described in docs/boards.md ("External memory (LiteDRAM)").

Errors: an unknown board or one without a LiteDRAM config raises :class:`LiteDramConfigError`
(a ``ValueError``); LiteDRAM not installed, or a failed generator run, raises
:class:`LiteDramError` (a ``RuntimeError``), the latter with the tail of the generator's log.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from sim.config import Config, get_config

from boards.boards import get_board
from boards.file_lock import locked

__all__ = ["generate", "core_config", "core_dir", "dram_boards", "dram_bytes", "csr_map", "core_ports",
           "init_sequence", "required_packages", "controller_bits",
           "LiteDramError", "LiteDramConfigError", "CONFIG_DIR", "CACHE_ENV", "CORE_NAME",
           "AXI_PORT", "AXI_ID_BITS", "PIP_INSTALL"]

CONFIG_DIR = Path(__file__).resolve().with_name("litedram")
CACHE_ENV = "EDGE_MOE_LITEDRAM_CACHE"
CORE_NAME = "litedram_core"
AXI_PORT = "axi_0"          # user port name: its Verilog signals are user_port_axi_0_*
# Four ID bits let a test master keep several IDs in flight; the accelerator's Axi4Master drives
# ID 0 (its upper bits tie to 0). LiteDRAM's AXI frontend answers in request order either way.
AXI_ID_BITS = 4

# The distributions the generator imports: migen/litex/litedram always; --sim also imports
# LiteX's simulator (litex.tools.litex_sim -> liteeth, litescope), and LiteX's Verilator sim
# toolchain looks up the tapcfg data package after writing the Verilog (exit 1 without it).
PACKAGES = ("litedram", "litex", "migen")
SIM_PACKAGES = ("liteeth", "litescope", "pythondata-misc-tapcfg")
PIP_INSTALL = ("pip install litedram==2024.12 litex==2024.12 migen==0.10.0 liteeth==2024.12 "
               "litescope==2024.12 pythondata-misc-tapcfg==0.0.post517 (or: pip install -e .)")


class LiteDramError(RuntimeError):
    """LiteDRAM is not installed, or its generator failed (the message has its log's tail)."""


class LiteDramConfigError(ValueError):
    """The board is unknown or has no LiteDRAM config."""


def dram_boards() -> list[str]:
    """The boards with a LiteDRAM config (``boards/litedram/<board>.yml``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yml"))


def _board_cfg(board_name: str, cfg: Config | None) -> Config:
    try:
        board = get_board(board_name)
    except ValueError as e:
        raise LiteDramConfigError(f"litedram: {e}") from None
    return cfg if cfg is not None else get_config(board.config)


def core_config(board_name: str, cfg: Config | None = None) -> dict:
    """The config handed to ``litedram_gen`` for ``board_name``: its YAML plus the AXI user
    port for ``cfg`` (default: the board's config preset)."""
    cfg = _board_cfg(board_name, cfg)
    path = CONFIG_DIR / f"{board_name}.yml"
    if not path.is_file():
        raise LiteDramConfigError(
            f"litedram: board {board_name!r} has no LiteDRAM config ({path.name} in "
            f"boards/litedram/); boards with external memory: {', '.join(dram_boards())}")
    config = yaml.safe_load(path.read_text())
    width = max(8 * cfg.hw.mem_bytes_per_cycle, controller_bits(config))
    config["user_ports"] = {AXI_PORT: {"type": "axi", "id_width": AXI_ID_BITS,
                                       "data_width": width}}
    return config


# DQ beats of one DRAM burst: one LiteDRAM controller word is one burst over all DQ lanes, for
# the board PHYs and for LiteX's simulated PHY alike (DDR3: BL8, over 2 phases of 4 beats on
# ECP5DDRPHY at 1:2 and 4 phases of 2 beats in simulation at 1:4; SDR: BL1 at 1:1).
BURST_BEATS = {"SDR": 1, "DDR3": 8}


def controller_bits(config: dict) -> int:
    """Width of LiteDRAM's controller word (native port) for a LiteDRAM config."""
    return BURST_BEATS[config["memtype"]] * 8 * config["sdram_module_nb"]


def dram_bytes(board_name: str) -> int:
    """Bytes of ``board_name``'s DRAM: the geometry of its LiteDRAM config's module
    (``litedram.modules``: banks x rows x columns, one column = one DQ-wide word) over the
    config's byte lanes (ECPIX-5: one MT41K256M16, 8 x 32,768 x 1,024 x 2 B = 512 MiB)."""
    config = core_config(board_name)
    # LiteDRAM's module table only here; its third-party code has invalid escape sequences
    # (SyntaxWarning, an error under PYTHONWARNINGS=error when compiled afresh)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import litedram.modules as modules
    module = getattr(modules, config["sdram_module"])
    return module.nbanks * module.nrows * module.ncols * config["sdram_module_nb"]


def required_packages(sim: bool) -> tuple[str, ...]:
    return PACKAGES + (SIM_PACKAGES if sim else ())


def _versions(sim: bool) -> dict[str, str]:
    """Installed version of every package the generator needs; LiteDramError if one is
    missing."""
    versions, missing = {}, []
    for dist in required_packages(sim):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    if missing:
        raise LiteDramError(f"litedram: {', '.join(missing)} not installed (needed to generate "
                            f"the DRAM core{' for simulation' if sim else ''}): {PIP_INSTALL}")
    return versions


def _cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edge-moe" / "litedram")


def _key(config: dict, sim: bool, versions: dict) -> str:
    text = json.dumps({"config": config, "sim": sim, "name": CORE_NAME, "versions": versions},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def core_dir(board_name: str, sim: bool = False, cfg: Config | None = None) -> Path:
    """The cache directory of this board's core (it need not exist yet)."""
    key = _key(core_config(board_name, cfg), sim, _versions(sim))
    return _cache_root() / f"{board_name}-{'sim' if sim else 'hw'}-{key}"


def _core_file(d: Path) -> Path:
    return d / "gateware" / f"{CORE_NAME}.v"


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"<no log at {path}>"


def _generator_command(yml: Path, out: Path, sim: bool) -> list[str]:
    return [sys.executable, "-m", "litedram.gen", str(yml), "--no-compile",
            "--output-dir", str(out), "--name", CORE_NAME, *(["--sim"] if sim else [])]


def generate(board_name: str, sim: bool = False, cfg: Config | None = None, *,
             quiet: bool = False) -> Path:
    """The Verilog of ``board_name``'s LiteDRAM core (``sim``: with LiteDRAM's DRAM + PHY
    model instead of the PHY and pads), generated on the first call and cached."""
    config = core_config(board_name, cfg)
    d = core_dir(board_name, sim, cfg)
    stamp = d / ".complete"
    with locked(d.with_name(d.name + ".lock")):
        if stamp.is_file() and _core_file(d).is_file():
            return _core_file(d)
        what = f"{board_name}{' (simulation model)' if sim else ''}"
        if not quiet:
            print(f"litedram: generating the DRAM core for {what} into {d} ...",
                  file=sys.stderr, flush=True)
        t0 = time.monotonic()
        d.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=d.name + ".", suffix=".tmp", dir=d.parent))
        yml = work / "litedram.yml"
        yml.write_text(yaml.safe_dump(config, sort_keys=False))
        log = work / "litedram_gen.log"
        # third-party code: the tests' PYTHONWARNINGS=error is not passed on to it
        env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
        with open(log, "w") as f:
            rc = subprocess.run(_generator_command(yml, work, sim), cwd=work, stdout=f,
                                stderr=subprocess.STDOUT, env=env).returncode
        if rc != 0 or not _core_file(work).is_file():
            failed = d.with_name(d.name + ".failed")
            shutil.rmtree(failed, ignore_errors=True)
            work.rename(failed)
            why = f"exit status {rc}" if rc else f"no {CORE_NAME}.v written"
            raise LiteDramError(f"litedram: generating the core for {what} failed ({why}); "
                                f"log {failed / log.name}, last lines:\n"
                                f"{_tail(failed / log.name)}")
        (work / ".complete").write_text(json.dumps(_versions(sim)))
        shutil.rmtree(d, ignore_errors=True)
        work.rename(d)
        if not quiet:
            print(f"litedram: done in {time.monotonic() - t0:.1f} s", file=sys.stderr,
                  flush=True)
    return _core_file(d)


def csr_map(core: Path) -> dict[str, int]:
    """Byte address on ``wb_ctrl`` (word address = byte address / 4) of every control
    register of the generated core ``core`` (its ``csr.csv``), e.g. ``"ddrctrl_init_done"``."""
    root = Path(core).resolve().parent.parent
    regs = {}
    with open(root / "csr.csv") as f:
        for row in csv.reader(line for line in f if not line.startswith("#")):
            if row and row[0] == "csr_register":
                regs[row[1]] = int(row[2], 0)
    return regs


def core_ports(core: Path) -> dict[str, tuple[str, int]]:
    """``{port: (direction, width)}`` of module ``litedram_core`` in the Verilog file ``core``
    (direction as LiteX declares it: ``"input"`` / ``"output"``; LiteX declares the ECP5
    PHY's bidirectional pads ``input``, see docs/boards.md)."""
    text = Path(core).read_text()
    head = text[text.index(f"module {CORE_NAME} ("):]
    head = head[:head.index(");")]
    return {name: (d, int(msb) + 1 if msb else 1) for d, msb, name in re.findall(
        r"^\s*(input|output|inout)\s+wire\s+(?:\[(\d+):0\]\s*)?(\w+)", head, re.M)}


def init_sequence(core: Path) -> list[tuple[str, int]]:
    """The DRAM init sequence LiteDRAM generated for ``core`` (``init_sequence()`` in its
    ``sdram_phy.h``, which LiteX's BIOS runs), as ``[(csr_name, value), ...]`` writes to the
    ``wb_ctrl`` port, with ``("delay", n)`` for its ``cdelay(n)`` pauses (n loop iterations of
    the BIOS: wait at least n ``user_clk`` cycles). It leaves ``sdram_dfii_control`` in software
    control: after it (and, on ECP5, read leveling) the host writes ``sdram_dfii_control`` =
    ``DFII_CONTROL_SEL`` (1, hardware control) and ``ddrctrl_init_done`` = 1."""
    header = Path(core).resolve().parent.parent / "software/include/generated/sdram_phy.h"
    text = header.read_text()
    consts = {k: int(v, 0) for k, v in re.findall(r"#define\s+(DFII_\w+)\s+(0x[0-9a-fA-F]+|\d+)",
                                                  text)}

    def value(expr: str) -> int:
        out = 0
        for term in expr.split("|"):
            term = term.strip()
            out |= consts[term] if term in consts else int(term, 0)
        return out

    body = text[text.index("static inline void init_sequence(void)"):]
    body = body[body.index("{") + 1:body.index("\n}")]
    seq = []
    for call, arg in re.findall(r"(\w+)\(([^)]*)\);", body):
        if call == "cdelay":
            seq.append(("delay", value(arg)))
        elif m := re.fullmatch(r"command_p(\d+)", call):
            seq += [(f"sdram_dfii_pi{m[1]}_command", value(arg)),
                    (f"sdram_dfii_pi{m[1]}_command_issue", 1)]
        elif call.endswith("_write"):
            seq.append((call[:-len("_write")], value(arg)))
        else:
            raise LiteDramError(f"litedram: unexpected call {call}() in {header}'s "
                                f"init_sequence()")
    return seq
