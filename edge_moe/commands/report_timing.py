"""The Fmax estimate from Yosys logic depth that ``edge-moe report`` prints beside the clock.

No routed Xilinx build of the M3ViT preset exists, so its clock is an assumption. The next best
figure is boards/xilinx_depth.py's measurement: each main block synthesized with Yosys
``synth_xilinx -family xcup`` and its deepest register-to-register path priced with a per-cell
delay model. The measurement takes tens of minutes, so the report reads its committed result
(``boards/data/xilinx_depth_m3vit.json``) and never runs Yosys itself. docs/vendor.md
("Timing estimate for the Xilinx-class preset") has the table and the per-stage budget.
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["DEPTH_FILE", "load_depth", "worst_block", "depth_line"]

DEPTH_FILE = Path(__file__).resolve().parents[2] / "boards" / "data" / "xilinx_depth_m3vit.json"


def load_depth(config_name: str, path: Path = DEPTH_FILE) -> dict | None:
    """The committed measurement if it was made for ``config_name``, else None."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if data.get("config") == config_name else None


def worst_block(data: dict) -> tuple[str, dict] | None:
    """(block, its deepest internal path) with the longest estimated delay over all blocks."""
    worst = None
    for name, r in data.get("blocks", {}).items():
        p = r.get("internal")
        if p and (worst is None or p["delay_ns"] > worst[1]["delay_ns"]):
            worst = (name, p)
    return worst


def depth_line(config_name: str, path: Path = DEPTH_FILE) -> str | None:
    """One line: the deepest measured stage and its Fmax estimate, or None if not measured."""
    data = load_depth(config_name, path)
    w = worst_block(data) if data else None
    if w is None:
        return None
    name, p = w
    extra = "".join(f" + {n} {what}" for n, what in
                    ((p["carry"], "carry cells"), (p["dsp48e2"], "DSP48E2"),
                     (p["bram"], "BRAM")) if n)
    skipped = [b for b, r in data["blocks"].items() if "error" in r]
    tail = f"; not measured: {', '.join(skipped)}" if skipped else ""
    try:
        rel = path.relative_to(DEPTH_FILE.parents[2])
    except ValueError:
        rel = path
    return (f"Yosys synth_xilinx logic depth: deepest stage {p['lut_levels']} LUT levels{extra} "
            f"in {name} -> est. {p['est_mhz']:g} MHz (estimate from logic depth, not a routed "
            f"result; {rel}{tail})")
