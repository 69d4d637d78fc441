"""edge-moe command-line entry point."""
