"""Top level: sequencer, on-chip buffers, feeders, CSR block and the memory wrapper.

See docs/top_level.md. Entry points: :class:`hw.top.top.EdgeMoeTop` (the accelerator),
:class:`hw.top.top_with_memory.TopWithMemory` (with the DRAM model), :func:`host.run.run_frame`.
"""
