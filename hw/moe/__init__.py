"""Mixture-of-experts blocks: top-k router, patch reorder (per-expert token queues), expert-weight prefetcher."""
