"""The order in which pytest-xdist hands test files to its workers: the longest first.

``pyproject.toml`` runs one worker per core with ``--dist=loadfile`` (a file's tests stay on one
worker, so they share a Verilator build) and ``--no-loadscope-reorder`` (files go out in the
order collected here; xdist's own reorder sorts them by number of tests, which put the
few-test, multi-minute Verilator frame files last, so one worker ran the last whole-top build
while the other had nothing left to do). This hook moves the files that take minutes to the
front, longest first (longest-processing-time-first scheduling): the short files then fill in
around them on whichever worker is free, and the run ends with seconds-long files. Files not
named here keep their collection order, those with a Verilator or Icarus build first.

:data:`HEAVY_FIRST` is ordered by measured time on a 2-core machine. Files that use the same
Verilator build come after the file that builds it first (test_top_frame_verilator.py builds
the tiny ``frame_sim`` that test_demo.py and test_frame_model.py reuse from the cache), so a
worker does not sit on the build's file lock while the other builds. A renamed or removed file
here only loses its place in the order; nothing fails.
"""
from __future__ import annotations

HEAVY_FIRST = (
    "tests/system/test_top_frame_verilator.py",   # tiny's top build, 3 frames
    "tests/system/test_axi_top.py",               # the AXI top's build, 3 frames
    "tests/system/test_axi_top_icarus.py",        # a frame on Icarus
    "tests/boards/test_litedram_bridge.py",       # LiteDRAM's simulation core + bridge build
    "tests/system/test_top_frame_pysim.py",       # a frame in pysim
    "tests/system/test_expert_stream_frame.py",   # a streamed-experts frame in pysim
    "tests/system/test_demo.py",                  # 2 frames on the cached tiny build
    "tests/system/test_frame_model.py",           # 1 frame on the cached tiny build
)


def _rank(item) -> tuple[int, int]:
    path = item.nodeid.split("::", 1)[0]
    if path in HEAVY_FIRST:
        return (0, HEAVY_FIRST.index(path))
    name = path.rsplit("/", 1)[-1]
    return (1 if "verilator" in name or "icarus" in name else 2, 0)


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=_rank)       # stable: a file's tests keep their order
