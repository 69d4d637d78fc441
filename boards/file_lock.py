"""An exclusive lock on a file (``fcntl.flock``), for caches that several processes fill at once:
LiteDRAM cores (boards/litedram_core.py) and Verilator builds (host/cocotb_run.py)."""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

__all__ = ["locked"]


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on ``path`` (created, with its directory) for the ``with`` body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
