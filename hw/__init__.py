"""Amaranth RTL of the edge-moe accelerator, grouped by subsystem.

- :mod:`hw.array`: PE, systolic PE array, GEMM engine, fused epilogue (requantize, GELU, residual).
- :mod:`hw.attention`: the attention unit (QK^T / AV lanes, exp2 online softmax, normalizer).
- :mod:`hw.norm`: LayerNorm and its reciprocal square root.
- :mod:`hw.moe`: top-k router, patch reorder (per-expert queues), expert-weight prefetcher.
- :mod:`hw.mem`: the burst memory bus, read DMA, arbiter, register slices, on-chip memory.
- :mod:`hw.link`: UART and the host bridge (byte protocol to the memory bus and CSRs).
- :mod:`hw.top`: the accelerator top level (sequencer, buffers, paths, CSR block).
- :mod:`hw.common`: RTL idioms shared by all of them (nested counters, adder trees, handshakes).

Nothing here imports host-side or test code; sizes come from :class:`sim.config.Config`.
"""
