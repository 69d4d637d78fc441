"""Bit-exact integer golden model of every edge-moe block and of the whole encoder.

Each operator is a plain numpy function on int64 arrays that the RTL tests call for their
expectations; ``forward`` chains them into one frame. See docs/numerics.md.
"""
from .gelu import gelu_exact, gelu_pwl, gelu_table
from .layernorm import layernorm, rsqrt_fixed
from .linear import gemm_acc, linear, residual_add, scaled_accumulate
from .model import forward, patchify, quantize_image, quantize_params
from .router import ExpertQueue, Routing, expert_queues, route, top_k
from .softmax import attention_head, exp2_fixed, reciprocal, softmax_rows, to_score

__all__ = ["gelu_exact", "gelu_pwl", "gelu_table", "layernorm", "rsqrt_fixed", "gemm_acc",
           "linear", "residual_add", "scaled_accumulate", "forward", "patchify", "quantize_image",
           "quantize_params", "ExpertQueue", "Routing", "expert_queues", "route", "top_k",
           "attention_head", "exp2_fixed", "reciprocal", "softmax_rows", "to_score"]
