"""PyTorch reference M3ViT, quantized weight-image export and loading, input images.

Modules (docs/weight_image.md): ``torch_model`` (PyTorch reference), ``export`` / ``loader`` /
``names`` (the weight image; its format and layout are sim/weight_format.py and
sim/weight_layout.py), ``images`` (input images, synthetic sample), ``compare`` (golden-model
error vs PyTorch). ``edge-moe export`` is edge_moe/commands/export.py. Nothing is imported
here, so numpy-only users (the loader, the host driver) never import torch.
"""
