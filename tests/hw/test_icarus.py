"""Block testbenches on Icarus Verilog, as SystemVerilog (-g2012, cocotb's default) and Verilog-2005.

The same cocotb modules and parameters as the Verilator tests (tests/hw/test_layernorm_verilator.py,
tests/hw/test_requantize_verilator.py), bit-exact against the golden models, on the Verilog of
:func:`boards.verilog_out.convert`. With Amaranth's stock Verilog, LayerNorm's outputs go X under
``-g2012`` (see boards/verilog_out.py). Skipped when ``iverilog`` is not on ``PATH``.
"""
from __future__ import annotations

import pytest

from hw.array.requantize import Requantize
from hw.norm.layernorm import LayerNorm
from sim.config import Config, get_config
from tests.harness.icarus import needs_iverilog
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.harness.verilator import run_block_verilator

pytestmark = needs_iverilog

GENERATIONS = [pytest.param("2012", id="g2012"), pytest.param("2005", id="g2005")]


@pytest.mark.parametrize("generation", GENERATIONS)
def test_layernorm_icarus(generation, seed, tmp_path):
    cfg = get_config("tiny")
    dut = LayerNorm(cfg, banks=3)
    run_block_verilator(dut, "test_layernorm_tb", tmp_path, seed, cfg, simulator="icarus",
                        icarus_generation=generation, lanes=dut.lanes, banks=3, rows=24,
                        valid_prob=0.7, ready_prob=0.6)


@pytest.mark.parametrize("generation", GENERATIONS)
def test_requantize_icarus(generation, seed, tmp_path):
    cfg = Config.tiny()
    dut = Requantize(cfg)
    run_block_verilator(dut, "test_requantize_tb", tmp_path, seed, cfg, name="requantize",
                        simulator="icarus", icarus_generation=generation, lanes=dut.lanes,
                        beats=400, valid_prob=0.7, ready_prob=0.6)
