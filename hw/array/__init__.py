"""The systolic PE array, the GEMM engine and its fused epilogue (requantize, GELU, residual)."""
