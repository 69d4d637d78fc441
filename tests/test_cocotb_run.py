"""host/cocotb_run.py's Verilator build knobs: the model's OPT_FAST reaches the C++ compiler."""
from __future__ import annotations

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from host import cocotb_run


class _Counter(wiring.Component):
    def __init__(self):
        super().__init__({"en": In(1), "count": Out(8)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


def test_opt_fast_checks_its_flag(monkeypatch):
    monkeypatch.delenv(cocotb_run.OPT_ENV, raising=False)
    assert cocotb_run._opt_fast(None) == cocotb_run.DEFAULT_OPT_FAST == "-O0"
    assert cocotb_run._opt_fast("-O2") == "-O2"
    for bad in ("O2", "-O9", "-Os -march=native", "-O0; rm -rf x"):
        with pytest.raises(ValueError, match="gcc -O flag"):
            cocotb_run._opt_fast(bad)
    monkeypatch.setenv(cocotb_run.OPT_ENV, "-O1")     # the user's override wins
    assert cocotb_run._opt_fast("-Os") == "-O1"


@pytest.mark.parametrize("opt", [None, "-Os"])
def test_build_compiles_the_model_at_opt_fast(opt, monkeypatch):
    monkeypatch.delenv(cocotb_run.OPT_ENV, raising=False)
    verilog = cocotb_run.elaborate(_Counter(), "opt_probe")
    build = cocotb_run.build_verilator(verilog, "opt_probe", opt_fast=opt)
    compiles = [ln for ln in (build / "build.log").read_text().splitlines()
                if " c++ " in ln and "Vopt_probe" not in ln and "Vtop" in ln]
    assert compiles, "no compile of the model's own files in build.log"
    want = opt or "-O0"
    fast = [ln for ln in compiles if f" c++ {want} " in ln]
    assert fast, f"no model file compiled at {want}"
    if want != "-O0":
        assert not any(" c++ -O0 " in ln for ln in compiles)
    assert (build / "opt_probe").is_file()
