"""The host driver on the Amaranth simulator: a whole ``tiny`` frame, bit-exact.

:class:`host.driver.EdgeMoeDriver` -- the code a board runs over pyserial -- drives
:class:`hw.top.top_with_memory.TopWithMemory` (the top level on its DRAM model) through
:class:`host.sim_transport.PysimTransport`: the memory image goes in through the host ports
(random valid gaps and back-pressure on the burst streams), the frame is started with a task
id, STATUS is polled, the output tokens and counters are read back. Tokens must equal
``sim.golden.forward``. The same test through the UART bridge's byte protocol on Verilator is
tests/hw/test_host_bridge_verilator.py (``test_bridge_frame_verilator``), which runs in CI;
this one is marked slow (pysim simulates the ~30k-cycle frame at ~1k cycles/s: about 3 minutes).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from host.driver import EdgeMoeDriver
from host.sim_transport import PysimRunner, PysimTransport
from sim.config import get_config
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)


@pytest.mark.slow
def test_driver_tiny_frame_pysim(seed):
    from hw.top.top_with_memory import TopWithMemory
    from sim.memory_image import memory_size
    from sim.memory_image import build_memory_image
    from tests.system.frames import frame_case
    cfg = get_config("tiny")
    task = seed % cfg.model.tasks
    case = frame_case(cfg, seed, task)
    _, layout = build_memory_image(cfg, case["qparams"], case["image_q"], task)
    dut = TopWithMemory(cfg, size=memory_size(layout, cfg))
    runner = PysimRunner(dut)
    t = PysimTransport(runner, dut, cfg, rng=random.Random(seed), valid_prob=0.8, ready_prob=0.8)
    drv = EdgeMoeDriver(t, cfg, poll_cycles=1024)
    drv.load_frame(case["qparams"], case["image_q"], task)
    res = drv.run_frame(task, max_polls=200)
    want = case["want"]
    bad = np.argwhere(res.tokens != want)
    assert not len(bad), (f"{len(bad)} values differ, first at {tuple(bad[0])}: got "
                          f"{res.tokens[tuple(bad[0])]}, want {want[tuple(bad[0])]} "
                          f"(seed={seed}, task={task})")
    assert res.counters["cycles"] > 0
    assert res.counters["bytes_written"] == layout.out_bytes
