"""Verilog elaboration for vendor flows and bitstreams for open-toolchain boards.

- :mod:`.elaborate`: top-level Verilog + README + ``synth_xilinx`` estimate;
- :mod:`.boards` (board entries: data), :mod:`.fit` (fit check), :mod:`.build` (board wrapper,
  amaranth-boards + YoWASP run, report), :mod:`.report` (tables), :mod:`.pnr_report`
  (nextpnr timing), :mod:`.ecp5_pll` (PLL dividers);
- :mod:`.system` (UART + bridge + device), :mod:`.demo_device` (Requantize on registers);
- :mod:`.synth_report`: Yosys statistics of any block.

The ``edge-moe elaborate`` / ``edge-moe build`` commands are in :mod:`edge_moe.commands.boards`;
the host driver is :mod:`host.driver`. See docs/boards.md.
"""
