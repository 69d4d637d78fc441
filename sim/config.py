"""The one configuration object: model sizes, numeric formats and hardware sizes.

Every RTL generator, the golden model, the cycle model and the weight exporter take a
:class:`Config`; no width or size is written as a literal anywhere else. Presets:

- ``tiny``: a 2-block, 17-token model for fast tests (CI).
- ``tiny-ecp5``: the tiny model with the hardware of the ECP5 boards' bitstreams (lean attention).
- ``m3vit-tiny-cityscapes``: the M3ViT configuration of the published Edge-MoE design, on a
  16x16 array (Xilinx ZCU102 class, 300 MHz).
- ``m3vit-ecp5-85f``: the same model on a 4x16 array: all its multipliers within ~85 % of the
  156 MULT18X18D of an ECP5-85F.

Configs are frozen and validated on construction: an inconsistent one raises ``ConfigError`` that
names the offending field.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from sim.fixed import QFormat

__all__ = ["ConfigError", "ModelConfig", "NumericsConfig", "HardwareConfig", "Config",
           "PRESETS", "get_config", "GemmShape", "check_top_level", "DESC_BYTES", "DESC_INDEX_BITS",
           "DSP_TARGETS", "EXPERT_WEIGHTS", "BUFFER_WIRINGS", "GELU_SITES", "PE_MULT_REGISTERS",
           "generic_config"]

DESC_BYTES = 64          # one sequencer descriptor (sim/memory_image.py): 16 32-bit words
DESC_INDEX_BITS = 16     # descriptor index in the ERROR register (bits 16-31, hw/top/csr.py)

# How a hard multiplier is built (hw/fabric): "generic" is plain Amaranth (any simulator, any
# vendor tool), "ecp5" instantiates the MULT18X18D so its registers sit inside the block.
DSP_TARGETS = ("generic", "ecp5")
# Where the expert GEMMs take their weights from (HardwareConfig.expert_weights): "prefetch"
# loads each chosen expert's whole fc1 / fc2 matrix into on-chip ping/pong buffers
# (hw/moe/prefetcher.py); "stream" reads weight tiles from external memory during the GEMM,
# like a dense layer (hw/moe/expert_stream.py), and needs no weight buffers.
EXPERT_WEIGHTS = ("prefetch", "stream")
# Which buffers the buffer bank's clients reach (HardwareConfig.buffer_wiring): "full" wires every
# client to every memory (any descriptor program); "program" only to the memories the config's
# own frame program uses (sim.memory_image.wired_buffers): most clients then need no memory mux
# and most memories no write mux, and the sequencer refuses a descriptor naming another buffer.
BUFFER_WIRINGS = ("full", "program")
# Where the MLP's / experts' GELU runs (HardwareConfig.gelu_site): "epilogue" on fc1's output rows
# (C lanes, hw/array/epilogue.py), or "act" on fc2's activation beats as they leave the buffer
# (R lanes, hw/top/buffers.py ReadPipe): H then holds fc1's requantized outputs and GELU is
# applied to each value as fc2 reads it, the same function of the same act-format value, so
# every result is unchanged. On a wide, shallow array (C > R) "act" needs C / R times fewer
# lanes; it moves GELU's 3 cycles from the epilogue to the activation read path.
GELU_SITES = ("epilogue", "act")

# The registers of every PE's multiplier (hw.array.pe, flags of hw.fabric.Multiplier): the
# operands are registered at the DSP's inputs (the activation fans out along a row and the
# weight comes through the bank mux) and the product at its output, so the PE's own stage is
# only P -> psum adder -> psum register. Without the pipeline register: on the ECP5 the A -> P
# multiply (~3.9 ns) then stays inside the block between its input and output registers, and
# nextpnr times the block as fully registered (REGS_ALL) either way. The latency is the same
# on every target; HardwareConfig.pe_mult_latency counts it for the RTL and the cycle model.
PE_MULT_REGISTERS = MappingProxyType({"input_reg": True, "pipeline_reg": False, "output_reg": True})


class ConfigError(ValueError):
    """An inconsistent or unknown configuration."""


@dataclass(frozen=True)
class GemmShape:
    """One linear layer as a GEMM: (M x K) activations times (K x N) weights, run ``count`` times."""

    name: str
    m: int
    k: int
    n: int
    count: int = 1

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n * self.count


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the M3ViT encoder (section 1 of the architecture brief)."""

    image_channels: int
    image_height: int
    image_width: int
    patch: int
    dim: int
    depth: int
    heads: int
    mlp_hidden: int
    moe_blocks: tuple[int, ...]
    experts: int
    top_k: int
    expert_hidden: int
    tasks: int
    ln_eps: float = 1e-6
    final_norm: bool = True

    @property
    def grid(self) -> tuple[int, int]:
        return self.image_height // self.patch, self.image_width // self.patch

    @property
    def patches(self) -> int:
        gh, gw = self.grid
        return gh * gw

    @property
    def tokens(self) -> int:
        """Patches plus the class token."""
        return self.patches + 1

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def attn_scale(self) -> float:
        return self.head_dim ** -0.5

    @property
    def patch_dim(self) -> int:
        """Inner dimension of the patch-embedding GEMM (C * patch * patch, in (c, kh, kw) order)."""
        return self.image_channels * self.patch * self.patch

    def is_moe(self, block: int) -> bool:
        return block in self.moe_blocks

    @property
    def max_inner_dim(self) -> int:
        """Largest K of any dot product in the network (sets the accumulator width)."""
        return max(self.patch_dim, self.dim, self.mlp_hidden, self.expert_hidden, self.head_dim,
                   self.tokens)

    def gemms(self) -> list[GemmShape]:
        """Every linear layer of one frame; MoE expert GEMMs count k tokens-per-token on average."""
        n, d = self.tokens, self.dim
        dense = self.depth - len(self.moe_blocks)
        moe = len(self.moe_blocks)
        out = [GemmShape("patch_embed", self.patches, self.patch_dim, d),
               GemmShape("qkv", n, d, 3 * d, self.depth),
               GemmShape("proj", n, d, d, self.depth)]
        if dense:
            out += [GemmShape("mlp_fc1", n, d, self.mlp_hidden, dense),
                    GemmShape("mlp_fc2", n, self.mlp_hidden, d, dense)]
        if moe:
            out += [GemmShape("gate", n, d, self.experts, moe),
                    GemmShape("expert_fc1", n * self.top_k, d, self.expert_hidden, moe),
                    GemmShape("expert_fc2", n * self.top_k, self.expert_hidden, d, moe)]
        return out

    @property
    def linear_macs(self) -> int:
        return sum(g.macs for g in self.gemms())

    @property
    def attention_macs(self) -> int:
        """QK^T and AV over all heads and blocks."""
        return 2 * self.depth * self.heads * self.tokens * self.tokens * self.head_dim

    @property
    def macs_per_frame(self) -> int:
        return self.linear_macs + self.attention_macs


@dataclass(frozen=True)
class NumericsConfig:
    """Fixed-point formats and approximation parameters (docs/numerics.md explains each).

    ``bias`` has the accumulator's fraction bits (act.frac + weight.frac) so it adds without a shift.
    """

    act: QFormat = QFormat(8, 10)           # activations, embeddings, LN beta, pos embed, pixels
    weight: QFormat = QFormat(2, 14)        # every weight matrix (linear, gate, patch embed)
    bias: QFormat = QFormat(8, 24)          # biases, in accumulator scale (32 bits: |b| < 128)
    ln_gamma: QFormat = QFormat(6, 12)      # LayerNorm gamma (18 bits: the multiplier operand)
    ln_norm: QFormat = QFormat(6, 12)       # normalized (x - mean) / std before gamma
    acc_bits: int = 48                      # MAC accumulator width
    score: QFormat = QFormat(10, 10)        # attention / router logits in the log2 domain
    exp: QFormat = QFormat(1, 15, signed=False)  # exp2 outputs and router probabilities, in [0, 1]
    const_frac: int = 16                    # fraction bits of constants (scale * log2 e, log2 e)
    recip_frac: int = 16                    # extra fraction bits of 1/sum in softmax
    exp2_segments: int = 32                 # PWL segments of 2^f on f in [0, 1)
    gelu_segments: int = 64                 # PWL segments of d(a) = a * Phi(-a) on [0, gelu_range)
    gelu_range: float = 4.0                 # beyond this |x|, GELU(x) = ReLU(x)
    gelu_table_frac: int = 16               # fraction bits of the GELU correction table
    rsqrt_lut_bits: int = 7                 # LUT index bits of 1/sqrt(m), m in [0, 4)
    rsqrt_frac: int = 15                    # fraction bits of 1/sqrt(m) (LUT and Newton step)

    @property
    def acc_frac(self) -> int:
        return self.act.frac_bits + self.weight.frac_bits


@dataclass(frozen=True)
class HardwareConfig:
    """Sizes of the accelerator."""

    array_rows: int = 16              # PE array rows (inner-dimension lanes)
    array_cols: int = 16              # PE array columns (output lanes)
    attn_parallel: int = 4            # p: query rows processed at once by the attention unit
    attn_dot_width: int = 64          # multipliers per attention lane (head_dim: one key per cycle)
    attn_overlap: bool = True         # QKV GEMM per head; each head's attention runs in the
    #   background while the array computes the next head's Q/K/V (sim.memory_image.lower_program)
    hidden_rows: int | None = None    # rows of the H buffer (None: every buffer row). Fewer rows
    #   than tokens tile the dense MLP, the patch embedding and each expert's token queue into
    #   blocks of this many rows (sim.memory_image.lower_program); then the attention output
    #   cannot share H and needs attn_overlap=False (it goes to XN)
    kv_heads: int | None = None       # heads whose K and V columns the K / V memories hold
    #   (None: every head). Fewer: the Q GEMM runs once, then per group of kv_heads heads the
    #   K / V GEMMs of those heads into K / V columns 0 .. kv_heads * head_dim - 1 and their
    #   attention, whose output overwrites the heads' Q columns in place (ATT lives in Q);
    #   needs attn_overlap=False (sim.memory_image.lower_program, docs/top_level.md)
    mem_bytes_per_cycle: int = 16     # external memory bandwidth
    mem_latency: int = 32             # external memory read latency, cycles
    fifo_depth: int = 4               # default depth of inter-unit stream FIFOs
    clock_mhz: float = 300.0          # target clock for reported times
    mult_budget: int | None = None    # hardware multipliers available on the target (None: no limit)
    # --- PE array / GEMM engine fields ---
    gemm_counter_bits: int = 32       # GEMM engine cycle / MAC-active counters (per GEMM; wrap)
    epilogue_score_dsp: bool | None = None  # MoE-combine score multiply (array_cols of them) on
    #   DSPs (True) or shift-add LUTs (False); None: DSPs only if mult_budget has room for them
    dsp_target: str = "generic"       # how the PE multipliers are built (DSP_TARGETS); "ecp5"
    #   puts their registers inside the MULT18X18D. Same latency either way; simulators take
    #   the generic build (generic_config)
    bram_target: str = "generic"      # how the activation buffers are built (DSP_TARGETS);
    #   "ecp5" uses DP16KD with their output register and no port-collision logic (a read of
    #   the address written in the same cycle is undefined). Same latency either way
    fanout_target: str = "generic"    # how the GEMM engine's, the epilogue's and the attention
    #   lanes' pipeline enables (thousands of clock-enable pins each) reach their registers
    #   (DSP_TARGETS): "ecp5" over global networks (hw/fabric/global_buffer.py). Same cycles
    # --- MoE path fields ---
    mem_addr_bits: int = 32           # byte address width of the external memory bus
    mem_max_burst: int = 16           # longest read/write burst, beats (the DMA splits transfers)
    mem_max_outstanding: int = 8      # read bursts the DRAM model queues (must cover the latency)
    moe_counter_bits: int = 32        # MoE path status counters (bytes read/written, stall cycles)
    buffer_wiring: str = "full"       # bank clients -> memories (BUFFER_WIRINGS): every one, or
    #   only those of the config's frame program (narrower crossbar, for the FPGA builds)
    expert_weights: str = "prefetch"  # expert fc1 / fc2 weights: on-chip ping/pong buffers
    #   ("prefetch") or tiles streamed from external memory during the GEMM ("stream")
    job_stage: bool = True            # a register between the sequencer and each unit path's job
    #   port (hw/top/job_stage.py): one cycle per job (mostly hidden), the paths' start logic
    #   no longer behind the sequencer's state
    gelu_site: str = "epilogue"       # where fc1 -> fc2's GELU runs (GELU_SITES): on fc1's output
    #   rows (C lanes) or on fc2's activation reads (R lanes); the same results

    @property
    def macs_per_cycle(self) -> int:
        return self.array_rows * self.array_cols

    @property
    def gelu_on_reads(self) -> bool:
        """GELU runs on fc2's activation reads (``gelu_site`` "act"), not in fc1's epilogue."""
        return self.gelu_site == "act"

    @property
    def pe_mult_latency(self) -> int:
        """Cycles the PE's registered multiplier adds to the array (PE_MULT_REGISTERS)."""
        return sum(PE_MULT_REGISTERS.values())


@dataclass(frozen=True)
class Config:
    """Everything that sizes edge-moe. Construct via a preset and :func:`dataclasses.replace`."""

    name: str
    model: ModelConfig
    num: NumericsConfig = field(default_factory=NumericsConfig)
    hw: HardwareConfig = field(default_factory=HardwareConfig)

    def __post_init__(self):
        _validate(self)

    # ----- presets -----
    @classmethod
    def tiny(cls) -> "Config":
        return check_top_level(cls("tiny", ModelConfig(
            image_channels=3, image_height=32, image_width=32, patch=8, dim=32, depth=2, heads=2,
            mlp_hidden=64, moe_blocks=(1,), experts=4, top_k=2, expert_hidden=48, tasks=2),
            hw=HardwareConfig(array_rows=4, array_cols=4, attn_parallel=2, attn_dot_width=16,
                              mem_bytes_per_cycle=8, mem_latency=8, clock_mhz=100.0)))

    @classmethod
    def tiny_ecp5(cls) -> "Config":
        # The tiny model as built for the ECP5 boards (boards/boards.py). Attention p = 1 and
        # 4-wide dot products: the attention unit needs an eighth of tiny's multipliers, and
        # the on-chip buffers' words (as wide as the widest lane group) shrink from 256 to 64
        # bits, which quarters their read/write crossbars -- the congested part of the
        # routing (docs/boards.md): with tiny's hardware the build used all 156 MULT18X18D, 60 %
        # of the LUTs, and did not route in an hour; with 8-wide dots it routed only after some
        # placements. Attention is a small part of a tiny frame, so this costs ~10 % cycles.
        tiny = cls.tiny()
        # The bank's clients reach only the memories of this config's program
        # (buffer_wiring="program"): narrower read / write muxes, the routing's hot spot.
        # The multipliers' registers are the MULT18X18D's own (dsp_target="ecp5"): with the
        # generic target Yosys leaves them in the fabric and each multiply is a 3.9 ns
        # combinational block between fabric registers (the PE products: ~190 routed endpoints
        # over 10 ns). At a 100 MHz constraint: 73.2 MHz generic, 76.1 MHz with it (session 15;
        # the session-6 build with it, placed for 50 MHz, stalled in router2).
        # The pipeline enables go over global networks (fanout_target="ecp5"): the enable /
        # ready chain through them was the critical path (17.4 ns of routing); 50.2 -> 56.5 MHz.
        # The modelled memory answers a cycle later than tiny's (9): the on-chip DRAM model
        # spends that cycle on a second register stage of read data, a copy of the beat per
        # reader (hw/top/top_with_memory.py; one beat register fanned out to every reader's
        # FIFO over the die, 12.2 ns routed). +10 cycles per frame (a real SDRAM is slower).
        return check_top_level(cls("tiny-ecp5", tiny.model,
                                   hw=replace(tiny.hw, mem_latency=tiny.hw.mem_latency + 1,
                                              attn_parallel=1, attn_dot_width=4,
                                              mult_budget=156, bram_target="ecp5",
                                              dsp_target="ecp5", buffer_wiring="program",
                                              fanout_target="ecp5")))

    @classmethod
    def m3vit_tiny(cls) -> "Config":
        # 32 B/cycle at 300 MHz = 9.6 GB/s, under half the ZCU102's 21.3 GB/s DDR4 peak: enough
        # for the expert prefetch to stay nearly hidden (docs/moe.md has the bandwidth sweep).
        return check_top_level(cls(
            "m3vit-tiny-cityscapes", _m3vit_model(),
            hw=HardwareConfig(array_rows=16, array_cols=16, attn_parallel=4, attn_dot_width=64,
                              mem_bytes_per_cycle=32, mem_latency=64, clock_mhz=300.0,
                              mult_budget=2520)))

    @classmethod
    def m3vit_ecp5_85f(cls) -> "Config":
        # A 4x8 array: 8 lanes everywhere (the buffer bank's words are 144 bits, its memories
        # half as wide and twice as deep). The 4x16 array (64 multipliers, 288-bit bank words,
        # 57k LUT4) placed and synthesized but never routed: router2 stalled at ~20k overused
        # wires in four sessions whatever was cut (docs/boards.md); with 8 columns the
        # overuse falls each iteration as on the boards that route. It costs cycles on the
        # dense GEMMs (frame 20.6M -> 28.1M: the streamed experts are bandwidth-bound either
        # way). The router's 16 gate logits leave the GEMM in two column tiles; the first
        # waits in a 129-word store (hw/top/gemm_path.py). The epilogue's score products are
        # on DSPs (as shift-add LUTs they were 9.6k LUTs at 16 columns).
        # The buffer bank wires each client to the memories of this config's program only
        # (buffer_wiring="program", hw/top/buffer_wiring.py): the bank's crossbar is what
        # congests the router (docs/boards.md).
        # Expert weights stream from external memory: the ping/pong buffers of whole fc1 / fc2
        # matrices would take 150 of the 208 DP16KD (docs/moe.md).
        # H holds 32 of the 129 token rows (24 DP16KD instead of 104; 16 rows: 16 DP16KD but
        # most expert queues, ~16 tokens each, then need two chunks), so attention is serial
        # (docs/top_level.md). K and V hold one head's columns (kv_heads=1: half the blocks of
        # all dim columns); the attention output overwrites Q in place. GELU runs on fc2's
        # 4-wide activation reads instead of fc1's output rows (gelu_site="act"): 4 GELU lanes
        # instead of one per column (~6k fewer LUTs at 16 columns), the same results.
        # No job stages (job_stage=False): with them this design's router2 did not converge in
        # three builds (seeds 1, 2; docs/boards.md), without them it routed twice.
        return check_top_level(cls(
            "m3vit-ecp5-85f", _m3vit_model(),
            hw=HardwareConfig(array_rows=4, array_cols=8, attn_parallel=1, attn_dot_width=8,
                              attn_overlap=False, hidden_rows=32, kv_heads=1,
                              mem_bytes_per_cycle=4, mem_latency=16, clock_mhz=100.0,
                              mult_budget=156, dsp_target="ecp5", bram_target="ecp5",
                              epilogue_score_dsp=True, expert_weights="stream",
                              buffer_wiring="program", fanout_target="ecp5",
                              gelu_site="act", job_stage=False)))

    # ----- derived sizes of the hardware: each is written here once -----
    @property
    def buffer_rows(self) -> int:
        """Rows of every on-chip activation buffer (tokens; the image's patches fit too)."""
        return max(self.model.tokens, self.model.patches)

    @property
    def gate_tiles(self) -> int:
        """Column tiles of the router's gate GEMM (``experts`` logits over ``array_cols``
        columns): more than one and the gate GEMM path stores the earlier tiles' rows."""
        return -(-self.model.experts // self.hw.array_cols)

    @property
    def h_rows(self) -> int:
        """Rows of the H buffer: ``hw.hidden_rows``, or every buffer row."""
        h = self.hw.hidden_rows
        return self.buffer_rows if h is None else min(h, self.buffer_rows)

    @property
    def kv_cols(self) -> int:
        """Columns of the K and V memories: ``hw.kv_heads`` heads' worth, or dim."""
        m, k = self.model, self.hw.kv_heads
        return m.dim if k is None else min(k, m.heads) * m.head_dim

    @property
    def h_tiled(self) -> bool:
        """H holds fewer rows than tokens: MLP, patch embedding and experts run in row tiles."""
        return self.h_rows < self.model.tokens

    @property
    def embed_tile(self) -> int:
        """Patches per patch-embedding tile: whole image rows of patches that fit H."""
        gw = self.model.grid[1]
        return min(self.model.patches, self.h_rows // gw * gw)

    @property
    def hidden_cols(self) -> int:
        """Values per row of the H buffer (MLP / expert hidden rows, or image patches)."""
        m = self.model
        return max(m.mlp_hidden, m.expert_hidden, m.patch_dim)

    @property
    def gemm_max_m(self) -> int:
        """Largest GEMM M (rows of one GEMM: at most a buffer's rows)."""
        return self.buffer_rows

    @property
    def gemm_max_k(self) -> int:
        """Largest GEMM K of the model's linear layers (:meth:`ModelConfig.gemms`)."""
        return max(g.k for g in self.model.gemms())

    @property
    def gemm_max_n(self) -> int:
        """Largest GEMM N of the model's linear layers (:meth:`ModelConfig.gemms`)."""
        return max(g.n for g in self.model.gemms())

    @property
    def gemm_k_tiles(self) -> int:
        """Most inner-dimension tiles of one GEMM (ceil(gemm_max_k / array_rows))."""
        return -(-self.gemm_max_k // self.hw.array_rows)

    @property
    def gemm_n_tiles(self) -> int:
        """Most output column tiles of one GEMM (ceil(gemm_max_n / array_cols))."""
        return -(-self.gemm_max_n // self.hw.array_cols)

    @property
    def load_max_n(self) -> int:
        """Most values per row of a LOAD (a row of X / XN / QKV, or of H)."""
        return max(self.model.dim, self.hidden_cols)

    @property
    def store_max_n(self) -> int:
        """Most values per row of a STORE (output tokens: dim)."""
        return self.model.dim

    # ----- derived -----
    @property
    def ideal_cycles(self) -> int:
        """MACs of a frame divided by the array's MACs per cycle."""
        return math.ceil(self.model.macs_per_frame / self.hw.macs_per_cycle)

    def to_dict(self) -> dict:
        def conv(v):
            if isinstance(v, QFormat):
                return v.to_dict()
            if dataclasses.is_dataclass(v):
                return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
            if isinstance(v, tuple):
                return list(v)
            return v
        return conv(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        try:
            model = dict(d["model"])
            model["moe_blocks"] = tuple(model["moe_blocks"])
            num = {k: (QFormat.from_dict(v) if isinstance(v, dict) else v)
                   for k, v in d["num"].items()}
            return cls(d["name"], ModelConfig(**model), NumericsConfig(**num),
                       HardwareConfig(**d["hw"]))
        except (KeyError, TypeError) as e:
            raise ConfigError(f"config dictionary is malformed: {e}") from e

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def summary(self) -> str:
        m, n, h = self.model, self.num, self.hw
        gh, gw = m.grid
        lines = [
            f"config {self.name}",
            f"  image            {m.image_channels} x {m.image_height} x {m.image_width} (C x H x W)",
            f"  patch            {m.patch} x {m.patch} -> {gh} x {gw} = {m.patches} patches",
            f"  tokens           {m.tokens} (patches + class token)",
            f"  dim              {m.dim}, {m.depth} blocks, {m.heads} heads (head dim {m.head_dim})",
            f"  dense MLP        {m.dim} -> {m.mlp_hidden} -> {m.dim}, GELU",
            f"  MoE blocks       {list(m.moe_blocks)}: {m.experts} experts, top-{m.top_k}, "
            f"expert MLP {m.dim} -> {m.expert_hidden} -> {m.dim}",
            f"  tasks            {m.tasks} (per-task router)",
            f"  final norm       {'yes' if m.final_norm else 'no'}, LN eps {m.ln_eps:g}",
            f"  MACs per frame   {m.macs_per_frame:,} ({m.linear_macs:,} linear, "
            f"{m.attention_macs:,} attention)",
            f"  numerics         act {n.act}, weight {n.weight}, bias {n.bias}, gamma {n.ln_gamma}, "
            f"acc {n.acc_bits} bits, score {n.score}, exp {n.exp}",
            f"  approximations   GELU {n.gelu_segments} segments on [0, {n.gelu_range:g}), exp2 "
            f"{n.exp2_segments} segments, rsqrt LUT {1 << n.rsqrt_lut_bits} + 1 Newton step",
            f"  PE array         {h.array_rows} x {h.array_cols} = {h.macs_per_cycle} MACs/cycle",
            f"  attention        p = {h.attn_parallel} query rows, {h.attn_dot_width} "
            f"multipliers per lane",
            f"  memory           {h.mem_bytes_per_cycle} B/cycle, latency {h.mem_latency} cycles",
            f"  expert weights   {h.expert_weights} ("
            + ("on-chip ping/pong matrix buffers" if h.expert_weights == "prefetch"
               else "read from memory by the expert GEMMs") + ")",
            f"  clock            {h.clock_mhz:g} MHz; ideal {self.ideal_cycles:,} cycles/frame "
            f"= {self.ideal_cycles / h.clock_mhz / 1e3:.3f} ms",
        ]
        return "\n".join(lines)


def _m3vit_model() -> ModelConfig:
    return ModelConfig(image_channels=3, image_height=128, image_width=256, patch=16, dim=192,
                       depth=12, heads=3, mlp_hidden=768, moe_blocks=(1, 3, 5, 7, 9, 11),
                       experts=16, top_k=2, expert_hidden=384, tasks=2)


PRESETS = {
    "tiny": Config.tiny,
    "tiny-ecp5": Config.tiny_ecp5,
    "m3vit-tiny-cityscapes": Config.m3vit_tiny,
    "m3vit-ecp5-85f": Config.m3vit_ecp5_85f,
}


def get_config(name: str) -> Config:
    """Preset by name; an unknown name raises ConfigError listing the known ones."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown config {name!r}; known configs: {', '.join(PRESETS)}") from None


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


def _validate(cfg: Config) -> None:
    m, n, h = cfg.model, cfg.num, cfg.hw

    def need(cond, msg):
        if not cond:
            raise ConfigError(f"config {cfg.name!r}: {msg}")

    for fname in ("image_channels", "image_height", "image_width", "patch", "dim", "depth", "heads",
                  "mlp_hidden", "experts", "top_k", "expert_hidden", "tasks"):
        need(getattr(m, fname) >= 1, f"model.{fname} must be >= 1, got {getattr(m, fname)}")
    need(m.image_height % m.patch == 0 and m.image_width % m.patch == 0,
         f"image {m.image_height} x {m.image_width} is not divisible by patch {m.patch}")
    need(m.dim % m.heads == 0, f"dim {m.dim} is not divisible by heads {m.heads}")
    need(m.top_k <= m.experts, f"top_k {m.top_k} > experts {m.experts}")
    need(all(0 <= b < m.depth for b in m.moe_blocks),
         f"moe_blocks {list(m.moe_blocks)} must lie in [0, depth={m.depth})")
    need(len(set(m.moe_blocks)) == len(m.moe_blocks), f"moe_blocks {list(m.moe_blocks)} repeat")
    need(m.ln_eps > 0, f"ln_eps must be > 0, got {m.ln_eps}")

    need(n.bias.frac_bits == n.acc_frac,
         f"bias format {n.bias} must have act.frac + weight.frac = {n.acc_frac} fraction bits")
    product_bits = n.act.bits + n.weight.bits
    need_acc = product_bits + math.ceil(math.log2(m.max_inner_dim)) + 1  # +1: the added bias
    need(n.acc_bits >= need_acc,
         f"acc_bits {n.acc_bits} can overflow: a dot product of length {m.max_inner_dim} of "
         f"{n.act} x {n.weight} needs {need_acc} bits")
    need(n.acc_bits <= 62, f"acc_bits {n.acc_bits} does not fit the int64 golden model")
    need(n.bias.bits <= n.acc_bits, f"bias {n.bias} is wider than the accumulator")
    need(n.ln_norm.int_bits - 1 > math.log2(math.sqrt(m.dim)),
         f"ln_norm {n.ln_norm} cannot hold |x - mean| / std up to sqrt(dim) = {math.sqrt(m.dim):.1f}")
    need(not n.exp.signed and n.exp.int_bits == 1, f"exp format must be unsigned UQ1.f, got {n.exp}")
    need(_is_pow2(n.exp2_segments) and n.exp2_segments <= (1 << n.score.frac_bits),
         f"exp2_segments {n.exp2_segments} must be a power of two <= 2^score.frac_bits")
    gelu_step = n.gelu_range / n.gelu_segments * (1 << n.act.frac_bits)
    need(_is_pow2(n.gelu_segments) and gelu_step >= 1 and _is_pow2(int(gelu_step))
         and gelu_step == int(gelu_step),
         f"GELU grid step {n.gelu_range}/{n.gelu_segments} must be a power-of-two number of "
         f"activation LSBs")
    need(n.gelu_range < n.act.max_value, f"gelu_range {n.gelu_range} exceeds the activation range")
    need(2 <= n.rsqrt_lut_bits <= min(12, n.rsqrt_frac + 2),
         f"rsqrt_lut_bits {n.rsqrt_lut_bits} must be in [2, min(12, rsqrt_frac + 2)]")
    need(n.gelu_table_frac >= n.act.frac_bits,
         f"gelu_table_frac {n.gelu_table_frac} must be >= act fraction bits {n.act.frac_bits}")
    need(n.score.frac_bits >= 1 and n.const_frac >= 1 and n.recip_frac >= 1,
         "score.frac_bits, const_frac and recip_frac must be >= 1")

    for fname in ("array_rows", "array_cols", "attn_parallel", "attn_dot_width",
                  "mem_bytes_per_cycle", "fifo_depth"):
        need(getattr(h, fname) >= 1, f"hw.{fname} must be >= 1, got {getattr(h, fname)}")
    need(h.mem_latency >= 0, f"hw.mem_latency must be >= 0, got {h.mem_latency}")
    if h.hidden_rows is not None:
        need(m.grid[1] <= h.hidden_rows,
             f"hw.hidden_rows must be >= {m.grid[1]} (one row of patches of the image, the "
             f"patch-embedding tile), got {h.hidden_rows}")
        need(h.hidden_rows >= m.tokens or not h.attn_overlap,
             f"hw.hidden_rows {h.hidden_rows} < {m.tokens} tokens needs hw.attn_overlap=False "
             f"(the attention output lives in H only when H holds every token)")
    if h.kv_heads is not None:
        need(1 <= h.kv_heads <= m.heads,
             f"hw.kv_heads must be in [1, {m.heads}] (heads) or None, got {h.kv_heads}")
        need(not h.attn_overlap,
             f"hw.kv_heads {h.kv_heads} needs hw.attn_overlap=False (the next heads' K / V "
             f"GEMMs overwrite the K / V columns a running attention reads)")
        need(m.head_dim % h.array_cols == 0,
             f"hw.kv_heads needs head_dim {m.head_dim} to be a multiple of hw.array_cols "
             f"{h.array_cols} (per-head K / V GEMMs write whole column tiles)")
    need(h.dsp_target in DSP_TARGETS,
         f"hw.dsp_target must be one of {', '.join(DSP_TARGETS)}, got {h.dsp_target!r}")
    need(h.expert_weights in EXPERT_WEIGHTS,
         f"hw.expert_weights must be one of {', '.join(EXPERT_WEIGHTS)}, "
         f"got {h.expert_weights!r}")
    need(h.buffer_wiring in BUFFER_WIRINGS,
         f"hw.buffer_wiring must be one of {', '.join(BUFFER_WIRINGS)}, got {h.buffer_wiring!r}")
    need(h.bram_target in DSP_TARGETS,
         f"hw.bram_target must be one of {', '.join(DSP_TARGETS)}, got {h.bram_target!r}")
    need(h.fanout_target in DSP_TARGETS,
         f"hw.fanout_target must be one of {', '.join(DSP_TARGETS)}, got {h.fanout_target!r}")
    need(h.gelu_site in GELU_SITES,
         f"hw.gelu_site must be one of {', '.join(GELU_SITES)}, got {h.gelu_site!r}")
    need(h.clock_mhz > 0, f"hw.clock_mhz must be > 0, got {h.clock_mhz}")
    need(h.array_rows <= m.max_inner_dim and h.array_cols <= max(m.dim, 3 * m.dim),
         f"a {h.array_rows} x {h.array_cols} array is larger than every GEMM of the model")
    need(m.head_dim % h.attn_dot_width == 0,
         f"head_dim {m.head_dim} is not a multiple of attn_dot_width {h.attn_dot_width}")
    need(h.attn_parallel <= m.tokens, f"attn_parallel {h.attn_parallel} > tokens {m.tokens}")
    if h.mult_budget is not None:
        mults = h.macs_per_cycle + 2 * h.attn_parallel * h.attn_dot_width
        need(mults <= h.mult_budget,
             f"needs {mults} multipliers ({h.array_rows}x{h.array_cols} array + "
             f"2 x {h.attn_parallel} x {h.attn_dot_width} attention) but the target has "
             f"{h.mult_budget}")


def _top_lanes(cfg: Config) -> dict:
    """Lane counts of the top level's buffer ports (hw/top/geometry.py): each a power of two."""
    h = cfg.hw
    return {"hw.array_rows": h.array_rows, "hw.array_cols": h.array_cols,
            "hw.attn_dot_width": h.attn_dot_width,
            "values per memory beat (hw.mem_bytes_per_cycle / act storage bytes)":
                h.mem_bytes_per_cycle // cfg.num.act.storage_bytes}


def check_top_level(cfg: Config) -> Config:
    """Raise ConfigError unless ``cfg`` can build the top level (hw/top); returns ``cfg``.

    Blocks on their own also take configs that break these (a 3 x 5 PE array, say); every
    preset is checked here when it is constructed, and ``TopGeometry`` checks the config it gets.
    """
    m, n, h = cfg.model, cfg.num, cfg.hw

    def need(cond, msg):
        if not cond:
            raise ConfigError(f"config {cfg.name!r}: {msg}")

    W, sa = h.mem_bytes_per_cycle, n.act.storage_bytes
    need(_is_pow2(W), f"hw.mem_bytes_per_cycle {W} must be a power of two (beat-aligned "
                      f"addressing)")
    need(DESC_BYTES % W == 0, f"hw.mem_bytes_per_cycle {W} must divide the {DESC_BYTES}-byte "
                              f"descriptor")
    need(W % sa == 0, f"hw.mem_bytes_per_cycle {W} must hold whole {sa}-byte activations")
    for what, v in _top_lanes(cfg).items():
        need(_is_pow2(v), f"{what} = {v} must be a power of two (buffer lanes)")
    R, C, V = h.array_rows, h.array_cols, W // sa
    need(m.dim % C == 0, f"model.dim {m.dim} must be a multiple of hw.array_cols {C} (Q/K/V "
                         f"column split)")
    need(m.dim % R == 0, f"model.dim {m.dim} must be a multiple of the LayerNorm lanes "
                         f"(hw.array_rows) {R}")
    need(m.dim % V == 0, f"model.dim {m.dim} must be a multiple of {V} values per memory beat")
    need(m.patch % V == 0, f"model.patch {m.patch} must be a multiple of {V} values per memory "
                           f"beat (patchify on load)")
    need(cfg.hidden_cols >= m.dim, f"the H buffer ({cfg.hidden_cols} values per row) must hold "
                                   f"an attention output row of model.dim {m.dim} values")
    need(not m.moe_blocks or m.expert_hidden % C == 0,
         f"model.expert_hidden {m.expert_hidden} must be a multiple of hw.array_cols {C} (the "
         f"expert prefetcher loads whole column groups)")
    for u, what in [(C * n.weight.storage_bytes, "weight tile (hw.array_cols weights)"),
                    (C * n.bias.storage_bytes, "bias tile (hw.array_cols biases)"),
                    (R * n.ln_gamma.storage_bytes, "LayerNorm gamma beat (hw.array_rows values)"),
                    (R * sa, "LayerNorm beta beat (hw.array_rows values)")]:
        need(u % W == 0, f"a {what} of {u} bytes is not a whole number of "
                         f"{W}-byte memory beats (hw.mem_bytes_per_cycle)")
    for g in m.gemms():
        # row k of a weight matrix starts at base + k * N * weight bytes, and the memory reads
        # beat-aligned addresses only (a 4-expert gate's 8-byte rows on 16-byte beats would
        # read the wrong weights)
        u = g.n * n.weight.storage_bytes
        need(u % W == 0, f"a {g.name} weight row ({g.n} weights, {u} bytes) is not a whole "
                         f"number of {W}-byte memory beats (hw.mem_bytes_per_cycle)")
    return cfg


def generic_config(cfg: Config) -> Config:
    """``cfg`` with its hard blocks built generically (``dsp_target``, ``bram_target`` and
    ``fanout_target`` "generic"): same latency,
    cycles and results, with the vendor primitives replaced by plain Amaranth. What pysim and
    Verilator elaborate (they cannot run an ECP5 primitive) and what another vendor's resource
    estimate synthesizes."""
    if cfg.hw.dsp_target == cfg.hw.bram_target == cfg.hw.fanout_target == "generic":
        return cfg
    return with_changes(cfg, hw=dict(dsp_target="generic", bram_target="generic",
                                     fanout_target="generic"))


def with_changes(cfg: Config, *, name: str | None = None, model: dict | None = None,
                 num: dict | None = None, hw: dict | None = None) -> Config:
    """A copy of ``cfg`` with some fields replaced (validated again)."""
    try:
        return Config(name or cfg.name,
                      replace(cfg.model, **(model or {})),
                      replace(cfg.num, **(num or {})),
                      replace(cfg.hw, **(hw or {})))
    except TypeError as e:
        raise ConfigError(str(e)) from e
