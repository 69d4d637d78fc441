"""Software side of edge-moe: the configuration, fixed-point numerics, golden models and cycle model."""
