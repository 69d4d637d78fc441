"""cocotb test modules: run on generated Verilog by tests/hw/*_verilator.py via host.cocotb_run."""
