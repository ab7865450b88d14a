"""VISTA: summarize a user's history into k tokens, cache them, rank against the cache (docs/design.md §1-2).

Reads top to bottom: seed-to-history attention (softmax or linear), the summarizer, the
reconstruction head, then `VistaRanker`.

* `VistaSummarizer`: k learnable seed tokens attend over the event tokens (the same
  `EventEmbedding` the STCA model uses, then one LN(SwiGLU) history transform) and become the
  user's k summary tokens: summary = LN(SwiGLU(seeds + Attn(seeds, X~))). Cost O(k L d) instead
  of STCA's O(M L d) per request, paid once per user and refresh instead of once per request.
  `summary_attention="linear"` swaps softmax for elu+1 linear attention, O(L d d_h) per user:
  cheaper than softmax only when k > d_h (see benchmarks/vista.py for measurements).
* `ReconstructionHead`: R learned position queries attend over the summary and predict the item
  embeddings of the next R history events after the summarized prefix (MSE against the detached
  embeddings), so the summary has to carry what the user does next, not only what the ranking
  loss of the moment needs.
* `VistaRanker`: the STCA stack (trainer/model.py's `STCAEncoder`) whose "history" is the k
  summary tokens followed by the last `recent_events` raw events. Trained jointly on
  `request_samples` (`RequestBatch`): per request the history is split at
  cut = hist_len - max(recent_events, recon_items), the summarizer reads the prefix (as the cache
  would have it: events before some refresh time), the ranker reads summary + raw suffix, and
  the decoder predicts the events right after the cut. Served (or trained with the summarizer
  frozen) on `request_samples_compact` (`CompactBatch`): the cached, quantized summary replaces
  the summarizer and nothing in the forward pass grows with the history length.

Time reference: event tokens embed request_ts - event_ts. The cache cannot know the request, so
`summarize` measures ages from a reference time after every summarized event (the job passes
the summary's as_of_ts as request_ts); joint training does the same with the time of the first
event after the cut (the request time when there is none).

Shapes: B requests (users when summarizing), L history events, k summary tokens, R next items,
r raw recent events, M targets, d width, H heads, D = d / H, T tasks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.profiler import record_function

from loader import CompactBatch, RequestBatch
from trainer.config import VISTAConfig
from trainer.losses import masked_bce_loss
from trainer.model import (
    MODES,
    Ranker,
    STCAEncoder,
    SwiGLU,
    TargetAttention,
    TokenTransform,
    _with_nonempty_history_axis,
    attention_key_mask,
    hash_ids,
    pointwise_batch,
)

_LINEAR_EPS = 1e-6  # keeps the linear-attention normalizer away from 0


class SeedAttention(nn.Module):
    """Multi-head attention of k batch-independent seed queries over X~ (B, L, d).

    "softmax": F.scaled_dot_product_attention with a key mask. "linear": phi(x) = elu(x) + 1,
    o = phi(Q) (phi(K)^T V) / (phi(Q) . sum_l phi(K_l)); masked keys get phi(K) = 0. Rows without
    history return 0 either way."""

    def __init__(self, config: VISTAConfig) -> None:
        super().__init__()
        self.heads, self.head_dim, self.kind = config.heads, config.head_dim, config.summary_attention
        self.q_proj = nn.Linear(config.d, config.d, bias=False)
        self.k_proj = nn.Linear(config.d, config.d, bias=False)
        self.v_proj = nn.Linear(config.d, config.d, bias=False)
        self.out_proj = nn.Linear(config.d, config.d, bias=False)

    def forward(self, seeds: torch.Tensor, x: torch.Tensor, hist_mask: torch.Tensor) -> torch.Tensor:
        """seeds (k, d); x (B, L, d); hist_mask (B, L) bool -> (B, k, d)."""
        b, length, d = x.shape
        h, dh, k = self.heads, self.head_dim, seeds.shape[0]
        key_mask, has_history = attention_key_mask(hist_mask)
        q = self.q_proj(seeds).view(k, h, dh).transpose(0, 1)  # (H, k, D), shared by the batch
        keys = self.k_proj(x).view(b, length, h, dh).transpose(1, 2)  # (B, H, L, D)
        values = self.v_proj(x).view(b, length, h, dh).transpose(1, 2)  # (B, H, L, D)
        if self.kind == "softmax":
            ctx = F.scaled_dot_product_attention(
                q.expand(b, h, k, dh), keys, values, attn_mask=key_mask[:, None, None, :]
            )  # (B, H, k, D)
        else:
            phi_q = F.elu(q) + 1.0  # (H, k, D)
            phi_k = (F.elu(keys) + 1.0) * hist_mask[:, None, :, None].to(keys.dtype)  # (B, H, L, D)
            kv = torch.einsum("bhld,bhle->bhde", phi_k, values)  # (B, H, D, D)
            num = torch.einsum("hkd,bhde->bhke", phi_q, kv)  # (B, H, k, D)
            den = torch.einsum("hkd,bhd->bhk", phi_q, phi_k.sum(dim=2))  # (B, H, k)
            ctx = num / (den[..., None] + _LINEAR_EPS)
        o = self.out_proj(ctx.transpose(1, 2).reshape(b, k, d))  # (B, k, d)
        return o.masked_fill(~has_history[:, None, None], 0.0)


class VistaSummarizer(nn.Module):
    """Event tokens (B, L, d) -> k summary tokens (B, k, d): LN(SwiGLU(seeds + Attn(seeds, X~))),
    both LN(SwiGLU(.)) with STCA's residual when config.history_residual (trainer/model.py)."""

    def __init__(self, config: VISTAConfig) -> None:
        super().__init__()
        self.seeds = nn.Parameter(torch.randn(config.summary_tokens, config.d) * 0.02)  # (k, d)
        self.history_transform = TokenTransform(
            config.d, config.hidden, residual=config.history_residual
        )  # X~
        self.attention = SeedAttention(config)
        # the final LN keeps int8 scales tame
        self.output = TokenTransform(config.d, config.hidden, residual=config.history_residual)

    def forward(self, x: torch.Tensor, hist_mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, d) event tokens; hist_mask (B, L) bool -> (B, k, d). An empty history gives
        `empty()` for every row (the learned summary of a user without events)."""
        with record_function("vista.summarize"):
            o = self.attention(self.seeds, self.history_transform(x), hist_mask)  # (B, k, d)
            return self.output(self.seeds[None] + o)

    def empty(self) -> torch.Tensor:
        """(k, d): the summary of an empty history (attention output is 0 there)."""
        return self.output(self.seeds)


class ReconstructionHead(nn.Module):
    """R learned position queries attend over the summary -> predicted item embeddings (B, R, id_dim)."""

    def __init__(self, config: VISTAConfig) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(config.recon_items, config.d) * 0.02)  # (R, d)
        self.attention = TargetAttention(config)
        self.predict = SwiGLU(config.d, config.hidden, config.id_dim)

    def forward(self, summary: torch.Tensor) -> torch.Tensor:
        """summary (B, k, d) -> (B, R, id_dim)."""
        b, k, _ = summary.shape
        q = self.queries[None].expand(b, -1, -1)  # (B, R, d)
        every = torch.ones(
            b, k, dtype=torch.bool, device=summary.device
        )  # (B, k): all summary tokens are real
        o = self.attention(q, summary, every, every[:, 0])  # (B, R, d)
        return self.predict(o + q)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the rows where mask (B, R) is True; 0 (with a graph) when none are."""
    err = (pred.float() - target.float()).pow(2).mean(dim=-1)  # (B, R)
    w = mask.to(err.dtype)
    return (err * w).sum() / w.sum().clamp(min=1.0)


class VistaRanker(Ranker):
    """Target attention over [k summary tokens; last r raw events]; see the module docstring."""

    config: VISTAConfig

    def __init__(self, config: VISTAConfig) -> None:
        super().__init__(config)
        self.summarizer = VistaSummarizer(config)
        self.reconstruction = ReconstructionHead(config) if config.recon_weight > 0 else None
        self.encoder = STCAEncoder(config)

    # -- pieces ----------------------------------------------------------------------------------
    @property
    def summary_gap(self) -> int:
        """Events after the summarized prefix in joint training: the raw suffix and the recon targets."""
        c = self.config
        return max(c.recent_events, c.recon_items if self.reconstruction is not None else 0)

    @torch.no_grad()
    def summarize(self, batch: RequestBatch) -> torch.Tensor:
        """(B, k, d) float32 summaries of whole histories, ages measured from batch.request_ts
        (the refresh time), in eval mode (the caller's mode is restored). For export."""
        was_training = self.training
        self.eval()
        try:
            batch = _with_nonempty_history_axis(batch)
            return self.summarizer(self.events(batch), batch.hist_mask).float()
        finally:
            self.train(was_training)

    def _recent_tokens(self, batch: RequestBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (B, r, d), mask (B, r)) of the last recent_events raw events (r may be 0)."""
        recent = batch.with_history_suffix(self.config.recent_events)
        return self.events(recent), recent.hist_mask

    def _rank(self, summary: torch.Tensor, batch: RequestBatch) -> torch.Tensor:
        """summary (B, k, d) + the batch's recent events and targets -> logits (B, M, T)."""
        x_r, mask_r = self._recent_tokens(batch)  # (B, r, d), (B, r)
        tokens = torch.cat([summary.to(x_r.dtype), x_r], dim=1)  # (B, k + r, d)
        every = torch.ones(summary.shape[:2], dtype=torch.bool, device=summary.device)  # (B, k)
        mask = torch.cat([every, mask_r], dim=1)  # (B, k + r): summary first, so key 0 is always real
        x_t = self.targets(batch)  # (B, M, d)
        user = self.user(hash_ids(batch.user_id, self.config.user_buckets))  # (B, id_dim)
        with record_function("encode"):
            z = self.encoder(tokens, mask, x_t)  # (B, M, d)
        with record_function("head"):
            logits = self.head(z, x_t, user)  # (B, M, T)
        return logits.masked_fill(~batch.target_mask[..., None], 0.0)

    def _joint(self, batch: RequestBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Joint training on full histories -> (logits (B, M, T), reconstruction loss or None)."""
        batch = _with_nonempty_history_axis(batch)
        length = batch.hist_item_id.shape[1]
        cut = (batch.hist_len - self.summary_gap).clamp(min=0)  # (B,) events in the summarized prefix
        after = cut.clamp(max=length - 1)[:, None]  # (B, 1) first event after the prefix (if any)
        ref = torch.where(
            cut < batch.hist_len, batch.hist_ts.gather(1, after)[:, 0], batch.request_ts
        )  # (B,)
        prefix = replace(batch, hist_len=cut, request_ts=ref)
        with record_function("embed"):
            x = self.events(prefix)  # (B, L, d), ages from ref
        summary = self.summarizer(x, prefix.hist_mask)  # (B, k, d)
        recon = None
        if self.reconstruction is not None:
            with record_function("vista.reconstruct"):
                r = self.config.recon_items
                idx = cut[:, None] + torch.arange(r, device=cut.device)[None, :]  # (B, R)
                valid = idx < batch.hist_len[:, None]  # (B, R)
                items = batch.hist_item_id.gather(1, idx.clamp(max=length - 1))  # (B, R)
                target = self.item(hash_ids(items, self.config.item_buckets)).detach()  # (B, R, id_dim)
                recon = masked_mse(self.reconstruction(summary), target, valid)
        return self._rank(summary, batch), recon

    def _cached(self, batch: CompactBatch) -> torch.Tensor:
        """Ranking from cached summaries: users without one get the empty-history summary."""
        cached = batch.dequantized()  # (B, k, d) float32
        c = self.config
        if cached.shape[1:] != (c.summary_tokens, c.d):
            raise ValueError(
                f"cached summaries are {tuple(cached.shape[1:])} (k, d); this model expects "
                f"({c.summary_tokens}, {c.d}): were they written by another model_version?"
            )
        empty = self.summarizer.empty().to(cached.dtype)  # (k, d)
        summary = torch.where(batch.has_summary[:, None, None], cached, empty[None])  # (B, k, d)
        return self._rank(summary, batch.requests)

    # -- Ranker API ------------------------------------------------------------------------------
    def logits(self, batch: Any) -> torch.Tensor:
        """(B, M, T) logits of a RequestBatch (summarizer in the graph) or a CompactBatch (cache)."""
        if isinstance(batch, CompactBatch):
            return self._cached(batch)
        return self._joint(batch)[0]

    def forward(self, batch: Any, mode: str = "rlb") -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits (B, M, T), loss): BCE over real targets + recon_weight * reconstruction MSE
        (joint training only; a CompactBatch trains the ranker on frozen cached summaries)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        recon: torch.Tensor | None = None
        if isinstance(batch, CompactBatch):
            if mode != "rlb":
                raise ValueError(f"a CompactBatch is request-level only; got mode {mode!r}")
            logits, labels, mask = self._cached(batch), batch.requests.labels, batch.requests.target_mask
        elif mode == "rlb":
            (logits, recon), labels, mask = self._joint(batch), batch.labels, batch.target_mask
        else:
            flat, (rows, cols) = pointwise_batch(batch)
            flat_logits, recon = self._joint(flat)  # (N, 1, T)
            logits = flat_logits.new_zeros(*batch.target_mask.shape, flat_logits.shape[-1])  # (B, M, T)
            logits = logits.index_put((rows, cols), flat_logits[:, 0])
            labels, mask = batch.labels, batch.target_mask
        with record_function("loss"):
            loss = masked_bce_loss(logits, labels, mask, self.config.loss_weights)
            if recon is not None:
                loss = loss + self.config.recon_weight * recon
        return logits, loss


@torch.no_grad()
def compact_batch(model: VistaRanker, batch: RequestBatch, kind: str = "int8") -> CompactBatch:
    """The CompactBatch serving would see for `batch`: each request's summarized prefix (exactly
    what joint training summarizes: all but the last `summary_gap` events, ages from the first
    event after it) quantized as `kind`, beside the full request (the ranker keeps its recent
    suffix). For tests and benchmarks: cached-path logits equal joint logits up to quantization."""
    from trainer.quantize import quantize

    cut = (batch.hist_len - model.summary_gap).clamp(min=0)  # (B,)
    length = max(batch.hist_ts.shape[1], 1)
    first_after = F.pad(batch.hist_ts, (0, 1)).gather(1, cut.clamp(max=length - 1)[:, None])[:, 0]  # (B,)
    ref = torch.where(cut < batch.hist_len, first_after, batch.request_ts)
    q, scale = quantize(model.summarize(replace(batch, hist_len=cut, request_ts=ref)), kind)
    return CompactBatch(
        requests=batch,
        has_summary=torch.ones_like(batch.hist_len, dtype=torch.bool),
        summary=q,
        summary_scale=scale,
        summary_as_of_ts=ref,
        quantization=kind,
    )


__all__ = [
    "ReconstructionHead",
    "SeedAttention",
    "VistaRanker",
    "VistaSummarizer",
    "compact_batch",
    "masked_mse",
]
