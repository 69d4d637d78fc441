"""External memory path: the burst bus (:mod:`.bus`), the DRAM model (:mod:`.dram_model`) and
the read DMA (:mod:`.dma`)."""
