"""The frame program: the list of layer descriptors the sequencer executes for one frame.

Generated from the Config alone (tensor names index the weight manifest, which gives addresses),
so no layer is hard-coded in the hardware: the sequencer walks this list. The same list drives the
golden-model interpreter (:func:`sim.golden.interpreter.run_program`, proving the program computes
the network) and the analytic cycle model (:mod:`sim.cycles.frame`).

On-chip buffers are named, not addressed: ``X`` residual stream (tokens x dim), ``XN`` LayerNorm
output, ``QKV`` (tokens x 3 dim), ``ATT`` attention output (tokens x dim), ``H`` MLP hidden
(tokens x hidden), ``IMG`` patches of the input image, ``OUT`` final tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from sim.config import Config

__all__ = ["Op", "Epilogue", "Instr", "frame_program"]


class Op(Enum):
    EMBED = "embed"        # patch-embedding GEMM + cls token + pos embed -> X
    LAYERNORM = "layernorm"
    GEMM = "gemm"
    ATTENTION = "attention"  # one head: QKV -> ATT columns of that head
    ROUTE = "route"        # gate GEMM + softmax + top-k + per-expert queues
    EXPERTS = "experts"    # for each expert with tokens: fc1 + GELU, fc2, scaled accumulate


class Epilogue(Enum):
    NONE = "none"          # requantize
    GELU = "gelu"          # requantize, GELU
    RESIDUAL = "residual"  # requantize, add into the destination row (saturating)


@dataclass(frozen=True)
class Instr:
    op: Op
    src: str = ""
    dst: str = ""
    weight: str = ""             # manifest tensor name (GEMM weight, LN gamma, gate weight)
    bias: str = ""               # manifest tensor name (GEMM bias, LN beta)
    m: int = 0
    k: int = 0
    n: int = 0
    epilogue: Epilogue = Epilogue.NONE
    head: int = 0
    block: int = -1
    extra: tuple = field(default=())  # op-specific tensor names (EMBED: cls, pos)

    def __str__(self) -> str:
        shape = f" {self.m}x{self.k}x{self.n}" if self.op is Op.GEMM else ""
        w = f" w={self.weight}" if self.weight else ""
        return f"{self.op.value:9s} {self.src or '-':>4s} -> {self.dst or '-':4s}{shape}{w} " \
               f"{self.epilogue.value if self.op is Op.GEMM else ''}".rstrip()


def frame_program(cfg: Config, task: int) -> list[Instr]:
    """Descriptors for one frame of ``task`` (the gate weights differ per task)."""
    m = cfg.model
    if not 0 <= task < m.tasks:
        raise ValueError(f"task {task} out of range: the config has {m.tasks} tasks")
    n, d = m.tokens, m.dim
    prog = [Instr(Op.EMBED, "IMG", "X", "patch_embed.proj.weight", "patch_embed.proj.bias",
                  m.patches, m.patch_dim, d, extra=("cls_token", "pos_embed"))]
    for i in range(m.depth):
        p = f"blocks.{i}."
        prog += [
            Instr(Op.LAYERNORM, "X", "XN", p + "norm1.weight", p + "norm1.bias", n, d, d, block=i),
            Instr(Op.GEMM, "XN", "QKV", p + "attn.qkv.weight", p + "attn.qkv.bias", n, d, 3 * d,
                  block=i),
        ]
        prog += [Instr(Op.ATTENTION, "QKV", "ATT", m=n, k=m.head_dim, n=n, head=h, block=i)
                 for h in range(m.heads)]
        prog += [
            Instr(Op.GEMM, "ATT", "X", p + "attn.proj.weight", p + "attn.proj.bias", n, d, d,
                  Epilogue.RESIDUAL, block=i),
            Instr(Op.LAYERNORM, "X", "XN", p + "norm2.weight", p + "norm2.bias", n, d, d, block=i),
        ]
        if m.is_moe(i):
            prog += [
                Instr(Op.ROUTE, "XN", "", p + f"mlp.gates.{task}.weight", "", n, d, m.experts,
                      block=i),
                Instr(Op.EXPERTS, "XN", "X", p + "mlp.experts", "", n, d, m.expert_hidden,
                      block=i),
            ]
        else:
            prog += [
                Instr(Op.GEMM, "XN", "H", p + "mlp.fc1.weight", p + "mlp.fc1.bias", n, d,
                      m.mlp_hidden, Epilogue.GELU, block=i),
                Instr(Op.GEMM, "H", "X", p + "mlp.fc2.weight", p + "mlp.fc2.bias", n,
                      m.mlp_hidden, d, Epilogue.RESIDUAL, block=i),
            ]
    if m.final_norm:
        prog.append(Instr(Op.LAYERNORM, "X", "OUT", "norm.weight", "norm.bias", n, d, d))
    return prog
