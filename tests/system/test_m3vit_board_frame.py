"""A whole M3ViT frame of the ECPIX-5 board config (``m3vit-ecp5-85f``) on Verilator, against a
DRAM model with the board DRAM's bandwidth and read latency, bit-exact, and its cycles against
the frame cycle model.

The design is the top level (``TopWithMemory``: EdgeMoeTop on the ``OnChipMemory`` DRAM model,
hw/mem/onchip_memory.py) of ``generic_config(m3vit-ecp5-85f)`` (the ECP5 primitives replaced by
the generic blocks with the same latency) with ``hw.mem_latency`` set to the read latency
measured on LiteDRAM's ECPIX-5 simulation core through the board's ``Axi4Master`` with the
4-byte beat (``rd_req`` accepted to first ``rd_data`` beat, median of 16 lone reads: 18 cycles;
docs/boards.md "Narrow memory beat, wide port"). Its bandwidth is the config's 4-byte beat per
cycle; LiteDRAM sustained 3.77 of those 4 B/cycle there (its refresh and row misses are not in
the model). This memory model rather than LiteDRAM's core itself or cocotbext-axi's AxiRam: those
are served cycle by cycle from Python or carry a 512 MB DRAM array, ~2.5 k cycles/s on this
machine, hours for a 20.6 M-cycle frame; the DRAM model runs inside Verilator at its speed, and
it is what the cycle model (sim/cycles/frame.py) describes, with the same latency knob.

The image (36.8 MB for M3ViT: seeded random weights, tests/system/frames.frame_case) is
preloaded into the DRAM model's array from a hex file (``run_frame(..., preload=True)``,
hw/mem/sim_ram.v); the output tokens are read back through the host port and compared with
``sim.golden.forward`` bit for bit. The frame's CYCLES must be within 2 % of
``sim.cycles.frame.frame_cost`` for the same config, given the golden model's routing.

- ``test_board_frame_dram_verilator[tiny]`` (default run): the same path on ``tiny`` (shares the
  Verilator build of tests/system/test_top_frame_verilator.py's tiny frame).
- ``test_m3vit_board_frame_dram_verilator`` (slow): the M3ViT frame, both tasks. Run with
  ``pytest -m slow tests/system/test_m3vit_board_frame.py -k m3vit -s``.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from host.run import run_frame
from sim.config import Config, get_config, with_changes
from sim.cycles.frame import frame_cost
from tests.harness.seeds import seed  # noqa: F401  (pytest fixture)
from tests.system.frames import expert_counts, frame_case, tiny

# rd_req accepted -> first rd_data beat through Axi4Master (4-byte beat, 128-bit port) on
# LiteDRAM's ECPIX-5 simulation core, median of 16 lone reads (docs/boards.md).
ECPIX5_DRAM_READ_LATENCY = 18
MODEL_TOLERANCE = 0.02


def board_dram_config() -> Config:
    """``m3vit-ecp5-85f`` with the DRAM model's latency set to the board DRAM's measured one."""
    return with_changes(get_config("m3vit-ecp5-85f"), name="m3vit-ecp5-85f-dram",
                        hw=dict(mem_latency=ECPIX5_DRAM_READ_LATENCY))


def _run(cfg: Config, task: int, seed: int, tmp_path, progress_every: int) -> dict:
    case = frame_case(cfg, seed, task)
    t0 = time.monotonic()
    res = run_frame(cfg, case["qparams"], case["image_q"], task, sim="verilator",
                    work_dir=tmp_path, preload=True, progress_every=progress_every)
    wall = time.monotonic() - t0
    bad = np.argwhere(res.tokens != case["want"])
    assert not len(bad), (f"{len(bad)} output values differ, first at token/col {bad[0]}: got "
                          f"{res.tokens[tuple(bad[0])]}, want {case['want'][tuple(bad[0])]} "
                          f"(cfg={cfg.name}, seed={seed}, task={task})")
    model = frame_cost(cfg, expert_counts(cfg, case["qparams"], case["image_q"], task))
    diff = (res.cycles - model.cycles) / model.cycles
    line = (f"{cfg.name} task {task} seed {seed}: RTL {res.cycles:,} cycles, model "
            f"{model.cycles:,} ({100 * diff:+.3f} %); bytes read RTL "
            f"{res.counters['bytes_read']:,} model {model.bytes_read:,}; wall {wall:.0f} s "
            f"(Verilator build + run)")
    print("\n" + line)
    assert abs(diff) <= MODEL_TOLERANCE, line
    assert res.counters["error"] == 0, line
    return dict(rtl=res.cycles, model=model.cycles, wall=wall)


def test_board_frame_dram_verilator_tiny(seed, tmp_path):
    _run(tiny(), 1, seed, tmp_path, 100_000)


@pytest.mark.slow
@pytest.mark.parametrize("task", [0, 1])
def test_m3vit_board_frame_dram_verilator(task, seed, tmp_path):
    _run(board_dram_config(), task, seed, tmp_path, 1_000_000)
