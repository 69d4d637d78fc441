"""Memory path: the burst bus (:mod:`.bus`), read DMA (:mod:`.dma`), read arbiter
(:mod:`.read_arbiter`), register slices (:mod:`.stream_slice`), beat unpacker (:mod:`.unpack`),
the on-chip memory that serves the bus (:mod:`.onchip_memory`) and a seeded bus throttle for
testing back-pressure (:mod:`.bus_throttle`)."""
