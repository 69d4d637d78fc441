"""External memory path: the burst bus (:mod:`.bus`), the DRAM model (:mod:`.onchip_memory`),
the read DMA (:mod:`.dma`), read arbiter, bus throttle, beat unpacker and stream slice."""
