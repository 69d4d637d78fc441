"""ECP5 PLL settings (boards/ecp5_pll.py) and the board wrapper's use of them.

The dividers are checked against the EHXPLLL's frequency relations computed here (CLKOP
feedback: fout = fin / CLKI_DIV * CLKFB_DIV, VCO = fout * CLKOP_DIV) and the ECP5 data sheet's
ranges (PFD 3.125-400 MHz, VCO 400-800 MHz); the wrapper test looks for the PLL in the RTLIL the
board flow hands to Yosys.
"""
from __future__ import annotations

import re

import pytest

from boards.boards import get_board
from boards.build import BoardTop, design_clock_hz
from boards.ecp5_pll import pll_params
from sim.config import get_config


@pytest.mark.parametrize("fin, fout", [(100e6, 25e6), (100e6, 37.5e6), (25e6, 50e6),
                                       (25e6, 25e6), (100e6, 40e6), (12e6, 48e6),
                                       (100e6, 33.333e6)])
def test_dividers_make_the_requested_clock(fin, fout):
    p = pll_params(fin, fout)
    pfd = fin / p.clki_div
    got = pfd * p.clkfb_div
    vco = got * p.clkop_div
    assert 3.125e6 <= pfd <= 400e6
    assert 400e6 <= vco <= 800e6
    assert got == pytest.approx(p.fout_hz, rel=1e-12)
    assert abs(got - fout) <= 0.005 * fout
    assert p.vco_hz == pytest.approx(vco)


@pytest.mark.parametrize("fin, fout", [(100e6, 1e6), (100e6, 500e6), (25e6, 23.7e6)])
def test_unreachable_clock_is_refused(fin, fout):
    with pytest.raises(ValueError, match="ECP5 PLL"):
        pll_params(fin, fout)


def _rtlil(board_name):
    board = get_board(board_name)
    platform = board.platform_class()()
    plan = platform.prepare(BoardTop(board, get_config("tiny"), "demo"), name="t")
    return board, platform, plan.files["t.il"]


def test_ecpix5_runs_the_design_from_the_pll():
    board, platform, il = _rtlil("ecpix5-85f")
    assert platform.default_clk_frequency == 100e6
    assert design_clock_hz(board, platform) == board.clock_hz == 50e6
    assert "EHXPLLL" in il
    assert "CLKI_DIV" in il and "CLKOP_DIV" in il


def test_ulx3s_doubles_its_oscillator_in_the_pll():
    board, platform, il = _rtlil("ulx3s-85f")
    assert platform.default_clk_frequency == 25e6
    assert design_clock_hz(board, platform) == board.clock_hz == 50e6
    assert "EHXPLLL" in il


def test_clock_option_sets_the_pll_and_refuses_what_it_cannot_make(capsys):
    from boards.boards import with_clock
    from edge_moe.cli import main
    board = with_clock(get_board("ulx3s-85f"), 100)
    platform = board.platform_class()()
    plan = platform.prepare(BoardTop(board, get_config("tiny"), "demo"), name="t")
    assert design_clock_hz(board, platform) == 100e6
    p = pll_params(25e6, 100e6)
    il = plan.files["t.il"]
    assert p.fout_hz == 100e6
    for name, value in [("CLKI_DIV", p.clki_div), ("CLKFB_DIV", p.clkfb_div),
                        ("CLKOP_DIV", p.clkop_div)]:
        assert re.search(rf"parameter \\{name} {value}\n", il), name
    for args, msg in [(["--clock-mhz", "1000"], "outside"), (["--clock-mhz", "0"], "> 0"),
                      (["--clock-mhz", "100", "--dram"], "DRAM controller")]:
        assert main(["build", "--board", "ulx3s-85f", "--check-only", *args]) == 2
        assert msg in capsys.readouterr().err
