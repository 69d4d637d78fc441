"""Will a config fit a device? A quick estimate from the config, before any tool runs.

``estimate(cfg, design)`` lists the large on-chip memories of a board design and the multipliers
it needs, from the same geometry functions the RTL uses (hw/top/geometry.py, the prefetcher's
:func:`~hw.moe.prefetcher.prefetch_geometry`) -- no elaboration:

- activation buffers (X, XN/ATT, Q, K, V, H/IMG): ``TopGeometry.depths`` words of
  ``word_bits``;
- the expert-weight ping/pong buffers (configs with MoE blocks);
- the external-memory model: a board without a DRAM controller keeps the whole frame memory
  (weight image, program, position table, input image, output) in block RAM, which is what
  limits every board to small configs;
- multipliers: the PE array plus the attention lanes (``R*C + 2*p*dw``, the config's own count);
  the LayerNorm / softmax / GELU / router units add a few more (the report of a real build gives
  the exact figure).

Each memory is mapped to ECP5 DP16KD blocks in the cheapest of the block's shapes (16384x1 ..
512x36). Yosys may put shallow memories in LUT RAM instead, so the block count is an upper
estimate for those and exact for the deep ones.

``check_fit(device, est)`` raises :class:`FitError` with every resource that does not fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.config import Config

__all__ = ["FitError", "MemoryEstimate", "FitEstimate", "estimate", "check_fit",
           "frame_memory_bytes", "dp16kd_blocks", "DP16KD_SHAPES"]

# (width, depth) shapes of one ECP5 DP16KD block (true dual port up to 18 bits, 36 as pseudo DP)
DP16KD_SHAPES = ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))


class FitError(ValueError):
    """The design does not fit the device (the message lists each resource)."""


def dp16kd_blocks(width: int, depth: int) -> int:
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in DP16KD_SHAPES)


@dataclass(frozen=True)
class MemoryEstimate:
    name: str
    width: int
    depth: int

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def blocks(self) -> int:
        return dp16kd_blocks(self.width, self.depth)


@dataclass
class FitEstimate:
    config: str
    design: str
    dsps: int
    memories: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def bram_blocks(self) -> int:
        return sum(mem.blocks for mem in self.memories)

    @property
    def bram_bits(self) -> int:
        return sum(mem.bits for mem in self.memories)

    def to_dict(self) -> dict:
        return {"config": self.config, "design": self.design, "dsps": self.dsps,
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


def _top_memories(cfg: Config) -> list[MemoryEstimate]:
    from hw.mem.bus import beat_bytes
    from hw.top.geometry import MEM_NAMES, TopGeometry
    geo = TopGeometry.of(cfg)
    mems = [MemoryEstimate(f"buffer {n}", geo.word_bits, d) for n, d in zip(MEM_NAMES,
                                                                            geo.depths)]
    if cfg.model.moe_blocks:
        from hw.moe.prefetcher import prefetch_geometry
        g = prefetch_geometry(cfg)
        mems += [MemoryEstimate("expert weights ping/pong", 8 * g["ww"], 2 * g["w_words"]),
                 MemoryEstimate("expert biases ping/pong", 8 * g["wb"], 2 * g["b_words"])]
    W = beat_bytes(cfg)
    mems.append(MemoryEstimate("frame memory (weights, image, output)", 8 * W,
                               math.ceil(frame_memory_bytes(cfg) / W)))
    return mems


def estimate(cfg: Config, design: str = "top") -> FitEstimate:
    """Resource estimate of a board design: ``"top"`` (the accelerator, hw/top, on on-chip
    frame memory) or ``"demo"`` (boards/demo_device.py)."""
    h = cfg.hw
    if design == "top":
        est = FitEstimate(cfg.name, design, h.macs_per_cycle
                          + 2 * h.attn_parallel * h.attn_dot_width, _top_memories(cfg))
        est.notes.append("multipliers: PE array + attention lanes; LayerNorm / softmax / GELU / "
                         "router add a few")
    elif design == "demo":
        from boards.demo_device import default_scratch_bytes
        W = h.mem_bytes_per_cycle
        est = FitEstimate(cfg.name, design, 0, [MemoryEstimate(
            "scratch memory", 8 * W, default_scratch_bytes(cfg, h.array_cols) // W)])
    else:
        raise ValueError(f"unknown design {design!r}: 'top' or 'demo'")
    return est


def check_fit(device, est: FitEstimate, *, margin: float = 1.0) -> None:
    """Raise FitError if ``est`` exceeds ``margin`` x the device's DSPs or BRAM blocks."""
    problems = []
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
        if est.design == "top":
            own = sum(x.blocks for x in est.memories if not x.name.startswith("frame memory"))
            hint = (f" -- this board has no external-memory controller in edge-moe yet, so the "
                    f"weights must fit on chip (the accelerator's own buffers alone need about "
                    f"{own} blocks): use a small config such as the board's default "
                    f"(`edge-moe build --list`)")
        raise FitError(f"config {est.config!r} does not fit the {device.name}: "
                       + "; ".join(problems) + hint)
