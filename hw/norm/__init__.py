"""LayerNorm and its reciprocal square root."""
