"""Verilog elaboration for vendor flows, bitstreams for open-toolchain boards, the host link.

- :mod:`.cli`: ``edge-moe elaborate`` / ``edge-moe build``;
- :mod:`.elaborate`: top-level Verilog + README + ``synth_xilinx`` estimate;
- :mod:`.boards` (board entries: data), :mod:`.fit` (fit check), :mod:`.build` (board wrapper,
  amaranth-boards + YoWASP run, report), :mod:`.report` (tables);
- :mod:`.system` (UART + bridge + device), :mod:`.demo_device` (Requantize on registers);
- :mod:`.driver` (host driver, bridge transport), :mod:`.sim_transport` (pysim),
  :mod:`.cocotb_transport` (Verilator);
- :mod:`.synth_report`: Yosys statistics of any block.

See docs/boards.md.
"""
