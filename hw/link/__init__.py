"""Host link: UART and the byte-protocol bridge to the memory bus and the CSR port."""
