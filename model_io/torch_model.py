"""PyTorch reference model of the M3ViT encoder, built from a :class:`sim.config.Config`.

Structure (architecture brief, section 1): patch embedding (conv, kernel = stride = patch), class
token prepended, learned position embedding added, ``depth`` pre-norm blocks
``x = x + proj(MHSA(LN1(x)))`` (qkv with bias, scale 1/sqrt(head_dim), exact softmax) and
``x = x + MLP(LN2(x))`` where the MLP is fc1 -> exact (erf) GELU -> fc2 for dense blocks and a
task-conditioned mixture of experts for ``cfg.model.moe_blocks``:

    logits = LN2(x) @ W_gate[task].T          (per-task gate, no bias)
    probs  = softmax(logits)                  (over the experts)
    top-k experts per token, ties -> lowest expert index; scores = their probs (NOT renormalized)
    out    = sum_k score_k * expert_k(LN2(x)) (expert = fc1 -> GELU -> fc2, with biases)

and a final LayerNorm ``norm`` if ``cfg.model.final_norm``. There is no classification or task
head: :meth:`M3ViT.forward` returns the encoder's output tokens.

The module and parameter names are exactly :func:`sim.params.param_specs` (test-enforced), so a
``state_dict`` of this model is what :func:`model_io.export.export` consumes, and the numpy float
model (``sim.float_model``) computes the same function.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sim.config import Config
from sim.params import param_specs, random_params

__all__ = ["M3ViT", "Mlp", "Attention", "MoE", "Block", "from_params", "state_dict_to_numpy"]


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2 (a dense block's MLP, or one expert)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="none")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention: fused qkv projection (with bias), output projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # qkv columns are [q | k | v], each split into heads of head_dim (as in timm).
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class MoE(nn.Module):
    """Task-conditioned MoE: per-task gate, softmax, top-k, unrenormalized combine."""

    def __init__(self, dim: int, experts: int, hidden: int, top_k: int, tasks: int):
        super().__init__()
        self.top_k = top_k
        self.gates = nn.ModuleList(nn.Linear(dim, experts, bias=False) for _ in range(tasks))
        self.experts = nn.ModuleList(Mlp(dim, hidden) for _ in range(experts))

    def route(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen experts (..., k) best first, their softmax probabilities (..., k))."""
        probs = torch.softmax(self.gates[task](x), dim=-1)
        # A stable descending sort keeps equal probabilities in index order: ties -> lowest index.
        order = torch.sort(probs, dim=-1, descending=True, stable=True).indices[..., :self.top_k]
        return order, torch.gather(probs, -1, order)

    def forward(self, x: torch.Tensor, task: int, trace: dict | None = None,
                prefix: str = "") -> torch.Tensor:
        chosen, scores = self.route(x, task)
        flat_x = x.reshape(-1, x.shape[-1])
        flat_c = chosen.reshape(-1, self.top_k)
        flat_s = scores.reshape(-1, self.top_k)
        out = torch.zeros_like(flat_x)
        for e, expert in enumerate(self.experts):
            tok, slot = torch.nonzero(flat_c == e, as_tuple=True)
            if tok.numel():
                y = expert(flat_x[tok]) * flat_s[tok, slot].unsqueeze(-1)
                out.index_add_(0, tok, y)
        if trace is not None:
            trace[prefix + "experts"] = chosen.detach().cpu().numpy()
            trace[prefix + "scores"] = scores.detach().cpu().numpy()
        return out.reshape(x.shape)


class Block(nn.Module):
    """Pre-norm transformer block: attention, then a dense MLP or an MoE."""

    def __init__(self, cfg: Config, index: int):
        super().__init__()
        m = cfg.model
        self.is_moe = m.is_moe(index)
        self.norm1 = nn.LayerNorm(m.dim, eps=m.ln_eps)
        self.attn = Attention(m.dim, m.heads)
        self.norm2 = nn.LayerNorm(m.dim, eps=m.ln_eps)
        self.mlp = (MoE(m.dim, m.experts, m.expert_hidden, m.top_k, m.tasks) if self.is_moe
                    else Mlp(m.dim, m.mlp_hidden))

    def forward(self, x: torch.Tensor, task: int, trace: dict | None = None,
                prefix: str = "") -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        xn = self.norm2(x)
        return x + (self.mlp(xn, task, trace, prefix) if self.is_moe else self.mlp(xn))


class M3ViT(nn.Module):
    """The M3ViT encoder for ``cfg``.

    ``seed`` initializes the weights reproducibly from :func:`sim.params.random_params` with the
    given ``init`` style (``"vit"``: timm's ViT init, trunc-normal std 0.02, zero biases, LN 1/0;
    ``"unit"``: O(1) activations for numerics tests), so ``M3ViT(cfg, seed=s, init=i)`` holds
    exactly the weights of ``from_params(cfg, random_params(cfg, s, i))`` (rounded to ``dtype``).
    """

    def __init__(self, cfg: Config, seed: int = 0, init: str = "vit",
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        m = cfg.model
        self.cfg = cfg
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(m.image_channels, m.dim, m.patch, stride=m.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, m.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, m.tokens, m.dim))
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(m.depth))
        self.norm = nn.LayerNorm(m.dim, eps=m.ln_eps) if m.final_norm else None
        self.to(dtype)
        self.load_params(random_params(cfg, seed, init))

    def load_params(self, params: dict) -> None:
        """Copy a ``{name: array}`` dict (our names, exact shapes) into the model (strict)."""
        ref = self.state_dict()
        sd = {k: torch.as_tensor(np.asarray(v), dtype=ref[k].dtype) if k in ref
              else torch.as_tensor(np.asarray(v)) for k, v in params.items()}
        self.load_state_dict(sd, strict=True)

    def forward(self, image: torch.Tensor, task: int, trace: dict | None = None) -> torch.Tensor:
        """Output tokens for ``image`` and task id ``task``.

        ``image`` is (B, C, H, W) -> returns (B, tokens, dim); or (C, H, W) -> (tokens, dim).
        Pixels are floats in [0, 1). One task id applies to the whole batch (as in the hardware,
        where the task id is an input of every frame). If ``trace`` is a dict, each MoE block adds
        ``blocks.{i}.experts`` (chosen experts, (B, tokens, k) or (tokens, k)) and
        ``blocks.{i}.scores`` (their probabilities) as numpy arrays.
        """
        m = self.cfg.model
        if not 0 <= int(task) < m.tasks:
            raise ValueError(f"task {task} out of range: the config has {m.tasks} tasks")
        unbatched = image.dim() == 3
        x = image.unsqueeze(0) if unbatched else image
        want = (m.image_channels, m.image_height, m.image_width)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"image shape {tuple(image.shape)} does not match the config's "
                             f"(B,) {want}")
        x = x.to(self.cls_token.dtype)
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (B, patches, dim), row-major grid
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        sub = {} if trace is not None else None
        for i, blk in enumerate(self.blocks):
            x = blk(x, int(task), sub, f"blocks.{i}.")
        if self.norm is not None:
            x = self.norm(x)
        if trace is not None:
            trace.update({k: (v[0] if unbatched else v) for k, v in sub.items()})
        return x[0] if unbatched else x


def from_params(cfg: Config, params: dict, dtype: torch.dtype = torch.float64) -> M3ViT:
    """An :class:`M3ViT` holding ``params`` (e.g. from :func:`sim.params.random_params`)."""
    missing = [k for k in param_specs(cfg) if k not in params]
    extra = [k for k in params if k not in param_specs(cfg)]
    if missing or extra:
        raise KeyError(f"parameters do not match config {cfg.name!r}: missing {missing}, "
                       f"unexpected {extra}")
    model = M3ViT(cfg, dtype=dtype)
    model.load_params(params)
    return model.eval()


def state_dict_to_numpy(state_dict: dict) -> dict[str, np.ndarray]:
    """``{name: tensor}`` -> ``{name: float64 numpy array}`` (detached, on the CPU)."""
    return {k: (v.detach().cpu().to(torch.float64).numpy() if isinstance(v, torch.Tensor)
                else np.asarray(v, dtype=np.float64)) for k, v in state_dict.items()}
