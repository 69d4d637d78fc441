"""PyTorch reference M3ViT, quantized weight-image export and loading, input images.

Modules (docs/weight_image.md): ``torch_model`` (PyTorch reference), ``export`` / ``loader`` /
``format`` / ``layout`` / ``names`` (the weight image), ``cli`` (``edge-moe export``), ``images``
(input images, synthetic sample), ``compare`` (golden-model error vs PyTorch). Nothing is imported
here, so numpy-only users (the loader, the host driver) never import torch.
"""
