"""Host link: UART and the byte-protocol bridge to the memory bus and the CSR port; the AMBA
bridges of the vendor-flow top (AXI4 memory master, AXI4-Lite register slave)."""
