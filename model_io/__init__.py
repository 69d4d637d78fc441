"""PyTorch reference M3ViT, quantized weight-image export and loading."""
