"""Analytic cycle models of every block and of a whole frame (one module per block)."""
