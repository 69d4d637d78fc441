"""Design-space exploration: the accelerator's hardware sizes for a board or a resource budget.

:func:`search` walks every legal combination of the ``HardwareConfig`` knobs that change what
the accelerator costs or how fast it runs, for one model:

- ``array_rows`` R and ``array_cols`` C (the PE array), ``attn_parallel`` p and
  ``attn_dot_width`` dw (the attention unit), ``mem_bytes_per_cycle`` W (the memory beat) and
  ``attn_overlap`` (each head's attention in the background of the next head's QKV GEMMs);
- candidates: R, C, dw and W powers of two (``check_top_level`` refuses any other: buffer
  lanes, beat-aligned addressing) up to the model's bounds, p every integer 1 .. tokens,
  overlap on and off; a combination is legal only if it builds a ``Config`` and passes
  ``check_top_level``, ``TopGeometry.of`` (the attention normalizer's width must be a power of
  two as well) and the expert prefetcher's ``load_geometry`` checks;
- there are no buffer knobs: every on-chip buffer's size follows from the model and the widest
  lane group G = max(R, C, dw, nw, W / act bytes); ``fifo_depth`` does not change the cycle
  model; the memory latency, burst sizes and clock belong to the target and are kept;
- a board build without external memory (the ECP5 boards' ``edge-moe build`` today) keeps the
  whole frame memory on chip, 8 W bits wide, so W costs block RAM there and is bounded by
  legality alone; sized as if it had external memory, W x clock is bounded by the board's DRAM
  peak (``Board.dram_bytes_per_s``), and a ``--budget`` part's by ``dram_gbs``.

Each point is costed with the fit model (boards/fit.py: ``estimate`` for block RAM and the
array + attention multipliers, ``other_multipliers``, ``lut_estimate``; overlap has no
resource term, it is a few sequencer states) and the frame cycle model (sim/cycles/frame.py):
cycles per frame, multipliers, block RAM blocks, LUTs, and the DRAM bandwidth a frame needs
(bytes per frame / frame time). Points that fit the target (every resource <= 100 %) are
candidates; the result is their Pareto set (minimal in cycles, multipliers, block RAM, LUTs
and, when the frame memory is external, W), and the chosen point is the one with the fewest
cycles (then fewest multipliers, blocks, LUTs) whose every resource is <= 85 % of the
target's: that point is on the Pareto set, since anything dominating it would also fit within
85 % and come first.

Every legal combination is costed; what makes that fast is splitting the work, not pruning:

1. Legality splits: every rule reads either (R, C, W, overlap) or (p, dw) (no ``mult_budget``
   is set while searching; the fit test takes its place), so each legal pair of halves is a
   legal point.
2. ``frame_cost`` is :func:`~sim.cycles.frame.descriptor_costs` (each descriptor on its own)
   followed by :func:`~sim.cycles.frame.sequencer_timeline` (the sequencer's timeline with
   background attention). A descriptor's own cost reads (p, dw) if it is an ATTENTION and
   (R, C, W) otherwise; the program (which descriptors, which run in the background) depends
   on C and overlap; the timeline reads only the memory's beat and latency. So the own costs
   are computed once per half, and per point only the timeline runs.
3. Block RAM depends on the hardware only through (R, C, W, G): the buffers are G activations
   wide, the expert ping/pong buffers follow (C, W), the frame memory W. ``estimate`` runs once
   per (R, C, W, G).

tests/boards/test_dse.py checks the result against a brute force that builds every combination
of a small space as a ``Config`` and costs it with ``frame_cost`` and ``estimate`` directly.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from sim.config import DESC_BYTES, Config, ConfigError, check_top_level, get_config
from sim.cycles.attention import attention_schedule
from sim.cycles.frame import descriptor_costs, frame_cost, sequencer_timeline
from sim.cycles.moe import load_geometry
from sim.memory_image import HwOp, lower_program

from boards.boards import Board
from boards.fit import (bank_mux_inputs, dp16kd_blocks, estimate, lane_multipliers,
                        lut_estimate, other_multipliers)

__all__ = ["Target", "Point", "DseResult", "DseError", "MODELS", "HEADROOM", "board_target",
           "budget_target", "parse_budget", "search", "legal_values", "point_config",
           "ramb36_blocks", "pareto_mask", "BUDGET_HELP"]

HEADROOM = 0.85          # the chosen point uses at most this share of every resource

# --model NAME -> the preset whose model and numeric formats are searched
MODELS = {"m3vit": "m3vit-tiny-cityscapes", "tiny": "tiny"}

# (width, depth) shapes of a Xilinx RAMB36 (36 Kbit) block
RAMB36_SHAPES = ((1, 32768), (2, 16384), (4, 8192), (9, 4096), (18, 2048), (36, 1024), (72, 512))

BUDGET_HELP = ("dsp=N: hardware multipliers (DSP48E2 slices on a Xilinx part); bram_kib=N: "
               "block RAM in KiB, used in 36 Kbit RAMB36 blocks of 4.5 KiB; lut=N: 6-input "
               "LUTs; optional mhz=F: the accelerator's clock (default 300); optional "
               "dram_gbs=F: peak DRAM bandwidth in GB/s (bounds mem_bytes_per_cycle x clock; "
               "default: unbounded). The frame memory (weights, image) is external, as in "
               "`edge-moe elaborate`'s AXI top")


class DseError(ValueError):
    """No legal point fits the target, or a bad target / budget (one line)."""


def ramb36_blocks(width: int, depth: int) -> int:
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in RAMB36_SHAPES)


@dataclass(frozen=True)
class Target:
    """What a design must fit: multipliers, block RAM blocks, LUTs, and how memory is reached.

    ``frame_memory_on_chip``: the frame memory (weights, program, image, output) is block RAM
    (a board without an external-memory controller in edge-moe); ``hw`` gives the fields the
    search keeps (memory latency, bursts, FIFO depth, counters); ``clock_mhz`` the design clock.
    """

    name: str
    dsps: int
    brams: int
    bram_kind: str                   # "DP16KD" (18 Kbit) or "RAMB36" (36 Kbit)
    luts: int
    lut_kind: str                    # "LUT4" or "LUT6"
    clock_mhz: float
    frame_memory_on_chip: bool
    hw_preset: str                   # preset whose non-searched hardware fields are kept
    dram_bytes_per_s: float | None = None
    memory_note: str = ""

    def blocks(self, width: int, depth: int) -> int:
        return (dp16kd_blocks if self.bram_kind == "DP16KD" else ramb36_blocks)(width, depth)

    def memory_blocks(self, mem) -> int:
        """Blocks of a :class:`~boards.fit.MemoryEstimate` (its ECP5 per-lane layout, if any)."""
        return mem.blocks if self.bram_kind == "DP16KD" else ramb36_blocks(mem.width, mem.depth)

    def limits(self, share: float = 1.0) -> tuple:
        return (share * self.dsps, share * self.brams, share * self.luts)


def board_target(board: Board, *, external_memory: bool = False) -> Target:
    """The target of a board entry. ``external_memory``: count only the accelerator's own
    on-chip memory, as a build with an external-memory controller would (none exists yet)."""
    from boards.build import design_clock_hz      # imports amaranth-boards
    dev = board.dev
    if dev.family != "ecp5":
        raise DseError(f"dse knows ECP5 boards only, {board.name} is {dev.family}")
    clock = design_clock_hz(board, board.platform_class()()) / 1e6
    if external_memory:
        # on DRAM the accelerator runs on the LiteDRAM core's user clock (the ULX3S: its
        # oscillator, not the PLL clock of its on-chip build)
        from boards.dram_board import user_clock_hz
        from boards.litedram_core import dram_boards
        if board.name in dram_boards():
            clock = user_clock_hz(board) / 1e6
    dram = board.dram_bytes_per_s if external_memory else None
    note = (f"`edge-moe build` gives the {board.name} no external memory yet: "
            + ("sizing as if it had (frame memory not counted; "
               + (f"W x clock bounded by its DRAM's {dram / 1e6:g} MB/s peak" if dram else
                  "no DRAM figure for this board, bandwidth unbounded")
               + "); no such build exists, the frame memory stays on chip"
               if external_memory else
               "the frame memory is on-chip block RAM, 8 x mem_bytes_per_cycle bits wide, so "
               "mem_bytes_per_cycle costs block RAM and no DRAM bounds it"))
    return Target(board.name, dev.dsps, dev.brams, "DP16KD", dev.luts, "LUT4", clock,
                  not external_memory, board.config, dram, note)


def parse_budget(text: str) -> dict:
    """``dsp=N,bram_kib=N,lut=N[,mhz=F][,dram_gbs=F]`` -> dict (DseError naming the problem)."""
    need, opt = ("dsp", "bram_kib", "lut"), ("mhz", "dram_gbs")
    out = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        key, eq, val = item.partition("=")
        key = key.strip()
        if not eq:
            raise DseError(f"--budget: {item!r} is not KEY=VALUE ({', '.join(need + opt)})")
        if key not in need + opt:
            raise DseError(f"--budget: unknown key {key!r}; keys: {', '.join(need + opt)}")
        if key in out:
            raise DseError(f"--budget: {key} given twice")
        try:
            v = int(val) if key in need else float(val)
        except ValueError:
            raise DseError(f"--budget: {key}={val!r} is not a{'n integer' if key in need else ' number'}") from None
        if not v > 0:
            raise DseError(f"--budget: {key} must be > 0, got {val}")
        out[key] = v
    missing = [k for k in need if k not in out]
    if missing:
        raise DseError(f"--budget: missing {', '.join(missing)} (need {', '.join(need)})")
    return out


def budget_target(text: str, model_preset: str) -> Target:
    b = parse_budget(text)
    blocks = int(b["bram_kib"] * 1024 * 8 // (36 * 1024))
    if blocks < 1:
        raise DseError(f"--budget: bram_kib={b['bram_kib']} is less than one 36 Kbit block")
    dram = b.get("dram_gbs")
    note = ("frame memory external (AXI master, `edge-moe elaborate`); "
            + (f"DRAM peak {dram:g} GB/s bounds mem_bytes_per_cycle" if dram else
               "no DRAM bound given (dram_gbs=): mem_bytes_per_cycle bounded by legality only"))
    return Target("budget", b["dsp"], blocks, "RAMB36", b["lut"], "LUT6", b.get("mhz", 300.0),
                  False, model_preset, dram * 1e9 if dram else None, note)


@dataclass(frozen=True)
class Point:
    """One legal hardware point and what it costs."""

    R: int
    C: int
    W: int
    p: int
    dw: int
    nw: int
    overlap: bool
    cycles: int
    mults: int
    brams: int
    luts: int
    bytes_per_frame: int

    def knobs(self) -> dict:
        return {"array_rows": self.R, "array_cols": self.C, "attn_parallel": self.p,
                "attn_dot_width": self.dw, "mem_bytes_per_cycle": self.W,
                "attn_overlap": self.overlap}

    def gbytes_per_s(self, clock_mhz: float) -> float:
        """DRAM bandwidth the frame needs: bytes per frame / frame time."""
        return self.bytes_per_frame * clock_mhz * 1e6 / self.cycles / 1e9

    def objectives(self, with_w: bool) -> tuple:
        return (self.cycles, self.mults, self.brams, self.luts) + ((self.W,) if with_w else ())


@dataclass
class DseResult:
    model: str
    target: Target
    base: Config
    pareto: list                     # Points, fewest cycles first
    chosen: Point | None
    evaluated: int                   # points costed
    legal: int                       # legal points of the whole space
    fitting: int                     # of those, points within 100 % of every resource
    smallest: dict = field(default_factory=dict)   # least need per resource over legal points
    seconds: float = 0.0

    @property
    def with_w(self) -> bool:
        return not self.target.frame_memory_on_chip

    def config(self, point: Point) -> Config:
        return point_config(self.base, point, self.target)

    def block_ram_breakdown(self, point: Point, n: int = 3) -> str:
        """The ``n`` largest memories a point keeps in block RAM, as text."""
        cfg = _with_hw(self.base, **point.knobs())
        mems = [(self.target.memory_blocks(x), x.name)
                for x in estimate(cfg, luts=False).memories
                if self.target.frame_memory_on_chip or not x.name.startswith("frame memory")]
        return ", ".join(f"{name} {b}" for b, name in sorted(mems, reverse=True)[:n])


def _pow2_upto(n: int) -> list[int]:
    return [1 << i for i in range(max(n, 1).bit_length()) if 1 << i <= n]


def legal_values(base: Config) -> dict:
    """Candidate values of each knob (a superset of the legal ones, module docstring)."""
    m = base.model
    return {"R": _pow2_upto(m.max_inner_dim), "C": _pow2_upto(3 * m.dim),
            "W": _pow2_upto(DESC_BYTES), "p": list(range(1, m.tokens + 1)),
            "dw": _pow2_upto(m.head_dim), "overlap": [True, False]}


def _with_hw(base: Config, name: str | None = None, **hw) -> Config:
    """``base`` with some hardware fields replaced, validated like a preset (ConfigError if
    not legal, including ``TopGeometry.of``'s power-of-two normalizer width)."""
    from hw.top.geometry import TopGeometry
    cfg = Config(name or base.name, base.model, base.num, replace(base.hw, **hw))
    check_top_level(cfg)
    try:
        TopGeometry.of(cfg)
        if cfg.model.moe_blocks:
            load_geometry(cfg)                  # the expert prefetcher's own divisibility rules
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cfg


def point_config(base: Config, pt: Point, target: Target, name: str | None = None) -> Config:
    """The config of a point for ``target``: the searched knobs, the target's clock, and its
    multipliers as ``mult_budget``."""
    return _with_hw(base, name, **pt.knobs(), clock_mhz=target.clock_mhz,
                    mult_budget=target.dsps)


def base_config(model: str, target: Target) -> Config:
    """The searched model's preset with the target's non-searched hardware fields; no
    ``mult_budget`` (the fit test replaces it while searching)."""
    if model not in MODELS:
        raise DseError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    mp, hp = get_config(MODELS[model]), get_config(target.hw_preset)
    return Config(f"dse-{target.name}-{model}", mp.model, mp.num,
                  replace(hp.hw, mult_budget=None, clock_mhz=target.clock_mhz))


def _brams(cfg: Config, target: Target) -> int:
    return sum(target.memory_blocks(x) for x in estimate(cfg, luts=False).memories
               if target.frame_memory_on_chip or not x.name.startswith("frame memory"))


def pareto_mask(obj: np.ndarray) -> np.ndarray:
    """Rows of ``obj`` (n x k, minimize all) that no other row dominates (<= everywhere,
    < somewhere). Sweeps rows in lexicographic order: a dominator always comes first."""
    order = np.lexsort(obj.T[::-1])
    keep = np.zeros(len(obj), dtype=bool)
    front = np.empty((0, obj.shape[1]), dtype=obj.dtype)
    for i in order:
        row = obj[i]
        le = np.all(front <= row, axis=1) & np.any(front < row, axis=1)
        if not le.any():
            keep[i] = True
            front = np.vstack([front, row])
    return keep


def search(model: str, target: Target, progress=None, values: dict | None = None) -> DseResult:
    """Every legal point, its Pareto set for ``target`` and the chosen point (module docstring).
    ``progress(message)`` is called now and then once the search has run a few seconds.
    ``values``: candidate values of some knobs (keys of :func:`legal_values`) instead of all
    (tests: a space small enough for a brute force)."""
    t0 = time.monotonic()
    last = [t0]

    def tick(msg):
        now = time.monotonic()
        if progress and now - t0 > 3 and now - last[0] > 2:
            last[0] = now
            progress(f"[{now - t0:5.1f} s] {msg}")

    base = base_config(model, target)
    vals = {**legal_values(base), **(values or {})}
    halves = _shape_halves(base, target, vals, tick)
    attn, n_attn_legal = _attention_halves(base, halves, vals, tick)
    points = _cost_points(base, target, halves, attn, tick)
    res = DseResult(model, target, base, [], None, len(points), len(halves) * n_attn_legal, 0)
    res.smallest = {"mults": min(x.mults for x in points), "brams": min(x.brams for x in points),
                    "luts": min(x.luts for x in points),
                    "brams_point": min(points, key=lambda x: (x.brams, x.mults, x.cycles))}
    if target.frame_memory_on_chip:
        res.smallest["frame_memory_blocks"] = min(
            sum(target.memory_blocks(x) for x in estimate(h.cfg, luts=False).memories
                if x.name.startswith("frame memory")) for h in halves.values())
    lim = target.limits()
    fit = [x for x in points if x.mults <= lim[0] and x.brams <= lim[1] and x.luts <= lim[2]]
    res.fitting = len(fit)
    if fit:
        tick(f"Pareto set of {len(fit):,} points")
        obj = np.array([x.objectives(res.with_w) for x in fit], dtype=np.int64)
        res.pareto = sorted((x for x, k in zip(fit, pareto_mask(obj)) if k),
                            key=lambda x: x.objectives(res.with_w))
        lim85 = target.limits(HEADROOM)
        ok = [x for x in res.pareto if x.mults <= lim85[0] and x.brams <= lim85[1]
              and x.luts <= lim85[2]]
        res.chosen = ok[0] if ok else None
    res.seconds = time.monotonic() - t0
    return res


@dataclass
class _Half:
    """A legal (R, C, W, overlap) half: its config (p = dw = 1), program, own descriptor costs
    (attention entries are replaced per point) and bytes per frame."""
    cfg: Config
    program: list
    own: list
    nbytes: int


def _shape_halves(base: Config, target: Target, vals: dict, tick) -> dict:
    """{(R, C, W, overlap): _Half} of the legal shapes (W above the target's DRAM bound left
    out). Programs are lowered once per (C, overlap): nothing else of the hardware changes
    which descriptors a frame has (the brute-force test checks it)."""
    programs, out = {}, {}
    shapes = [(R, C, W, o) for R in vals["R"] for C in vals["C"] for W in vals["W"]
              for o in vals["overlap"]]
    for i, (R, C, W, o) in enumerate(shapes):
        tick(f"array / memory shapes: {i} of {len(shapes)}")
        try:
            cfg = _with_hw(base, array_rows=R, array_cols=C, mem_bytes_per_cycle=W,
                           attn_overlap=o, attn_parallel=1, attn_dot_width=1)
        except ConfigError:
            continue
        if (target.dram_bytes_per_s is not None
                and W * target.clock_mhz * 1e6 > target.dram_bytes_per_s):
            continue
        if (C, o) not in programs:
            programs[(C, o)] = lower_program(cfg)
        program = programs[(C, o)]
        f = frame_cost(cfg, program=program)
        out[(R, C, W, o)] = _Half(cfg, program, descriptor_costs(cfg, program),
                                  f.bytes_read + f.bytes_written)
    if not out:
        bound = ""
        if target.dram_bytes_per_s is not None:
            bound = (f": the DRAM's {target.dram_bytes_per_s / 1e6:g} MB/s at "
                     f"{target.clock_mhz:g} MHz allow at most "
                     f"{target.dram_bytes_per_s / (target.clock_mhz * 1e6):g} bytes per cycle, "
                     f"and a memory beat must hold a whole {base.num.act.storage_bytes}-byte "
                     f"activation and pass check_top_level")
        raise DseError(f"no legal array / memory shape for {base.name} on the "
                       f"{target.name}{bound}")
    return out


def _attention_halves(base: Config, halves: dict, vals: dict, tick) -> tuple[dict, int]:
    """({(p, dw): (nw, {(m, nheads): own cost})} of the legal attention shapes, their number):
    the own cost of every ATTENTION shape any half's program has."""
    attn_descs = {}
    for h in halves.values():
        for d in h.program:
            if d.op is HwOp.ATTENTION:
                attn_descs.setdefault((d.m, d.nheads), d)
    descs = list(attn_descs.values())
    cfg0 = next(iter(halves.values())).cfg
    out = {}
    for dw in vals["dw"]:
        for p in vals["p"]:
            tick(f"attention shapes: dw {dw}, p {p} of {len(vals['p'])}")
            try:
                cfg = _with_hw(cfg0, attn_parallel=p, attn_dot_width=dw)
            except ConfigError:
                continue
            nw = attention_schedule(cfg).norm_width     # attention_params' own nw
            costs = descriptor_costs(cfg, descs)
            out[(p, dw)] = (nw, {(d.m, d.nheads): c for d, c in zip(descs, costs)})
    if not out:
        raise DseError(f"no legal attention shape for {base.name}")
    return out, len(out)


def _cost_points(base: Config, target: Target, halves: dict, attn: dict, tick) -> list[Point]:
    """Every combination of a shape half and an attention half, costed."""
    brams_cache, logic_cache, mux_cache, points = {}, {}, {}, []
    for i, ((R, C, W, o), h) in enumerate(halves.items()):
        tick(f"costing shape {i} of {len(halves)} ({len(points):,} points)")
        V = W // base.num.act.storage_bytes
        slots = [(j, (d.m, d.nheads)) for j, d in enumerate(h.program)
                 if d.op is HwOp.ATTENTION]
        own = list(h.own)
        # Without a background ATTENTION the sequencer never waits: the frame is the timeline
        # with free attention plus each attention's own cycles (the brute-force test checks).
        serial = not any(d.op is HwOp.ATTENTION and d.background for d in h.program)
        if serial:
            for j, _ in slots:
                own[j] = (0, 0, 0, 0)
            t_rest, _ = sequencer_timeline(h.cfg, h.program, own, want_times=False)
        for (p, dw), (nw, acost) in attn.items():
            if serial:
                cycles = t_rest + sum(acost[key][0] for _, key in slots)
            else:
                for j, key in slots:
                    own[j] = acost[key]
                cycles, _ = sequencer_timeline(h.cfg, h.program, own, want_times=False)
            G = max(R, C, dw, nw, V)                    # TopGeometry's lanes per buffer word
            if (R, C, W, G) not in brams_cache:
                hw = replace(h.cfg.hw, attn_parallel=p, attn_dot_width=dw)
                brams_cache[(R, C, W, G)] = _brams(Config(base.name, base.model, base.num, hw),
                                                   target)
            key = (R, C, p, dw, nw, G)
            if key not in logic_cache:
                # The multiplier and LUT functions read only cfg.hw once nw and the word
                # width are given: a bare view saves building (and validating) a Config.
                view = _HwView(replace(h.cfg.hw, attn_parallel=p, attn_dot_width=dw))
                # The bank's wiring follows the program, which neither the attention size nor
                # R and W change: _shape_halves lowers one per (C, overlap), shared by its shapes.
                if (C, o) not in mux_cache:
                    mux_cache[(C, o)] = bank_mux_inputs(h.cfg, h.program)
                logic_cache[key] = (lane_multipliers(view) + other_multipliers(view, nw),
                                    lut_estimate(view, target.lut_kind, G * base.num.act.bits,
                                                 mux_cache[(C, o)]))
            mults, luts = logic_cache[key]
            points.append(Point(R, C, W, p, dw, nw, o, cycles, mults,
                                brams_cache[(R, C, W, G)], luts, h.nbytes))
    return points


@dataclass(frozen=True)
class _HwView:
    """Stands in for a Config where only ``cfg.hw`` is read."""
    hw: object
