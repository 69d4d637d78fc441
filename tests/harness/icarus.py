"""The skip marker for tests that need Icarus Verilog (``iverilog``, a Debian package that
``.ci/run`` installs when it is missing): one definition for every Icarus test."""
from __future__ import annotations

import shutil

import pytest

__all__ = ["needs_iverilog"]

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="Icarus Verilog (iverilog) is not on PATH: "
                                           "apt-get install iverilog")
