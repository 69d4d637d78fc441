"""The pytest side of a block's Verilator test: one call per run.

A block's ``tests/hw/test_<block>_verilator.py`` builds the component and hands it to
:func:`run_block_verilator` with the cocotb module that drives it (``tests/cocotb/<tb>.py``),
the config and the test's seed; the cocotb side reads them back with
:func:`tests.harness.cocotb_tb.tb_params`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from host.cocotb_run import run_cocotb
from sim.config import Config

__all__ = ["run_block_verilator"]


def run_block_verilator(dut, tb: str, tmp_path, seed: int, cfg: Config | None = None, *,
                        name: str | None = None, simulator: str = "verilator",
                        icarus_generation: str = "2012", **params: Any) -> Path:
    """Run the cocotb module ``tests.cocotb.<tb>`` on the Verilog of ``dut``.

    ``params`` (JSON-serializable) go to the cocotb side, with ``config=cfg.to_dict()`` when a
    ``cfg`` is given and ``seed``. ``name`` is the Verilog top module and the name of the cached
    Verilator build (default: the component's class name, lower-cased). ``simulator="icarus"``
    (with ``icarus_generation`` "2012" or "2005") runs it on Icarus Verilog instead. A failing
    cocotb test
    fails the pytest test (:class:`host.cocotb_run.CocotbFailure`).
    """
    __tracebackhide__ = True
    if cfg is not None:
        params = dict(config=cfg.to_dict(), **params)
    return run_cocotb(dut, f"tests.cocotb.{tb}", name=name, test_dir=tmp_path, seed=seed,
                      params=params, simulator=simulator, icarus_generation=icarus_generation)
