"""DRAM initialisation and ECP5 read leveling of a generated LiteDRAM core, from the host.

The LiteDRAM cores of boards/litedram_core.py have no CPU, so what LiteX's BIOS does in
``sdram_init()`` (litex/soc/software/liblitedram/sdram.c) is done here, on the host, through the
core's CSR bus (its ``wb_ctrl`` Wishbone port, reached on a board through the host bridge's
LiteDRAM register window from word 0x8000, hw/link/host_link.py; :func:`bridge_csr`,
:func:`init_board_dram`):

1. :func:`init_commands`: the DFII command sequence that brings the DRAM out of reset and loads
   its mode registers, made by LiteDRAM's own Python (``litedram.init.
   get_sdram_phy_init_sequence``) from the PHY and module settings LiteDRAM computes for the
   core's config (:func:`core_settings`: the PHY object the generator instantiates, built here on
   stand-in pads, and the ``litedram.modules`` timing of the DRAM chip at the core's clock and
   rate). Each command is written the way LiteDRAM's generated ``sdram_phy.h`` does it
   (address, bank address, then ``dfii_control`` or a phase-0 command and its issue strobe,
   then a pause of ``delay`` cycles);
2. :func:`read_leveling` (PHYs with read leveling, i.e. ECP5DDRPHY): per byte lane, for every
   read bitslip the 8 read delays are scanned with the BIOS' test (three pseudo-random bursts
   written to row 0 and read back through the DFII phase injectors, compared on the lane's bytes,
   plus the lane's DQS burst detector), the bitslip with the best score is kept and the delay is
   set to the middle of its widest passing window, as ``sdram_read_leveling()`` /
   ``sdram_leveling_center_module()`` do; a lane with no window raises
   :class:`CalibrationError` with the whole scan (error counts per bitslip and delay);
3. :func:`initialize`: the whole of ``sdram_init()``: software control, ``init_done`` /
   ``init_error`` cleared, the sequence, read leveling, hardware control, ``init_done`` = 1 (this
   opens the core's user port); an optional ``memtest`` callable then checks the DRAM through
   the user port, and a failure sets ``init_error`` and raises.

CSR access goes through :class:`CoreCsr`: the core's CSR map (``csr.json`` of the generated core:
byte address and size in 32-bit words of each register) and three callables: ``read(byte_addr)
-> int``, ``write(byte_addr, value)``, ``wait(cycles)`` (at least that many ``user_clk`` cycles:
the BIOS' ``cdelay(n)``). LiteX stores a register wider than 32 bits (``sdram_dfii_pi*_wrdata`` /
``_rddata``) most significant word first, at consecutive word addresses.
"""
from __future__ import annotations

import importlib
import json
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import yaml

from boards.litedram_core import core_ports, generate
from hw.link.host_link import WINDOW_BASE

__all__ = ["CoreCsr", "bridge_csr", "bridge_memtest", "init_board_dram", "CalibrationError", "LeveledLane", "core_settings", "init_commands",
           "dfii_constants", "check_pattern", "read_leveling", "initialize", "lfsr32",
           "TEST_SEEDS"]

CSR_WORD_BITS = 32            # LiteX's csr_data_width of the generated cores
TEST_SEEDS = (42, 84, 36)     # the BIOS' _seed_array
LFSR32_TAPS = 0x80200003      # libbase/lfsr.h, lfsr_taps[32]
ROW_DELAY = 15                # cdelay(15) after each test-row command in the BIOS
SET_DELAY = 100               # cdelay(100) after each delay step when centring
CENTER_RETRIES = 8


class CalibrationError(RuntimeError):
    """Read leveling (or the memory test after init) failed; the message says where."""


class CoreCsr:
    """Named access to a LiteDRAM core's CSRs through ``read`` / ``write`` / ``wait`` callables
    (see the module docstring). ``csr``: the core's ``csr.json`` (a path, the core's Verilog
    path, or the loaded dict)."""

    def __init__(self, csr, read: Callable[[int], int], write: Callable[[int, int], None],
                 wait: Callable[[int], None]):
        if isinstance(csr, (str, Path)):
            p = Path(csr)
            if p.suffix == ".v":                  # the core: csr.json two levels up
                p = p.resolve().parent.parent / "csr.json"
            csr = json.loads(p.read_text())
        self.regs = {k: (v["addr"], v["size"]) for k, v in csr["csr_registers"].items()}
        self._read, self._write, self.wait = read, write, wait
        self.accesses = 0

    def has(self, name: str) -> bool:
        return name in self.regs

    def _reg(self, name):
        try:
            return self.regs[name]
        except KeyError:
            raise KeyError(f"litedram init: the core has no CSR {name!r}") from None

    def write(self, name: str, value: int) -> None:
        addr, size = self._reg(name)
        for i in range(size):                    # most significant word first
            shift = CSR_WORD_BITS * (size - 1 - i)
            self._write(addr + 4 * i, (value >> shift) & ((1 << CSR_WORD_BITS) - 1))
            self.accesses += 1

    def read(self, name: str) -> int:
        addr, size = self._reg(name)
        value = 0
        for i in range(size):
            value = (value << CSR_WORD_BITS) | self._read(addr + 4 * i)
            self.accesses += 1
        return value


def bridge_csr(transport, core, window: int = WINDOW_BASE) -> CoreCsr:
    """:class:`CoreCsr` of ``core`` through a host-bridge transport (host/driver.py's
    ``BridgeTransport``) on a DRAM board: CSR byte address ``a`` is bridge register ``window +
    a / 4`` (hw/link/host_link.py); ``wait`` is the transport's."""
    return CoreCsr(core, lambda a: transport.read_reg(window + a // 4),
                   lambda a, v: transport.write_reg(window + a // 4, v), transport.wait)


def bridge_memtest(transport, *, base: int = 0, beats: int = 64, seed: int = 1):
    """A ``memtest`` for :func:`initialize`: ``beats`` pseudo-random beats written from ``base``
    through the transport's memory path (host mode) and read back; None or the first
    difference."""
    rng = random.Random(seed)
    W, B = transport.beat_bytes, transport.max_burst

    def check():
        data = bytes(rng.randrange(256) for _ in range(beats * W))
        transport.set_host_mode(True)
        try:
            transport.write_bursts([(base + i * W, data[i * W:(i + B) * W])
                                    for i in range(0, beats, B)])
            back = b"".join(transport.read_burst(base + i * W, min(B, beats - i))
                            for i in range(0, beats, B))
        finally:
            transport.set_host_mode(False)
        for i, (a, b) in enumerate(zip(data, back)):
            if a != b:
                return f"byte {base + i:#x} read {b:#04x}, wrote {a:#04x}"
        return None
    return check


# ---------------------------------------------------------------------------------------------
# Settings and the init sequence, from LiteDRAM's Python

def _core_dir(core) -> Path:
    return Path(core).resolve().parent.parent


def _import_litedram():
    """litedram / litex modules used here. They are third-party code with invalid escape
    sequences (SyntaxWarning when compiled, an error under PYTHONWARNINGS=error, e.g. in a
    cocotb simulator process that compiles them afresh): their warnings are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = ("litedram.modules", "litedram.phy", "litedram.gen", "litedram.init",
                 "litex.build.generic_platform")
        return SimpleNamespace(**{n.split(".")[-1]: importlib.import_module(n) for n in names})


def _import_litex_sim():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module("litex.tools.litex_sim")


def core_settings(core) -> SimpleNamespace:
    """LiteDRAM's PHY settings (``phy``) and DRAM timing (``timing``) of the generated core
    ``core`` (its Verilog path): from the config the generator was given (``litedram.yml`` in
    the core's directory), built by the same litedram / litex code the generator runs."""
    lib = _import_litedram()
    modules, phys = lib.modules, lib.phy
    config = yaml.safe_load((_core_dir(core) / "litedram.yml").read_text())
    clk = float(config["sys_clk_freq"])
    module_cls = getattr(modules, config["sdram_module"])
    sim = "sim_trace" in core_ports(core)          # --sim cores: SDRAMPHYModel
    if sim:
        get_sdram_phy_settings = _import_litex_sim().get_sdram_phy_settings
        rate = {"SDR": "1:1", "DDR2": "1:2", "DDR3": "1:4", "DDR4": "1:4"}[config["memtype"]]
        phy = get_sdram_phy_settings(memtype=config["memtype"],
                                     data_width=8 * config["sdram_module_nb"], clk_freq=clk)
    else:
        phy_cls = getattr(phys, config["sdram_phy"])
        rate = {"GENSDRPHY": "1:1", "ECP5DDRPHY": "1:2"}[config["sdram_phy"]]
        gen_config = {**config, "sdram_module": module_cls,
                      "sdram_rank_nb": config.get("sdram_rank_nb", 1)}
        ios = lib.gen.get_dram_ios(gen_config)
        pads = lib.generic_platform.GenericPlatform("", ios).request(ios[0][0])   # stand-in pads of the right widths
        phy = phy_cls(pads, sys_clk_freq=clk).settings
    timing = module_cls(clk, rate).timing_settings
    return SimpleNamespace(phy=phy, timing=timing, sim=sim, config=config)


def dfii_constants() -> dict[str, int]:
    """``{"DFII_CONTROL_SEL": 1, ..., "DFII_COMMAND_RDDATA": 0x20}`` from LiteDRAM's Python
    header generator (``litedram.init.get_sdram_phy_py_header``)."""
    get_sdram_phy_py_header = _import_litedram().init.get_sdram_phy_py_header
    phy = SimpleNamespace(memtype="SDR", cl=2, nphases=1, is_rdimm=False)
    consts = {}
    for line in get_sdram_phy_py_header(phy, None).splitlines():
        name, _, value = line.partition("=")
        if name.strip().startswith("dfii_"):
            consts[name.strip().upper()] = int(value, 0)
    return consts


def _expr(text: str, consts: dict) -> int:
    value = 0
    for term in text.split("|"):
        value |= consts[term.strip()]
    return value


def init_commands(settings) -> list[tuple[str, int]]:
    """LiteDRAM's init sequence for ``settings`` (:func:`core_settings`) as CSR writes
    ``[(csr_name, value), ...]`` with ``("delay", n)`` pauses (n ``user_clk`` cycles), in the
    order of the generated ``sdram_phy.h``'s ``init_sequence()``."""
    get_sdram_phy_init_sequence = _import_litedram().init.get_sdram_phy_init_sequence
    consts = dfii_constants()
    sequence, _ = get_sdram_phy_init_sequence(settings.phy, settings.timing)
    out = []
    for _comment, a, ba, cmd, delay in sequence:
        out += [("sdram_dfii_pi0_address", a), ("sdram_dfii_pi0_baddress", ba)]
        if cmd.startswith("DFII_CONTROL"):
            out.append(("sdram_dfii_control", _expr(cmd, consts)))
        else:
            out += [("sdram_dfii_pi0_command", _expr(cmd, consts)),
                    ("sdram_dfii_pi0_command_issue", 1)]
        if delay:
            out.append(("delay", delay))
    return out


def run_commands(csr: CoreCsr, commands) -> None:
    for name, value in commands:
        if name == "delay":
            csr.wait(value)
        else:
            csr.write(name, value)


# ---------------------------------------------------------------------------------------------
# The BIOS' test pattern through the DFII phase injectors

@dataclass(frozen=True)
class _Geometry:
    """The ``SDRAM_PHY_*`` figures of sdram_phy.h the leveling code uses."""
    nphases: int
    rdphase: int
    wrphase: int
    pix_bytes: int            # DFII_PIX_DATA_BYTES: bytes of one phase's DFI data
    xdr: int                  # 1 SDR, 2 DDR
    modules: int              # byte lanes (DQS groups)
    dq_dqs_ratio: int
    delays: int
    bitslips: int
    ecp5: bool                # burst detector CSRs (ddrphy_burstdet_*)

    @classmethod
    def of(cls, phy) -> "_Geometry":
        ratio = phy.databits // phy.strobes
        return cls(nphases=phy.nphases, rdphase=phy.rdphase, wrphase=phy.wrphase,
                   pix_bytes=phy.dfi_databits // 8, xdr=1 if phy.memtype == "SDR" else 2,
                   modules=phy.databits // ratio, dq_dqs_ratio=ratio, delays=phy.delays,
                   bitslips=phy.bitslips, ecp5=phy.phytype == "ECP5DDRPHY")


def lfsr32(prev: int) -> int:
    """One step of libbase's Galois LFSR ``lfsr(32, prev)``."""
    return (prev >> 1) ^ (LFSR32_TAPS if prev & 1 else 0)


def _pattern(g: _Geometry, seed: int) -> list[bytes]:
    prv, out = seed, []
    for _ in range(g.nphases):
        row = bytearray()
        for _ in range(g.pix_bytes):
            value = 0
            for bit in range(8):
                prv = lfsr32(prv)
                value |= (prv & 1) << bit
            row.append(value)
        out.append(bytes(row))
    return out


def _command(csr, phase, cmd, address=0, bank=0):
    csr.write(f"sdram_dfii_pi{phase}_address", address)
    csr.write(f"sdram_dfii_pi{phase}_baddress", bank)
    csr.write(f"sdram_dfii_pi{phase}_command", cmd)
    csr.write(f"sdram_dfii_pi{phase}_command_issue", 1)


def _read_phases(phy, g) -> int:
    """DFI phases whose read data the DFII captures. LiteDRAM's simulation PHY
    (``SDRAMPHYModel``) raises ``rddata_valid`` on phase 0 only (it assigns its one read-valid
    bit to the concatenation of all phases' valids), so the ``sdram_dfii_pi{1..}_rddata``
    registers of a simulation core never load: there the test burst is compared on phase 0."""
    return 1 if phy.phytype == "SDRAMPHYModel" else g.nphases


def _popcount(x: int) -> int:
    return bin(x).count("1")


def check_pattern(csr: CoreCsr, settings, module: int, seed: int, consts=None,
                  detail: list | None = None) -> int:
    """``sdram_write_read_check_test_pattern(module, seed)``: write one pseudo-random burst to
    row 0 / column 0 of bank 0 through the DFII and read it back; the number of wrong bits on
    byte lane ``module`` (+1 when the ECP5 burst detector saw no DQS burst on it). Needs the
    DFII in software control (``sdram_dfii_control`` = CKE|ODT|RESET_N)."""
    c = consts or dfii_constants()
    g = _Geometry.of(settings.phy)
    prs = _pattern(g, seed)
    cs, we, cas, ras = (c[f"DFII_COMMAND_{n}"] for n in ("CS", "WE", "CAS", "RAS"))
    _command(csr, 0, ras | cs)                                  # activate row 0
    csr.wait(ROW_DELAY)
    for p in range(g.nphases):                                  # big-endian, like csr_wr_buf
        csr.write(f"sdram_dfii_pi{p}_wrdata", int.from_bytes(prs[p], "big"))
    _command(csr, g.wrphase, cas | we | cs | c["DFII_COMMAND_WRDATA"])
    csr.wait(ROW_DELAY)
    if g.ecp5:
        csr.write("ddrphy_burstdet_clr", 1)
    _command(csr, g.rdphase, cas | cs | c["DFII_COMMAND_RDDATA"])
    csr.wait(ROW_DELAY)
    _command(csr, 0, ras | we | cs)                             # precharge
    csr.wait(ROW_DELAY)
    errors = 0
    mask = (1 << g.dq_dqs_ratio) - 1
    half = g.pix_bytes // g.xdr
    nebo = half - 1 - (module * g.dq_dqs_ratio) // 8
    pebo = nebo + half
    if half == 0:
        pebo = nebo = 0
    ibo = (module * g.dq_dqs_ratio) % 8
    for p in range(_read_phases(settings.phy, g)):
        tst = csr.read(f"sdram_dfii_pi{p}_rddata").to_bytes(g.pix_bytes, "big")
        if detail is not None:
            detail.append(f"phase {p} wrote {prs[p].hex()} read {tst.hex()}")
        offsets = [pebo] + ([nebo] if g.xdr == 2 else [])
        for off in offsets:
            shift = 4 if (g.xdr == 2 and g.pix_bytes == 1 and off == nebo) else ibo
            errors += _popcount(((prs[p][off] >> shift) & mask) ^ ((tst[off] >> shift) & mask))
            if g.dq_dqs_ratio == 16:
                errors += _popcount(((prs[p][off + 1] >> shift) & mask) ^
                                    ((tst[off + 1] >> shift) & mask))
    if g.ecp5 and not (csr.read("ddrphy_burstdet_seen") >> module) & 1:
        errors += 1
    return errors


def _run_test_pattern(csr, settings, module, consts) -> int:
    return sum(check_pattern(csr, settings, module, s, consts) for s in TEST_SEEDS)


# ---------------------------------------------------------------------------------------------
# ECP5 read leveling (sdram_read_leveling of the BIOS)

def _lane_action(csr, module, action):
    """``sdram_leveling_action``: select the lane, act, deselect (and on ECP5 resynchronise
    every DQSBUFM by toggling all of dly_sel)."""
    csr.write("ddrphy_dly_sel", 1 << module)
    csr.write(action, 1)
    csr.write("ddrphy_dly_sel", 0)
    csr.write("ddrphy_dly_sel", 0xFF)
    csr.write("ddrphy_dly_sel", 0)


@dataclass
class LeveledLane:
    """Result of one byte lane: chosen bitslip and delay, the passing window on that bitslip,
    and every error count seen (``scan[bitslip][delay]``)."""
    module: int
    bitslip: int
    delay: int
    window: tuple[int, int]
    scan: dict = field(default_factory=dict)


def _center(csr, settings, module, g, consts):
    """``sdram_leveling_center_module``: the widest run of passing delays (a run needs two
    passing delays in a row to start, the edges being spotty); set the delay to its middle.
    Returns ((min, max) or None, errors per delay)."""
    seen = {}

    def test(delay):
        errors = _run_test_pattern(csr, settings, module, consts)
        seen[delay] = errors
        return errors

    delay, working, delay_min = 0, False, -1
    _lane_action(csr, module, "ddrphy_rdly_dq_rst")
    while True:
        last_working, working = working, test(delay) == 0
        if working and last_working and delay_min < 0:
            delay_min = delay - 1
            break
        delay += 1
        if delay >= g.delays:
            break
        _lane_action(csr, module, "ddrphy_rdly_dq_inc")
    delay_max = cur_min = delay_min
    while delay < g.delays:
        if test(delay) == 0:
            if delay - cur_min > delay_max - delay_min:
                delay_min, delay_max = cur_min, delay
        else:
            cur_min = delay + 1
        delay += 1
        if delay >= g.delays:
            break
        _lane_action(csr, module, "ddrphy_rdly_dq_inc")
    if delay_min < 0:
        return None, seen
    mid = (delay_min + delay_max) // 2 % g.delays
    for _ in range(CENTER_RETRIES):
        _lane_action(csr, module, "ddrphy_rdly_dq_rst")
        csr.wait(SET_DELAY)
        for _ in range(mid):
            _lane_action(csr, module, "ddrphy_rdly_dq_inc")
            csr.wait(SET_DELAY)
        if _run_test_pattern(csr, settings, module, consts) == 0:
            return (delay_min, delay_max), seen
    raise CalibrationError(
        f"litedram init: read leveling of byte lane {module}: delay {mid} (middle of "
        f"{delay_min}..{delay_max}) failed its check {CENTER_RETRIES} times")


def _scan(csr, settings, module, g, consts, max_errors):
    """``sdram_read_leveling_scan_module``: the score of the current bitslip over all delays
    (any passing delay outweighs any number of near misses) and the errors per delay."""
    score, errors_at = 0, []
    _lane_action(csr, module, "ddrphy_rdly_dq_rst")
    for _ in range(g.delays):
        errors = _run_test_pattern(csr, settings, module, consts)
        errors_at.append(errors)
        score += (errors == 0) * max_errors * g.delays + (max_errors - errors)
        _lane_action(csr, module, "ddrphy_rdly_dq_inc")
    return score, errors_at


def _format_scan(scan: dict) -> str:
    return "; ".join(f"bitslip {b}: " + " ".join(str(e) for e in errs)
                     for b, errs in sorted(scan.items()))


def read_leveling(csr: CoreCsr, settings, log: Callable[[str], None] = lambda s: None
                  ) -> list[LeveledLane]:
    """ECP5 read leveling of every byte lane (module docstring, step 2); the DFII must be in
    software control. Raises :class:`CalibrationError` naming the lane, the bitslips and
    delays tried and their error counts when a lane has no passing window."""
    g = _Geometry.of(settings.phy)
    consts = dfii_constants()
    max_errors = len(TEST_SEEDS) * (8 * g.nphases * g.pix_bytes // g.modules)
    lanes = []
    for module in range(g.modules):
        _lane_action(csr, module, "ddrphy_rdly_dq_rst")
        _lane_action(csr, module, "ddrphy_rdly_dq_bitslip_rst")
    for module in range(g.modules):
        best_score, best_bitslip, scan = 0, 0, {}
        _lane_action(csr, module, "ddrphy_rdly_dq_bitslip_rst")
        for bitslip in range(g.bitslips):
            score, scan[bitslip] = _scan(csr, settings, module, g, consts, max_errors)
            if score > best_score:
                best_score, best_bitslip = score, bitslip
            if bitslip < g.bitslips - 1:
                _lane_action(csr, module, "ddrphy_rdly_dq_bitslip")
        _lane_action(csr, module, "ddrphy_rdly_dq_bitslip_rst")
        for _ in range(best_bitslip):
            _lane_action(csr, module, "ddrphy_rdly_dq_bitslip")
        window, _seen = _center(csr, settings, module, g, consts)
        if window is None:
            raise CalibrationError(
                f"litedram init: read leveling failed on byte lane {module}: no two passing "
                f"read delays in a row at any bitslip (tried bitslips 0..{g.bitslips - 1} x "
                f"delays 0..{g.delays - 1}; bit errors per delay over {len(TEST_SEEDS)} test "
                f"bursts, {max_errors} max: {_format_scan(scan)})")
        delay = (window[0] + window[1]) // 2 % g.delays
        lanes.append(LeveledLane(module, best_bitslip, delay, window, scan))
        log(f"litedram: byte lane {module}: bitslip {best_bitslip}, read delay {delay} "
            f"(window {window[0]}..{window[1]})")
    return lanes


# ---------------------------------------------------------------------------------------------
# The whole init

def software_control(consts) -> int:
    return consts["DFII_CONTROL_CKE"] | consts["DFII_CONTROL_ODT"] | consts["DFII_CONTROL_RESET_N"]


def initialize(csr: CoreCsr, core, *, memtest: Callable[[], str | None] | None = None,
               check_lanes: bool = False,
               log: Callable[[str], None] = lambda s: None) -> SimpleNamespace:
    """``sdram_init()`` of LiteX's BIOS over ``csr`` for the generated core ``core`` (its
    Verilog path): see the module docstring. ``check_lanes``: on a PHY without read leveling,
    run the leveling's test bursts once per byte lane through the DFII after the init sequence
    (a check of the command and data path; errors raise :class:`CalibrationError`).
    ``memtest()`` runs after ``init_done`` = 1 (the user port is open then) and returns None or
    what went wrong. Returns the settings, the leveled lanes, the lane check's error counts and
    the number of CSR accesses."""
    settings = core_settings(core)
    consts = dfii_constants()
    csr.write("sdram_dfii_control", software_control(consts))
    csr.write("ddrctrl_init_done", 0)
    csr.write("ddrctrl_init_error", 0)
    commands = init_commands(settings)
    log(f"litedram: init sequence ({len(commands)} DFII commands, "
        f"{settings.config['sdram_module']} {settings.config['memtype']})")
    run_commands(csr, commands)
    lanes, lane_errors = [], []
    if settings.phy.read_leveling:
        log("litedram: read leveling (every bitslip x read delay, per byte lane)")
        lanes = read_leveling(csr, settings, log)
    elif check_lanes:
        g = _Geometry.of(settings.phy)
        lane_errors = [_run_test_pattern(csr, settings, m, consts) for m in range(g.modules)]
        if any(lane_errors):
            detail = []
            check_pattern(csr, settings, 0, TEST_SEEDS[0], consts, detail)
            raise CalibrationError(f"litedram init: DFII test bursts read back with bit errors "
                                   f"per byte lane {lane_errors} (no read leveling on "
                                   f"{settings.phy.phytype}); seed {TEST_SEEDS[0]}: "
                                   f"{'; '.join(detail)}")
    csr.write("sdram_dfii_control", consts["DFII_CONTROL_SEL"])
    csr.write("ddrctrl_init_done", 1)
    if memtest is not None:
        log("litedram: memory test through the user port")
        problem = memtest()
        if problem:
            csr.write("ddrctrl_init_error", 1)
            raise CalibrationError(f"litedram init: memory test after init failed: {problem}")
        log("litedram: memory test passed")
    return SimpleNamespace(settings=settings, lanes=lanes, lane_errors=lane_errors,
                           accesses=csr.accesses)


def init_board_dram(transport, board: str, cfg=None, *, core=None, memtest_beats: int = 256,
                    log: Callable[[str], None] = print) -> SimpleNamespace:
    """Initialise and calibrate the DRAM of a programmed DRAM build (``edge-moe build --dram``)
    through its host bridge: ``transport`` is host/driver.py's ``BridgeTransport`` on the
    board's serial port, ``board`` / ``cfg`` name the LiteDRAM core the bitstream was built with
    (its CSR map and settings come from the same cached generator output; ``core``: that core's
    Verilog path instead, e.g. the simulation core in a test). Runs :func:`initialize` with a
    memory test of ``memtest_beats`` beats at DRAM address 0, logging each step."""
    core = core or generate(board, sim=False, cfg=cfg, quiet=True)
    csr = bridge_csr(transport, core)
    res = initialize(csr, core, memtest=bridge_memtest(transport, beats=memtest_beats), log=log)
    log(f"litedram: {board} DRAM initialised ({res.accesses} CSR accesses)")
    return res
