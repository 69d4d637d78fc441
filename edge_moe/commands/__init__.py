"""The ``edge-moe`` subcommands, one module each."""
