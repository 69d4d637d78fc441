"""Whole frames on the top level's Verilog (TopWithMemory: EdgeMoeTop + bus throttle + DRAM model),
Verilator via cocotb (host/frame_tb.py), bit-exact vs sim.golden.forward.

The design is built without the memory image (loaded through the host port), so the tiny build
is shared by every seed and task. Variants: the serial (not overlapped) attention program on the
same build; slow: two consecutive MoE blocks, and a dense-only model (each its own build). The
tiny frames run with the bus throttle on (seeded random gaps and back-pressure on every memory
channel). Slow tests also run the ECP5 boards' config and a reduced-depth M3ViT-size frame (full
width: 129 tokens, dim 192, 3 heads, 16 experts; 2 blocks, one dense, one MoE).
"""
from __future__ import annotations

import numpy as np
import pytest

from host.run import run_frame
from sim.config import get_config, with_changes
from sim.memory_image import build_memory_image, lower_program, memory_size
from tests.harness.seeds import seed  # noqa: F401
from tests.system.frames import dense_config, frame_case, tiny


def _check(case, res, seed):
    bad = np.argwhere(res.tokens != case["want"])
    assert not len(bad), (f"{len(bad)} output values differ, first at token/col {bad[0]}: got "
                          f"{res.tokens[tuple(bad[0])]}, want {case['want'][tuple(bad[0])]} "
                          f"(seed={seed}, task={case['task']})")


@pytest.mark.parametrize("task", [0, 1])
def test_tiny_frame_verilator(task, seed, tmp_path):
    case = frame_case(tiny(), seed, task)
    res = run_frame(case["cfg"], case["qparams"], case["image_q"], task, sim="verilator",
                    work_dir=tmp_path, throttle_seed=seed)
    _check(case, res, seed)
    c = res.counters
    assert c["error"] == 0
    assert c["mac_active_cycles"] > 0 and c["cycles"] > c["mac_active_cycles"]
    cfg = case["cfg"]
    assert c["bytes_written"] == cfg.model.tokens * cfg.model.dim * cfg.num.act.storage_bytes


def two_moe():
    """tiny with both blocks MoE: the router, reorder unit and prefetcher re-arm per block."""
    return with_changes(get_config("tiny"), name="tiny-2moe", model=dict(moe_blocks=(0, 1)))


# 2moe and dense each need their own Verilator build of the top (~3 min alone, ~5 min beside the
# other worker), so they run with -m slow to keep the default run near 12 minutes on 2 cores.
# The default run keeps what dense covered: the serial program on the RTL
# (test_serial_frame_verilator, on tiny's build), and the top without MoE hardware running a
# whole serial frame in pysim (test_dense_serial_frame_pysim in test_top_frame_pysim.py).
@pytest.mark.slow
@pytest.mark.parametrize("make_cfg", [two_moe, dense_config], ids=["2moe", "dense"])
def test_variant_frame_verilator(make_cfg, seed, tmp_path):
    """Other program shapes: consecutive MoE blocks; a dense-only model (no MoE hardware)."""
    case = frame_case(make_cfg(), seed, 1)
    res = run_frame(case["cfg"], case["qparams"], case["image_q"], 1, sim="verilator",
                    work_dir=tmp_path, throttle_seed=seed + 1)
    _check(case, res, seed)


def serial_config():
    """tiny with attention not overlapped: one ATTENTION descriptor per block, every head back
    to back. ``attn_overlap`` changes only the program (sim/memory_image.py), not the hardware;
    the bank is wired for that program only (``buffer_wiring="program"``, as on the boards)."""
    return with_changes(get_config("tiny"), name="tiny-serial",
                        hw=dict(attn_overlap=False, buffer_wiring="program"))


def test_serial_frame_verilator(seed, tmp_path):
    """The serial (not overlapped) attention program on the RTL, bit-exact. Its image is a few
    descriptors shorter than tiny's; with the DRAM model sized for tiny's image it is the same
    design as test_tiny_frame_verilator's, so it reuses that cached build."""
    case = frame_case(serial_config(), seed, 1)
    _, tiny_layout = build_memory_image(tiny(), case["qparams"], case["image_q"], 1)
    res = run_frame(case["cfg"], case["qparams"], case["image_q"], 1, sim="verilator",
                    work_dir=tmp_path, throttle_seed=seed + 1,
                    mem_size=memory_size(tiny_layout, tiny()))
    _check(case, res, seed)
    assert res.counters["descriptors"] == len(lower_program(case["cfg"])) \
        < len(lower_program(tiny()))


def test_mem_size_smaller_than_the_image_is_refused():
    case = frame_case(tiny(), 0, 0)
    with pytest.raises(ValueError, match="at least the image's"):
        run_frame(case["cfg"], case["qparams"], case["image_q"], 0, sim="verilator",
                  mem_size=case["cfg"].hw.mem_bytes_per_cycle)


@pytest.mark.slow
@pytest.mark.parametrize("task", [0, 1])
def test_board_config_frame_verilator(task, seed, tmp_path):
    """The config the ECP5 boards are built with (tiny-ecp5: attention p = 1)."""
    case = frame_case(get_config("tiny-ecp5"), seed, task)
    res = run_frame(case["cfg"], case["qparams"], case["image_q"], task, sim="verilator",
                    work_dir=tmp_path, throttle_seed=seed)
    _check(case, res, seed)


def m3vit_reduced():
    """M3ViT widths, 2 blocks: block 0 dense, block 1 MoE (16 experts, top-2)."""
    return with_changes(get_config("m3vit-tiny-cityscapes"), name="m3vit-2blocks",
                        model=dict(depth=2, moe_blocks=(1,)))


@pytest.mark.slow
@pytest.mark.parametrize("task", [0])
def test_m3vit_reduced_frame_verilator(task, seed, tmp_path):
    cfg = m3vit_reduced()
    case = frame_case(cfg, seed, task)
    res = run_frame(cfg, case["qparams"], case["image_q"], task, sim="verilator",
                    work_dir=tmp_path, progress_every=200_000)
    _check(case, res, seed)
    print(f"m3vit 2-block frame: {res.counters}")
