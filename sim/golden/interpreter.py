"""Run a frame program (sim.frame_program) with the golden operators.

This is the reference for the hardware sequencer: it executes descriptor by descriptor, on named
buffers, exactly what the sequencer does; a test checks it equals :func:`sim.golden.forward`.
"""
from __future__ import annotations

import numpy as np

from sim.config import Config
from sim.frame_program import Epilogue, Instr, Op, frame_program
from sim.golden.layernorm import layernorm
from sim.golden.linear import linear, residual_add
from sim.golden.model import experts_combine, patchify
from sim.golden.router import route
from sim.golden.softmax import attention_head

__all__ = ["run_program"]


def _gemm(cfg: Config, qp: dict, ins: Instr, bufs: dict) -> None:
    y = linear(cfg, bufs[ins.src], qp[ins.weight], qp[ins.bias], ins.epilogue is Epilogue.GELU)
    bufs[ins.dst] = residual_add(cfg, bufs[ins.dst], y) if ins.epilogue is Epilogue.RESIDUAL else y


def run_program(cfg: Config, qparams: dict, image_q, program: list[Instr] | None = None,
                task: int = 0) -> np.ndarray:
    """Execute ``program`` (default: the frame program of ``task``); returns the output tokens."""
    m = cfg.model
    qp = qparams
    prog = frame_program(cfg, task) if program is None else program
    bufs: dict = {"IMG": patchify(cfg, image_q)}
    routing = None
    for ins in prog:
        if ins.op is Op.EMBED:
            w = qp[ins.weight].reshape(ins.n, ins.k)
            emb = linear(cfg, bufs[ins.src], w, qp[ins.bias])
            cls, pos = (qp[name] for name in ins.extra)
            x = np.concatenate([cls.reshape(1, ins.n), emb], axis=0)
            bufs[ins.dst] = residual_add(cfg, x, pos.reshape(m.tokens, ins.n))
        elif ins.op is Op.LAYERNORM:
            bufs[ins.dst] = layernorm(cfg, bufs[ins.src], qp[ins.weight], qp[ins.bias])
        elif ins.op is Op.GEMM:
            _gemm(cfg, qp, ins, bufs)
        elif ins.op is Op.ATTENTION:
            qkv, d, hd = bufs[ins.src], m.dim, m.head_dim
            cols = [slice(j * d + ins.head * hd, j * d + (ins.head + 1) * hd) for j in range(3)]
            out = bufs.setdefault(ins.dst, np.zeros((m.tokens, d), dtype=np.int64))
            out[:, cols[0]] = attention_head(cfg, *(qkv[:, c] for c in cols))
        elif ins.op is Op.ROUTE:
            routing = route(cfg, bufs[ins.src], qp[ins.weight])
        elif ins.op is Op.EXPERTS:
            bufs[ins.dst] = experts_combine(cfg, qp, ins.weight, bufs[ins.src], bufs[ins.dst],
                                            routing)
        else:
            raise ValueError(f"unknown op {ins.op}")
    return bufs["OUT" if m.final_norm else "X"]
