"""ECP5 PLL (EHXPLLL) for a board whose oscillator is faster than the accelerator can run.

``pll_params(fin_hz, fout_hz)`` searches the divider settings the way Trellis' ``ecppll``
does: reference divider ``CLKI_DIV`` (phase detector 3.125-400 MHz), feedback divider
``CLKFB_DIV`` with the feedback taken from CLKOP, so ``fout = fin / CLKI_DIV * CLKFB_DIV``, and
output divider ``CLKOP_DIV`` that puts the VCO (``fout * CLKOP_DIV``) in 400-800 MHz, as near
600 MHz as it gets. The closest ``fout`` wins (the first such setting, i.e. the smallest
dividers); a request no setting reaches within ``tolerance`` raises ``ValueError``.

:class:`Ecp5Pll` turns the platform's default clock into ``clk`` at ``fout_hz`` with a
``locked`` output; the board wrapper drives its ``sync`` domain from ``clk`` and holds it in
reset until ``locked`` (through a reset synchronizer). nextpnr-ecp5 derives the output clock's
constraint from the dividers, so the timing report is against the design clock, not the
oscillator.
"""
from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io

__all__ = ["PllParams", "pll_params", "Ecp5Pll"]

PFD_MHZ = (3.125, 400.0)
VCO_MHZ = (400.0, 800.0)
VCO_MID_MHZ = 600.0           # of the VCO settings for one output, the one nearest mid-range
OUT_MHZ = (3.125, 400.0)


@dataclass(frozen=True)
class PllParams:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    fin_hz: float
    fout_hz: float                # achieved output frequency

    @property
    def vco_hz(self) -> float:
        return self.fout_hz * self.clkop_div


def pll_params(fin_hz: float, fout_hz: float, tolerance: float = 0.005) -> PllParams:
    """The EHXPLLL dividers for ``fin_hz -> fout_hz`` (see the module docstring)."""
    fin, want = fin_hz / 1e6, fout_hz / 1e6
    if not OUT_MHZ[0] <= want <= OUT_MHZ[1]:
        raise ValueError(f"ECP5 PLL: output {want:g} MHz is outside {OUT_MHZ[0]}-{OUT_MHZ[1]} MHz")
    best = None
    for ref in range(1, 129):
        pfd = fin / ref
        if not PFD_MHZ[0] <= pfd <= PFD_MHZ[1]:
            continue
        for fb in range(1, 81):
            out = pfd * fb
            if out > OUT_MHZ[1]:
                break
            ods = [od for od in range(1, 129) if VCO_MHZ[0] <= out * od <= VCO_MHZ[1]]
            if not ods:
                continue
            od = min(ods, key=lambda d: abs(out * d - VCO_MID_MHZ))
            err = abs(out - want)
            if best is None or err < best[0]:
                best = (err, ref, fb, od, out)
    if best is None or best[0] > tolerance * want:
        got = f"; closest {best[4]:g} MHz" if best else ""
        raise ValueError(f"ECP5 PLL: cannot make {want:g} MHz from {fin:g} MHz{got}")
    _, ref, fb, od, out = best
    return PllParams(ref, fb, od, fin_hz, out * 1e6)


class Ecp5Pll(Elaboratable):
    """``clk`` at ``fout_hz`` from the platform's default clock; ``locked`` (module docstring)."""

    def __init__(self, fout_hz: float):
        self.fout_hz = fout_hz
        self.clk = Signal()
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        fin = platform.default_clk_frequency
        p = pll_params(fin, self.fout_hz)
        clk_in = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_in)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{fin / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{p.fout_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p.clki_div, p_CLKFB_DIV=p.clkfb_div, p_FEEDBK_PATH="CLKOP",
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.clkop_div, p_CLKOP_CPHASE=p.clkop_div - 1,
            p_CLKOP_FPHASE=0,
            i_RST=Const(0), i_STDBY=Const(0), i_CLKI=clk_buf.i, o_CLKOP=self.clk,
            i_CLKFB=self.clk, i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(0),
            i_PHASESTEP=Const(0), i_PHASELOADREG=Const(0), i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0), o_LOCK=self.locked)
        return m
