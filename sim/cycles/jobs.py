"""The top level's job hand-off in the cycle models (hw/top/job_stage.py).

With ``hw.job_stage`` every job goes from the sequencer to its unit path through a
``JobStage`` register, so a path starts :func:`job_stage_cycles` cycles after the sequencer's
handshake (and the sequencer sees it busy from that handshake on). Where a path's first memory
read waited behind the next descriptor's fetch anyway, that cycle is hidden
(:func:`sim.cycles.frame.desc_contention_cycles`).
"""
from __future__ import annotations

from sim.config import Config

__all__ = ["job_stage_cycles"]


def job_stage_cycles(cfg: Config) -> int:
    """Cycles the job stage adds between the sequencer's job handshake and the path's."""
    return 1 if cfg.hw.job_stage else 0
