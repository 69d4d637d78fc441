# amaranth: UnusedElaboratable=no
"""boards/dram_board.py: the ECPIX-5 DRAM board top, elaborated for its platform (no tools run).

- ``test_ecpix5_dram_bringup_top``: ``platform.prepare(DramBoardTop(ecpix5, accelerator=False))``
  (the board core, not the simulation one): the LPF places every pin of amaranth-boards' ``ddr3``
  resource (P pins of the differential clock and DQS; N pins follow from the SSTL15D buffer)
  with the resource's IO_TYPE; the top level has DQ (16) and DQS (2) as inout and the other
  DRAM pins as outputs, as wide as the core's pads; the generated ``litedram_core.v`` is in the
  build and the Yosys script reads it; the core's ``clk`` is the 100 MHz oscillator and the
  UART divisor is for the 50 MHz user clock;
- ``test_dram_summary``: report.json's DRAM entry for the ECPIX-5 (the chip and clocks of its
  LiteDRAM YAML: MT41K256M16, DDR3 at 100 MHz = 2 x the 50 MHz user clock);
- ``test_dram_checks``: one-line errors for a board without a DRAM pin map and for a config
  whose memory beat does not divide the core's AXI port (a port forced to 128 bits under a
  32-byte beat: the real core widens its port to such a beat); 4-, 8-, 16- and 32-byte beats
  pass;
- ``test_ecpix5_dram_tiny_top``: ``tiny-ecp5`` as it is (8-byte beat on the 128-bit port, the
  Axi4Master up-sizes) elaborates to the ECPIX-5 DRAM top: the accelerator's and the host link's
  AXI masters are 128 bits wide (WSTRB 16 bits);
- ``test_ecpix5_dram_accelerator_top`` (slow, ~1-2 min of elaboration): the same with the
  accelerator, on ``tiny-ecp5`` widened to the 128-bit port (16-column PE array, 8 experts).
"""
from __future__ import annotations

import re

import pytest

from amaranth.build.dsl import DiffPairs, Pins

from boards import dram_system
from boards.boards import get_board
from boards.dram_board import DramBoardTop, check_dram, dram_summary, user_clock_hz
from boards.litedram_core import core_ports, generate
from hw.link.uart import uart_divisor
from sim.config import ConfigError, get_config, with_changes

BOARD = "ecpix5-85f"


def _resource_pins(platform, name):
    """``{subsignal: ([P or single pin sites], io_type)}`` of an amaranth-boards resource."""
    res = platform.lookup(name, 0)
    common = dict(res.attrs)
    out = {}
    for sub in res.ios:
        io_type = dict(common, **dict(sub.attrs)).get("IO_TYPE")
        (pins,) = sub.ios
        sites = pins.p.names if isinstance(pins, DiffPairs) else pins.names
        assert isinstance(pins, (Pins, DiffPairs))
        out[sub.name] = (list(sites), io_type)
    return out


def _prepare(accelerator, cfg):
    board = get_board(BOARD)
    platform = board.platform_class()()
    top = DramBoardTop(board, cfg, accelerator=accelerator)
    assert top.divisor == uart_divisor(50e6, board.baud)      # the UART on the user clock
    plan = platform.prepare(top, name="edge_moe")
    return board, platform, plan


def _check_plan(board, platform, plan, cfg):
    lpf = plan.files["edge_moe.lpf"]
    located = dict(re.findall(r'LOCATE COMP "([^"]+)" SITE "(\w+)";', lpf))
    io_types = dict(re.findall(r'IOBUF PORT "([^"]+)" IO_TYPE=(\w+)', lpf))
    by_site = {site: port for port, site in located.items()}
    for sub, (sites, io_type) in _resource_pins(platform, "ddr3").items():
        for site in sites:
            assert site in by_site, f"ddr3 {sub} pin {site} not placed"
            assert io_types[by_site[site]] == io_type, (sub, site)
    core = generate(BOARD, sim=False, cfg=cfg, quiet=True)
    ports = core_ports(core)
    il = plan.files["edge_moe.il"]
    top = il[il.index("attribute \\top 1"):]
    top = top[:top.index("\nend\n")]
    wires = {n: (d, int(w)) for w, d, n in re.findall(
        r"wire width (\d+) (input|output|inout) \d+ +\\(\S+)", top)}
    for core_port, path, kind in board.dram_pads:
        name = "ddr3_0__" + path.replace(".", "__") + ("" if "." in path else "__io")
        d, w = wires[name]
        assert w == ports[core_port][1], (core_port, w)
        assert d == ("inout" if kind == "io" else "output"), (core_port, d)
    assert {n for n, (d, _) in wires.items() if d == "inout"} == {"ddr3_0__dq__io",
                                                                  "ddr3_0__dqs__p"}
    assert plan.files["litedram_core.v"] == core.read_text()
    assert "litedram_core.v" in plan.files["edge_moe.ys"]
    # the core's clk is the oscillator; the UART runs on the 50 MHz user clock
    assert located["clk100_0__io"] == "K23"
    assert user_clock_hz(board, cfg) == 50e6
    return wires


def test_ecpix5_dram_bringup_top():
    cfg = get_config("tiny-ecp5")
    board, platform, plan = _prepare(False, cfg)
    _check_plan(board, platform, plan, cfg)


def test_dram_summary():
    got = dram_summary(get_board(BOARD), get_config("tiny-ecp5"))
    assert got == {"module": "MT41K256M16", "memtype": "DDR3", "phy": "ECP5DDRPHY",
                   "data_bits": 16, "user_clock_mhz": 50.0, "dram_clock_mhz": 100.0,
                   "axi_data_bits": 128}


def test_dram_checks(monkeypatch):
    with pytest.raises(ValueError, match=r"board ulx3s-85f has no DRAM pin map .* boards with "
                                         r"one: ecpix5-85f"):
        check_dram(get_board("ulx3s-85f"), get_config("tiny-ecp5"))
    # the board core's port is max(beat, controller word), so only a forced 128-bit port can
    # be narrower than a 32-byte beat
    wide = with_changes(get_config("tiny-ecp5"), name="tiny-ecp5-beat32",
                        hw={"mem_bytes_per_cycle": 32})
    check_dram(get_board(BOARD), wide)                 # 256-bit port: the beat as it is
    monkeypatch.setattr(dram_system, "core_beat_bits", lambda board, cfg: 128)
    with pytest.raises(ConfigError, match=r"DRAM build for ecpix5-85f: the LiteDRAM AXI port of "
                                          r"ecpix5-85f is 128 bits but config 'tiny-ecp5-beat32' "
                                          r"has a 256-bit memory beat .* mem_bytes_per_cycle = "
                                          r"16, 8, 4, 2, 1$"):
        check_dram(get_board(BOARD), wide)
    check_dram(get_board(BOARD), wide, accelerator=False)
    monkeypatch.undo()
    for beat in (4, 8, 16):
        check_dram(get_board(BOARD), with_changes(get_config("tiny-ecp5"),
                                                  hw={"mem_bytes_per_cycle": beat}))
    check_dram(get_board(BOARD), get_config("m3vit-ecp5-85f"))


def test_ecpix5_dram_tiny_top():
    cfg = get_config("tiny-ecp5")
    board, platform, plan = _prepare(True, cfg)
    _check_plan(board, platform, plan, cfg)
    il = plan.files["edge_moe.il"]
    strobes = re.findall(r"wire width (\d+)[^\n]*\\m_axi_wstrb\b", il)
    assert strobes and set(strobes) == {"16"}, strobes


@pytest.mark.slow
def test_ecpix5_dram_accelerator_top():
    cfg = with_changes(get_config("tiny-ecp5"), name="tiny-ecp5-beat16",
                       hw={"mem_bytes_per_cycle": 16, "array_cols": 16}, model={"experts": 8})
    check_dram(get_board(BOARD), cfg)
    board, platform, plan = _prepare(True, cfg)
    _check_plan(board, platform, plan, cfg)
