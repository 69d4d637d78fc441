"""Top level: sequencer, on-chip buffers, feeders and writers of each unit, CSR block.

See docs/top_level.md. Entry points: :class:`hw.top.top.EdgeMoeTop` (the accelerator) and
:class:`hw.top.top_with_memory.TopWithMemory` (with an on-chip memory and a host port, for
simulation and the small-model boards). Frame runners live in :mod:`host.run`.
"""
