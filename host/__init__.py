"""Host-side code that drives the accelerator: the driver and its transports (UART, pysim, cocotb),
frame runners on the simulators, the Verilator/cocotb build glue and benches."""
