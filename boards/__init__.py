"""Verilog elaboration for vendor flows and bitstreams for open-toolchain boards."""
