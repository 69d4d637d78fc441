"""Every hardware multiplier of the top level (hw/top/ and the blocks it builds), from the config.

:func:`multiplier_inventory` lists them per unit, each count written with the formula the RTL
uses to build it (the source file is named in each entry). Three kinds:

- ``"mul"``: a multiply of two signals (an Amaranth ``*``, a ``$mul`` cell; synthesis puts it on
  a DSP / MULT18X18D, or small ones in LUTs);
- ``"const"``: a ``*`` by a constant that is not a power of two (the
  router's log2 e): still a ``$mul`` cell and a DSP at these widths;
- ``"shift-add"``: a product the RTL writes as shifted adds on purpose (GELU slope x remainder,
  the epilogue score multiply when the target's multipliers are all taken, LayerNorm's
  ``dim x S2``), so it never takes a multiplier.

The multipliers of a unit are ``mul`` + ``const``; ``shift-add`` entries are listed for
completeness and counted apart. Not listed: address arithmetic by config
constants (row x stride, buffer x words), written as shifted adds (``hw.common.mul_const``):
yosys puts a ``*`` by a constant on a DSP too (9 MULT18X18D of the ECPIX-5 build before).
tests/sim/test_multipliers.py checks the counts against the ``$mul`` cells of the elaborated top.
"""
from __future__ import annotations

from dataclasses import dataclass

from sim.config import Config
from sim.cycles.attention import attention_schedule

__all__ = ["MultiplierGroup", "KINDS", "multiplier_inventory", "multiplier_count",
           "unit_multipliers", "epilogue_score_on_dsps", "attention_dot_multipliers"]

KINDS = ("mul", "const", "shift-add")


@dataclass(frozen=True)
class MultiplierGroup:
    """``count`` multipliers of one kind in one unit of the top level."""

    unit: str        # array, epilogue, gelu, attention, layernorm, router, control
    count: int
    what: str
    kind: str        # one of KINDS
    source: str      # the RTL file that builds them

    @property
    def is_multiplier(self) -> bool:
        """A real multiplier (``mul`` or ``const``), not a product built from adders."""
        return self.kind != "shift-add"


def epilogue_score_on_dsps(cfg: Config) -> bool:
    """Whether the epilogue's C score multipliers are ``*`` (True) or shift-add LUTs.

    The rule of ``hw.array.epilogue.score_on_dsp`` (sim may not import hw; a test checks the two
    agree): ``hw.epilogue_score_dsp`` if set, else DSPs unless ``mult_budget`` has no room for
    them next to the array and the attention lanes.
    """
    h = cfg.hw
    if h.epilogue_score_dsp is not None:
        return h.epilogue_score_dsp
    if h.mult_budget is None:
        return True
    return attention_dot_multipliers(cfg) + h.macs_per_cycle + h.array_cols <= h.mult_budget


def attention_dot_multipliers(cfg: Config) -> int:
    """QK^T and AV products of the attention lanes: 2 x p x dw (what ``Config`` budgets)."""
    return 2 * cfg.hw.attn_parallel * cfg.hw.attn_dot_width


def _norm_pieces(cfg: Config) -> int:
    """Pieces of the attention normalizer's o (hw/attention/attention_normalize.py: 17-bit
    pieces, o_bits = hw.attention.attention_lane.attention_params' o_bits)."""
    o_bits = (cfg.model.tokens << (cfg.num.exp.frac_bits + cfg.num.act.bits - 1)
              ).bit_length() + 1
    return max(1, -(-(o_bits - 1) // 17))


def multiplier_inventory(cfg: Config) -> list[MultiplierGroup]:
    """Every multiplier of ``EdgeMoeTop(cfg)``, grouped by unit and kind (module docstring)."""
    n, h, md = cfg.num, cfg.hw, cfg.model
    R, C, p, dw = h.array_rows, h.array_cols, h.attn_parallel, h.attn_dot_width
    L = R                                     # LayerNorm lanes (hw/top/geometry.py: ln_lanes)
    nw = attention_schedule(cfg).norm_width   # normalizer outputs per cycle
    a, w = n.act.bits, n.weight.bits
    G = MultiplierGroup
    out = [
        G("array", R * C, f"PE MAC x * w ({a} x {w} bits), R x C", "mul", "hw/array/pe.py"),
        G("epilogue", C, "score multiply t = y * s (residual / MoE combine), one per column",
          "mul" if epilogue_score_on_dsps(cfg) else "shift-add", "hw/array/epilogue.py"),
        (G("gelu", C, "GELU slope x remainder, one lane per column", "shift-add",
           "hw/array/gelu.py") if not h.gelu_on_reads else
         G("gelu", R, "GELU slope x remainder, one lane per activation lane (fc2's reads)",
           "shift-add", "hw/array/gelu.py")),
        G("attention", p * dw, f"QK^T q * k ({a} x {a}), p x dw", "mul",
          "hw/attention/attention_lane.py"),
        G("attention", p * dw, f"AV e * v ({n.exp.bits + 1} x {a}), p x dw", "mul",
          "hw/attention/attention_lane.py"),
        G("attention", 2 * p, "score scale s * const(scale x log2 e), s in two halves of up "
          "to 18 bits (the constant held in the multipliers' operand registers), two per lane",
          "mul", "hw/attention/attention_lane.py"),
        G("attention", p, "exp2 interpolation diff * r (small), one per lane", "mul",
          "hw/attention/exp2.py"),
        G("attention", nw * _norm_pieces(cfg), "normalizer o * (1 / l), norm_width per cycle, "
          "each as partial products of 17-bit pieces of o", "mul",
          "hw/attention/attention_normalize.py"),
        G("layernorm", L, "x * x (sum of squares), one per lane", "mul", "hw/norm/layernorm.py"),
        G("layernorm", 3, "S1 * S1 (variance) as hi*hi, hi*lo, lo*lo (S1 = hi 2^17 + lo), "
          "registered, summed a cycle later", "mul", "hw/norm/layernorm.py"),
        G("layernorm", 2, "S1 * y (mean x 1/std) as hi*y, lo*y (S1 = hi 2^17 + lo), operands "
          "registered, summed a cycle later", "mul", "hw/norm/layernorm.py"),
        G("layernorm", L, "x * y (x / std), one per lane", "mul", "hw/norm/layernorm.py"),
        G("layernorm", L, "z * gamma, one per lane", "mul", "hw/norm/layernorm.py"),
        G("layernorm", 2, "1/sqrt Newton step: t * m, y0 * (3 - t2) (y0^2 comes from the ROM)",
          "mul", "hw/norm/rsqrt.py"),
        G("layernorm", 1, "dim * S2 (constant dim)", "shift-add", "hw/norm/layernorm.py"),
        G("control", 1, "LOAD job size rows * cols -> beats", "mul", "hw/top/load_store.py"),
        G("control", 1, "STORE job size rows * cols -> beats", "mul", "hw/top/load_store.py"),
        G("control", 1, "ROUTE gate address task * stride", "mul", "hw/top/sequencer.py"),
    ]
    if md.moe_blocks:
        out += [
            G("router", 1, "to_score logit * log2 e", "const", "hw/moe/router.py"),
            G("router", 1, "exp2 interpolation diff * r (small)", "mul", "hw/attention/exp2.py"),
            G("router", 1, "probability e * (1 / l), the k chosen one at a time", "mul",
              "hw/moe/router.py"),
        ]
    return out


def unit_multipliers(cfg: Config) -> dict[str, int]:
    """Real multipliers (``mul`` + ``const``) per unit, units in inventory order."""
    out: dict[str, int] = {}
    for g in multiplier_inventory(cfg):
        out[g.unit] = out.get(g.unit, 0) + (g.count if g.is_multiplier else 0)
    return out


def multiplier_count(cfg: Config) -> int:
    """All real multipliers of the top level."""
    return sum(unit_multipliers(cfg).values())
