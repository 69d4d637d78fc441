"""edge-moe test suite (pytest)."""
