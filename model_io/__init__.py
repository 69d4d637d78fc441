"""PyTorch reference M3ViT, quantized weight-image export and loading, input images.

Modules (docs/weight_image.md): ``torch_model`` (PyTorch reference), ``export`` / ``loader`` /
``names`` (the weight image; its byte layout, format constants and tensor storage orders are in
:mod:`sim.weight_image`, :mod:`sim.weight_format` and :mod:`sim.weight_layout`, shared with the
frame memory builder), ``images`` (input images, synthetic sample), ``compare`` (golden-model
error vs PyTorch). ``edge-moe export`` is :mod:`edge_moe.commands.export`. Nothing is imported
here, so numpy-only users (the loader, the host driver) never import torch.
"""
