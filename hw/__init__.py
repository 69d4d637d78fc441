"""Amaranth RTL blocks of the edge-moe accelerator."""
