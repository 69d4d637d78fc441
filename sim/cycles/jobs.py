"""The top level's job hand-off in the cycle models (hw/top/job_stage.py).

Every job goes from the sequencer to its unit path through a ``JobStage`` register, so a path
starts ``JOB_STAGE`` cycles after the sequencer's handshake (and the sequencer sees it busy
from that handshake on). Where a path's first memory read waited behind the next descriptor's
fetch anyway, that cycle is hidden (:func:`sim.cycles.frame.desc_contention_cycles`).
"""
from __future__ import annotations

__all__ = ["JOB_STAGE"]

JOB_STAGE = 1
