"""Benches that drive RTL blocks in simulation to validate the cycle model."""
