"""Baselines with STCA's embeddings, head, loss and batching modes; only `encode` differs.

* `MeanPool`: the history's masked mean, fused with the target: no target-dependent reading.
* `DIN`: one layer of target attention whose weights come from an MLP over
  [x_h, x_t, x_h - x_t, x_h * x_t] (Zhou et al., 2018).
* `SelfAttention`: a pre-LN transformer encoder over [history; target] per target: every token
  attends to every other, O(L^2) per target and per layer. It exists to measure that cost.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.profiler import record_function

from trainer.config import STCAConfig
from trainer.model import Ranker, SwiGLU, attention_entropy, attention_key_mask


class MeanPool(Ranker):
    """z = SwiGLU([mean(X); x_t]); rows without history pool to 0."""

    def __init__(self, config: STCAConfig) -> None:
        super().__init__(config)
        self.norm = nn.LayerNorm(config.d)
        self.fuse = SwiGLU(2 * config.d, config.hidden, config.d)

    def encode(self, x: torch.Tensor, hist_mask: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        weights = hist_mask.to(x.dtype)  # (B, L)
        pooled = torch.einsum("bl,bld->bd", weights, x) / weights.sum(1, keepdim=True).clamp(
            min=1.0
        )  # (B, d)
        pooled = self.norm(pooled)[:, None, :].expand_as(x_t)  # (B, M, d)
        return self.fuse(torch.cat([pooled, x_t], dim=-1))  # (B, M, d)


class DIN(Ranker):
    """Single-layer DIN-style target attention. The activation unit's first layer over
    [x_h, x_t, x_h - x_t, x_h * x_t] is split as x_h A + x_t C + (x_h * x_t) P (the difference term
    folds into A and C), so only the product term is built per (target, event). Weights are
    softmax-normalised (the original sums raw weights; softmax keeps the scale independent of L).

    The unit reads LayerNorm-ed tokens and its score gets a dot-product term
    s * <LN(x_t), LN(x_h)> / sqrt(d) (s learnable, from 1): a history token of the target's own
    item then starts sqrt(d) above N(0, 1) for the others. Without them the product term, the one
    that can see a match, was small against the x_h and x_t terms, and on
    synthetic.batches.membership_batch DIN sat at AUC 0.5 for 500-600+ steps (seed-dependent)
    before finding it; with them it passes 0.99 in 100."""

    def __init__(self, config: STCAConfig, *, unit_hidden: int = 64) -> None:
        super().__init__(config)
        d, a = config.d, unit_hidden  # the activation unit is small (80 -> 40 in the DIN paper)
        self.history_proj = nn.Linear(d, a, bias=False)  # A (absorbs the x_h part of x_h - x_t)
        self.target_proj = nn.Linear(d, a)  # C (absorbs the -x_t part) and the bias
        self.product_proj = nn.Linear(d, a, bias=False)  # P
        self.score = nn.Linear(a, 1)
        self.unit_norm = nn.LayerNorm(d)  # the activation unit's view of x_h and x_t
        self.match_scale = nn.Parameter(torch.ones(()))  # s of the dot-product term
        self.fuse = SwiGLU(2 * d, config.hidden, d)
        self.entropy_log: list[tuple[float, int]] | None = None  # as TargetAttention's

    def encode(self, x: torch.Tensor, hist_mask: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        key_mask, has_history = attention_key_mask(hist_mask)
        with record_function("din.activation_unit"):
            xh, xt = self.unit_norm(x), self.unit_norm(x_t)  # (B, L, d), (B, M, d)
            product = self.product_proj(xt[:, :, None, :] * xh[:, None, :, :])  # (B, M, L, a)
            hidden = (
                product + self.history_proj(xh)[:, None] + self.target_proj(xt)[:, :, None]
            )  # (B, M, L, a)
            scores = self.score(F.silu(hidden)).squeeze(-1)  # (B, M, L)
            scores = scores + self.match_scale * torch.bmm(xt, xh.transpose(1, 2)) / math.sqrt(xh.shape[-1])
        scores = scores.masked_fill(~key_mask[:, None, :], float("-inf"))
        alpha = scores.softmax(dim=-1).to(x.dtype)  # (B, M, L)
        if self.entropy_log is not None:
            self.entropy_log.append(attention_entropy(alpha, key_mask.sum(-1)[:, None]))
        pooled = torch.bmm(alpha, x).masked_fill(~has_history[:, None, None], 0.0)  # (B, M, d)
        return self.fuse(torch.cat([pooled, x_t], dim=-1))  # (B, M, d)


class EncoderBlock(nn.Module):
    """Pre-LN transformer block: x + MHA(LN(x)), then x + SwiGLU(LN(x)) (SDPA inside)."""

    def __init__(self, config: STCAConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = config.heads, config.head_dim
        self.norm1 = nn.LayerNorm(config.d)
        self.qkv = nn.Linear(config.d, 3 * config.d, bias=False)
        self.out_proj = nn.Linear(config.d, config.d, bias=False)
        self.norm2 = nn.LayerNorm(config.d)
        self.ffn = SwiGLU(config.d, config.hidden, config.d)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """x (N, S, d); key_mask (N, S) bool or None (no padding) -> (N, S, d)."""
        n, s, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(n, s, 3, self.heads, self.head_dim)  # (N, S, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (N, H, S, D) each
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (N, 1, 1, S)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, H, S, D)
        x = x + self.dropout(self.out_proj(ctx.transpose(1, 2).reshape(n, s, d)))  # (N, S, d)
        return x + self.dropout(self.ffn(self.norm2(x)))


class SelfAttention(Ranker):
    """`config.layers` transformer blocks over [history; target], one sequence per target; z is the
    target position's output. History tokens attend to the target, so nothing is shared between
    the targets of a request: "rlb" only saves the embedding lookups."""

    def __init__(self, config: STCAConfig) -> None:
        super().__init__(config)
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.d)

    def encode(self, x: torch.Tensor, hist_mask: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        m = x_t.shape[1]
        seq = torch.cat([x[:, None].expand(b, m, length, d), x_t[:, :, None, :]], dim=2)  # (B, M, L+1, d)
        seq = seq.reshape(b * m, length + 1, d)  # (B*M, L+1, d)
        # The target token is always real, so no row is fully masked; skip the mask when nothing is
        # padded so SDPA may take its mask-free (flash) kernels.
        key_mask: torch.Tensor | None = None
        if not bool(hist_mask.all()):
            keys = torch.cat([hist_mask, hist_mask.new_ones(b, 1)], dim=1)  # (B, L+1)
            key_mask = keys[:, None].expand(b, m, length + 1).reshape(b * m, length + 1)  # (B*M, L+1)
        for block in self.blocks:
            with record_function("self_attention.block"):
                seq = block(seq, key_mask)
        return self.norm(seq[:, -1]).view(b, m, d)  # (B, M, d): the target position
