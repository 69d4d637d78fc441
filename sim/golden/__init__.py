"""Bit-exact integer golden model of every edge-moe block and of the whole encoder.

Each operator is a plain numpy function on int64 arrays that the RTL tests call for their
expectations; ``forward`` chains them into one frame. See docs/numerics.md.
"""
from sim.golden.gelu import gelu_exact, gelu_pwl, gelu_table
from sim.golden.layernorm import layernorm, rsqrt_fixed
from sim.golden.linear import gemm_acc, linear, residual_add, scaled_accumulate
from sim.golden.model import forward, patchify, quantize_image, quantize_params
from sim.golden.router import ExpertQueue, Routing, expert_queues, route, top_k
from sim.golden.softmax import attention_head, exp2_fixed, reciprocal, softmax_rows, to_score

__all__ = ["gelu_exact", "gelu_pwl", "gelu_table", "layernorm", "rsqrt_fixed", "gemm_acc",
           "linear", "residual_add", "scaled_accumulate", "forward", "patchify", "quantize_image",
           "quantize_params", "ExpertQueue", "Routing", "expert_queues", "route", "top_k",
           "attention_head", "exp2_fixed", "reciprocal", "softmax_rows", "to_score"]
