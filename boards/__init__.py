"""Verilog elaboration for vendor flows, bitstreams for open-toolchain boards, the host link.

- :mod:`.elaborate`: top-level Verilog + README + ``synth_xilinx`` estimate;
- :mod:`.boards` (board entries: data), :mod:`.fit` (fit check), :mod:`.build` (board wrapper,
  amaranth-boards + YoWASP run, report), :mod:`.report` (tables);
- :mod:`.system` (UART + bridge + device), :mod:`.demo_device` (Requantize on registers);
- :mod:`.ecp5_pll` (clock), :mod:`.pnr_report` (nextpnr report), :mod:`.synth_report` (Yosys
  statistics of any block).

The ``edge-moe elaborate`` / ``build`` commands are in edge_moe/commands/boards.py; the host
driver and its transports in host/.

See docs/boards.md.
"""
