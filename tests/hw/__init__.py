"""Tests of the Amaranth blocks in hw/ (pysim, and Verilator via cocotb)."""
