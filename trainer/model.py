"""STCA: Stacked Target-to-History Cross Attention, with Request Level Batching (docs/design.md §2).

Reads top to bottom: small blocks (SwiGLU, id hashing, event / target tokens, one target-attention
layer), the STCA encoder, the ranking head, then `Ranker` (embeddings + head + loss + the two
batching modes, shared with trainer/baselines.py) and `STCA` itself.

Shapes: B requests, L history events (padded), M targets per request (padded), d model width,
H heads, D = d / H, T tasks. docs/design.md calls the number of layers M too; here it is
`config.layers` so that M always means targets, as in `RequestBatch`.

The two batching modes run the same weights:
* "rlb": the history is embedded and transformed once per request, and the M targets of the
  request attend to it in one batched call (queries (B, M, .) against keys (B, L, .)).
* "pointwise": the batch is first flattened to one row per real target with its own copy of the
  history (B' = sum(num_targets), M = 1), as a point-wise trainer reads it.
A third, MRLB (trainer/mrlb.py), transforms a user-day's history window once for all the day's
requests; it needs STCA's request-independent history (STCAConfig.history_time="bias", see
`STCAEncoder`). The encoder meets both layouts through `QueryLayout`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.profiler import record_function

from loader import HISTORY_FIELDS, TARGET_FIELDS, RequestBatch
from trainer.config import HISTORY_TIME_KINDS, ConfigError, STCAConfig
from trainer.losses import masked_bce_loss

Mode = Literal["rlb", "pointwise"]
MODES: tuple[str, ...] = get_args(Mode)

# 0x9E3779B97F4A7C15 (2**64 / golden ratio) as a signed int64: int64 products wrap mod 2**64.
_HASH_MULTIPLIER = -7046029254386353131
_DURATION_BUCKETS_PER_OCTAVE = 2  # target duration buckets: 0-1 s, 1-1.8 s, 1.8-3 s, 3-4.7 s, ...


class SwiGLU(nn.Module):
    """SwiGLU(x) = ((x W_u) * swish(x W_v)) W_o; W_u and W_v run as one matmul."""

    def __init__(self, d_in: int, hidden: int, d_out: int) -> None:
        super().__init__()
        self.up = nn.Linear(d_in, 2 * hidden, bias=False)  # [W_u | W_v]
        self.down = nn.Linear(hidden, d_out, bias=False)  # W_o

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = self.up(x).chunk(2, dim=-1)  # (..., hidden) each
        return self.down(u * F.silu(v))


class TokenTransform(nn.Module):
    """LN(SwiGLU(x)) token by token: the per-layer history transform X~(i) (and q(i)); with
    residual=True, LN(x + SwiGLU(x)).

    Why the residual (STCAConfig.history_residual): SwiGLU has no linear term at 0, so at
    initialisation LN(SwiGLU(x)) is a normalised random quadratic feature of the token, and a mean
    of such features over a long history lost the planted topic share that a mean of the raw
    tokens keeps. benchmarks/learning_probe.py, L = 256, lr 1e-3, 800 steps: the literal form
    reached AUC 0.51 / 0.64 / 0.73 with `--seed 0 / 1 / 2`, the residual 0.73 / 0.72 / 0.72."""

    def __init__(self, d: int, hidden: int, *, residual: bool = False) -> None:
        super().__init__()
        self.ffn = SwiGLU(d, hidden, d)
        self.norm = nn.LayerNorm(d)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.ffn(x) if self.residual else self.ffn(x))


def hash_ids(ids: torch.Tensor, buckets: int) -> torch.Tensor:
    """Deterministic id -> [0, buckets) hash (Fibonacci multiply, xor-shift), for id spaces too
    large for a table. Same result on CPU and CUDA."""
    h = ids.long() * _HASH_MULTIPLIER  # wraps mod 2**64
    h = h ^ (h >> 29)
    return torch.remainder(h, buckets)


def log_buckets(values: torch.Tensor, *, unit: float, per_octave: int, buckets: int) -> torch.Tensor:
    """floor(per_octave * log2(1 + values / unit)), clamped to [0, buckets): 0 .. open-ended last."""
    x = values.clamp(min=0).to(torch.float32) / unit
    return (torch.log2(1.0 + x) * per_octave).floor().long().clamp(0, buckets - 1)


class EventEmbedding(nn.Module):
    """History event token: P e_item + W_f [e_author; e_action] + e_time (+ e_watch_ratio).

    The time delta request_ts - hist_ts (seconds, log2 buckets; the event's *age*) is the only
    notion of position: no positional encoding, which is what lets a model trained on ~2k events
    serve 10k. With STCAConfig.history_time="bias" the token has no age term (`time` is None), so
    it depends on the event alone and one window of tokens serves every request of a user-day;
    STCAEncoder then adds the age to the attention logits instead.

    P (`item_proj`, with the only bias) is shared with the target token, so an event and a target
    of the same item start as the same vector (every side table starts at zero): matching a target
    to its history is then a similarity, not something to learn. With separate fusions
    W_f [e_item; ...] and W_t [e_item; ...] the two tokens of one item were unrelated random
    projections, and STCA and DIN stayed at AUC 0.5 on "label = the target occurs in the history"
    (synthetic.batches.membership_batch) after 1,500 steps."""

    def __init__(
        self, config: STCAConfig, item: nn.Embedding, author: nn.Embedding, item_proj: nn.Linear
    ) -> None:
        super().__init__()
        self.config = config
        self.item, self.author, self.item_proj = item, author, item_proj  # shared with the target token
        self.action = nn.Embedding(2**config.action_bits, config.id_dim)  # one row per bit combination
        self.side = nn.Linear(2 * config.id_dim, config.d, bias=False)  # W_f
        in_token = config.history_time == "token"
        self.time = nn.Embedding(config.time_buckets, config.d) if in_token else None
        self.watch = nn.Embedding(config.watch_ratio_buckets, config.d) if config.use_watch_ratio else None

    def age_buckets(self, request_ts: torch.Tensor, hist_ts: torch.Tensor) -> torch.Tensor:
        """Log2 buckets (seconds) of request_ts - hist_ts, broadcast: (B, 1) and (B, L) -> (B, L)."""
        c = self.config
        delta_ms = request_ts - hist_ts  # > 0 for real events
        per_octave, buckets = c.time_buckets_per_octave, c.time_buckets
        return log_buckets(delta_ms, unit=1000.0, per_octave=per_octave, buckets=buckets)

    def forward(self, batch: RequestBatch) -> torch.Tensor:
        """-> (B, L, d); independent of batch.request_ts when history_time="bias"."""
        age = self.age_buckets(batch.request_ts[:, None], batch.hist_ts) if self.time is not None else None
        return self.tokens({name: getattr(batch, name) for name in HISTORY_FIELDS}, age)

    def tokens(self, events: Mapping[str, torch.Tensor], age: torch.Tensor | None) -> torch.Tensor:
        """events: HISTORY_FIELDS -> (..., L) values; age (..., L) buckets, or None without the
        time term -> (..., L, d)."""
        c = self.config
        side = torch.cat(
            [
                self.author(hash_ids(events["hist_author_id"], c.author_buckets)),
                self.action(events["hist_action"].long() & (2**c.action_bits - 1)),
            ],
            dim=-1,
        )  # (..., L, 2 * id_dim)
        item = self.item_proj(self.item(hash_ids(events["hist_item_id"], c.item_buckets)))  # (..., L, d)
        x = item + self.side(side)  # (..., L, d)
        if self.time is not None:
            if age is None:
                raise ValueError("EventEmbedding.tokens: history_time='token' needs the age buckets")
            x = x + self.time(age)
        if self.watch is not None:
            ratio = events["hist_watch_ms"].float() / events["hist_duration_ms"].float().clamp(min=1.0)
            w = (ratio.clamp(0.0, c.watch_ratio_max) / c.watch_ratio_max * c.watch_ratio_buckets).long()
            x = x + self.watch(w.clamp(max=c.watch_ratio_buckets - 1))
        return x


class TargetEmbedding(nn.Module):
    """Target token x_t: P e_item + W_t [e_author; e_position; e_duration] (id tables and P shared
    with the history, see EventEmbedding)."""

    def __init__(
        self, config: STCAConfig, item: nn.Embedding, author: nn.Embedding, item_proj: nn.Linear
    ) -> None:
        super().__init__()
        self.config = config
        self.item, self.author, self.item_proj = item, author, item_proj
        self.position = nn.Embedding(config.position_buckets, config.id_dim)
        self.duration = nn.Embedding(config.duration_buckets, config.id_dim)
        self.side = nn.Linear(3 * config.id_dim, config.d, bias=False)  # W_t

    def forward(self, batch: RequestBatch) -> torch.Tensor:
        """-> (B, M, d)"""
        return self.tokens({name: getattr(batch, name) for name in TARGET_FIELDS})

    def tokens(self, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """targets: TARGET_FIELDS -> (..., M) values -> (..., M, d)."""
        c = self.config
        position = targets["tgt_position"].long().clamp(0, c.position_buckets - 1)
        duration = log_buckets(
            targets["tgt_duration_ms"],
            unit=1000.0,
            per_octave=_DURATION_BUCKETS_PER_OCTAVE,
            buckets=c.duration_buckets,
        )
        side = torch.cat(
            [
                self.author(hash_ids(targets["tgt_author_id"], c.author_buckets)),
                self.position(position),
                self.duration(duration),
            ],
            dim=-1,
        )  # (..., M, 3 * id_dim)
        item = self.item_proj(self.item(hash_ids(targets["tgt_item_id"], c.item_buckets)))
        return item + self.side(side)


def attention_entropy(alpha: torch.Tensor, keys: torch.Tensor) -> tuple[float, int]:
    """(sum, count) of the normalised entropies H(alpha) / log(keys) of the attention rows alpha
    (..., L) (masked keys hold 0) that see keys (..., broadcastable) >= 2 events: 0 = every target
    reads one event, 1 = uniform (a mean, as mean pooling). For the collapse alarm
    (trainer.metrics.history_probe), which averages it over a few evaluation batches."""
    h = -(alpha.float() * alpha.float().clamp(min=1e-30).log()).sum(-1)  # (...)
    k = keys.expand_as(h).float()
    real = k >= 2
    return float((h[real] / k[real].log()).sum()), int(real.sum())


def attention_key_mask(hist_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(key_mask (B, L), has_history (B,)). Rows without history get key 0 unmasked (a padded,
    finite token) so softmax never sees an all -inf row; their output is zeroed afterwards."""
    has_history = hist_mask[:, 0]  # (B,): histories are left-aligned, so event 0 is real iff any is
    key_mask = hist_mask.clone()
    key_mask[:, 0] = True  # real for rows with history, the dummy key for rows without
    return key_mask, has_history


@dataclass
class QueryLayout:
    """Which history row, and which of its events, each request's target queries attend to.

    Per request (RLB, `per_request`): row b is request b's own history, one request slot per row
    (K = 1), and the queries are the (B, M, d) target tokens. Grouped (MRLB, trainer/mrlb.py): row
    g is a user-day window of L events, K request slots per row, and slot k sees only its request's
    [start, end) slice of the window (request-aware masking); the queries are one row per real
    target, (T, 1, d), placed into (N, K, M, d) slots by `slot_index`."""

    key_mask: torch.Tensor  # (N, K, L) bool; an empty slot gets the dummy key 0 (attention_key_mask)
    has_history: torch.Tensor  # (N, K) bool: the slot's request has at least one event
    age: torch.Tensor | None  # (N, K, L) age buckets of each event at each slot's request_ts ("bias")
    slot_index: torch.Tensor | None = None  # (T,) grouped: query row t -> flat index into (N*K*M)
    slot_targets: int = 1  # M of the grouped slots

    @classmethod
    def per_request(cls, hist_mask: torch.Tensor, age: torch.Tensor | None = None) -> QueryLayout:
        """hist_mask (B, L) left-aligned; age (B, L) or None."""
        key_mask, has_history = attention_key_mask(hist_mask)
        return cls(key_mask[:, None], has_history[:, None], None if age is None else age[:, None])

    def to_slots(self, q: torch.Tensor) -> torch.Tensor:
        """Queries -> (N, K, M, d): (B, M, d) per request, (T, 1, d) grouped (zeros in empty slots)."""
        if self.slot_index is None:
            return q[:, None]  # (B, 1, M, d)
        n, k = self.has_history.shape
        slots = q.new_zeros(n * k * self.slot_targets, q.shape[-1])  # (N*K*M, d)
        return slots.index_copy(0, self.slot_index, q[:, 0]).view(n, k, self.slot_targets, -1)

    def from_slots(self, o: torch.Tensor) -> torch.Tensor:
        """(N, K, M, d) -> the queries' own layout (inverse of `to_slots` on real queries)."""
        if self.slot_index is None:
            return o[:, 0]  # (B, M, d)
        return o.reshape(-1, o.shape[-1])[self.slot_index][:, None]  # (T, 1, d)


class TargetAttention(nn.Module):
    """Single-query multi-head softmax attention of each target query over X~ (one STCA layer).

    alpha = softmax(q W_Q (X~ W_K)^T / sqrt(D)), o = concat_heads(alpha X~ W_V) W_O. With
    attention="shortcut" it runs the exact one-query rewrite u = (q W_Q) W_K^T,
    alpha = softmax(u X~^T / sqrt(D)), o = (alpha X~) W_V per head, so X~ W_K and X~ W_V (L x d
    each) are never built: cost L * M * H * d instead of L * d^2. "sdpa" builds K and V and calls
    F.scaled_dot_product_attention."""

    def __init__(self, config: STCAConfig) -> None:
        super().__init__()
        self.heads, self.head_dim, self.kind = config.heads, config.head_dim, config.attention
        # No biases: a K bias shifts every score of a query equally (softmax-invariant) and a V bias
        # passes through unchanged (alpha sums to 1), so they add nothing but shortcut bookkeeping.
        self.q_proj = nn.Linear(config.d, config.d, bias=False)  # W_Q
        self.k_proj = nn.Linear(config.d, config.d, bias=False)  # W_K
        self.v_proj = nn.Linear(config.d, config.d, bias=False)  # W_V
        self.out_proj = nn.Linear(config.d, config.d, bias=False)  # W_O
        self.dropout = nn.Dropout(config.dropout)
        # (sum, count) of normalised attention entropies while the collapse probe records
        # (trainer.metrics.recording_attention); None otherwise, so training pays nothing.
        self.entropy_log: list[tuple[float, int]] | None = None
        if config.match_prior:
            self._init_match_scores()

    def _init_match_scores(self) -> None:
        """W_Q = W_K ~ N(0, 1/d) at initialisation, so a score starts as q W_Q (x W_Q)^T / sqrt(D):
        a positive semi-definite form under which a history token equal to the query (same item,
        EventEmbedding) scores about sqrt(D) against N(0, 1) for unrelated tokens, i.e. target
        attention starts as "look up the target in the history". With W_Q and W_K independent
        (PyTorch's default, var 1 / (3 d)) a match scored like any other token, and STCA stayed
        at AUC ~0.56 on synthetic.batches.membership_batch after 1,000 steps; with this init it
        passes 0.97 in 200. W_Q and W_K train independently from there."""
        nn.init.normal_(self.q_proj.weight, std=self.q_proj.in_features**-0.5)
        with torch.no_grad():
            self.k_proj.weight.copy_(self.q_proj.weight)

    def forward(
        self,
        q: torch.Tensor,
        x: torch.Tensor,
        key_mask: torch.Tensor,
        has_history: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per request: q (B, M, d) target queries; x (B, L, d) transformed history X~; key_mask
        (B, L) bool; has_history (B,) bool; bias (B, L, H) or None -> o (B, M, d).
        Grouped (QueryLayout): q (N, K, M, d), K request slots per history row; key_mask (N, K, L),
        the events each slot may see; has_history (N, K); bias (N, K, L, H), added to slot k's
        head-h logit of each event -> o (N, K, M, d). Zero where there is no history."""
        if q.dim() == 3:  # one request per row: K = 1
            b = None if bias is None else bias[:, None]
            return self.forward(q[:, None], x, key_mask[:, None], has_history[:, None], b)[:, 0]
        if self.kind == "shortcut":
            ctx = self._shortcut(q, x, key_mask, bias)
        else:
            ctx = self._sdpa(q, x, key_mask, bias)  # (N, K, M, d)
        o = self.dropout(self.out_proj(ctx))  # (N, K, M, d)
        return o.masked_fill(~has_history[:, :, None, None], 0.0)

    def _shortcut(
        self, q: torch.Tensor, x: torch.Tensor, key_mask: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        n, k, m, d = q.shape
        length, h, dh = x.shape[1], self.heads, self.head_dim
        qh = self.q_proj(q).view(n, k, m, h, dh)  # (N, K, M, H, D)
        w_k = self.k_proj.weight.view(h, dh, d)  # (H, D, d): head h's rows of W_K^T
        u = torch.einsum("nkmhe,hed->nkmhd", qh, w_k).reshape(n, k * m * h, d)  # (N, K*M*H, d)
        scores = torch.bmm(u, x.transpose(1, 2)).view(n, k, m, h, length) / math.sqrt(dh)
        if bias is not None:
            scores = scores + bias.permute(0, 1, 3, 2)[:, :, None]  # + (N, K, 1, H, L)
        scores = scores.masked_fill(~key_mask[:, :, None, None, :], float("-inf"))  # (N, K, M, H, L)
        alpha = scores.softmax(dim=-1).to(x.dtype)  # (N, K, M, H, L)
        if self.entropy_log is not None:
            self.entropy_log.append(attention_entropy(alpha, key_mask.sum(-1)[:, :, None, None]))
        alpha = alpha.view(n, k * m * h, length)  # (N, K*M*H, L)
        pooled = torch.bmm(alpha, x).view(n, k, m, h, d)  # (N, K, M, H, d): alpha X~ per head
        w_v = self.v_proj.weight.view(h, dh, d)  # (H, D, d)
        return torch.einsum("nkmhd,hed->nkmhe", pooled, w_v).reshape(n, k, m, d)  # (N, K, M, d)

    def _sdpa(
        self, q: torch.Tensor, x: torch.Tensor, key_mask: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        n, k, m, d = q.shape
        length, h, dh = x.shape[1], self.heads, self.head_dim
        qh = self.q_proj(q).view(n, k * m, h, dh).transpose(1, 2)  # (N, H, K*M, D)
        keys = self.k_proj(x).view(n, length, h, dh).transpose(1, 2)  # (N, H, L, D)
        v = self.v_proj(x).view(n, length, h, dh).transpose(1, 2)  # (N, H, L, D)
        mask: torch.Tensor
        if k == 1 and bias is None:
            mask = key_mask[:, :, None, :]  # (N, 1, 1, L): broadcast over heads and queries
        else:
            allowed = key_mask[:, :, None, :].expand(n, k, m, length).reshape(n, 1, k * m, length)
            if bias is None:
                mask = allowed
            else:
                per_query = bias.permute(0, 3, 1, 2)[:, :, :, None, :].expand(n, h, k, m, length)
                mask = per_query.reshape(n, h, k * m, length).masked_fill(~allowed, float("-inf"))
                mask = mask.to(qh.dtype)  # (N, H, K*M, L) float: SDPA wants the query's dtype
        ctx = F.scaled_dot_product_attention(qh, keys, v, attn_mask=mask)  # (N, H, K*M, D)
        if self.entropy_log is not None:  # SDPA does not return its weights: rebuild them
            logits = qh @ keys.transpose(-1, -2) / math.sqrt(dh)  # (N, H, K*M, L)
            logits = logits + mask if mask.dtype != torch.bool else logits.masked_fill(~mask, float("-inf"))
            seen = key_mask[:, :, None, :].expand(n, k, m, length).reshape(n, 1, k * m, length).sum(-1)
            self.entropy_log.append(attention_entropy(logits.softmax(-1), seen))
        return ctx.transpose(1, 2).reshape(n, k, m, d)  # (N, K, M, d)


class STCAEncoder(nn.Module):
    """The stack: X~(i) = LN(SwiGLU_i(X)) (once per request), q(1) = LN(SwiGLU_1(x_t)),
    o(i) = Attn_i(q(i), X~(i)), q(i+1) = LN(SwiGLU_{i+1}([o(1)..o(i), x_t] W_C(i+1))),
    z = SwiGLU([o(1)..o(n), x_t] W_Z), or with config.history_pool
    z = SwiGLU([o(1)..o(n), LN(mean X), x_t] W_Z). With config.history_residual every LN(SwiGLU(y)) above is
    LN(y + SwiGLU(y)) (TokenTransform).

    history_time="bias" (the request-independent history, for MRLB): the event tokens X carry no
    age, so X~(i) is a function of the events alone and one X~(i) per user-day window serves all
    of the day's requests; the age enters per request as a learned bias b_i[h, age bucket] on
    layer i's head-h attention logits (T5's bucketed relative bias and HSTU's time bias, with
    the same log2 age buckets the token used). Why a logit bias and not an additive key/value
    term: the age then costs one (K, L, H) table lookup per request and layer, nothing per
    target or per model dimension, and the shortcut attention (X~ W_K and X~ W_V never built)
    stays as it is; a key/value term would add a per-request (L, d) tensor (or a per-bucket
    scatter) to every layer. What it gives up: the age now steers where a target looks but is
    not part of what it reads (the pooled values). The table starts at zero (no age preference),
    like every side table (Ranker._zero_side_embeddings)."""

    def __init__(self, config: STCAConfig) -> None:
        super().__init__()
        d, n = config.d, config.layers

        def transforms() -> nn.ModuleList:
            return nn.ModuleList(
                TokenTransform(d, config.hidden, residual=config.history_residual) for _ in range(n)
            )

        self.history_transforms = transforms()
        # The paper writes SwiGLU_1 for both X~(1) and q(1); tie_query_history_ffn=False gives the
        # queries their own LN(SwiGLU_i) instead.
        self.query_transforms = self.history_transforms if config.tie_query_history_ffn else transforms()
        self.query_fusions = nn.ModuleList(
            nn.Linear((i + 1) * d, d, bias=False) for i in range(1, n)
        )  # W_C(i+1)
        self.attentions = nn.ModuleList(TargetAttention(config) for _ in range(n))
        # W_Z over [o(1)..o(n), (LN(mean X) with history_pool), x_t]
        self.output_fusion = nn.Linear((n + 1 + config.history_pool) * d, d, bias=False)
        self.output = SwiGLU(d, config.hidden, d)
        self.pool_norm = nn.LayerNorm(d) if config.history_pool else None
        self.age_biases: nn.ModuleList | None = None  # b_i: age bucket -> one logit bias per head
        if config.history_time == "bias":
            tables = [nn.Embedding(config.time_buckets, config.heads) for _ in range(n)]
            for table in tables:
                nn.init.zeros_(table.weight)
            self.age_biases = nn.ModuleList(tables)

    def forward(
        self, x: torch.Tensor, hist_mask: torch.Tensor, x_t: torch.Tensor, age: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, L, d) event tokens; hist_mask (B, L) bool; x_t (B, M, d) target tokens; age (B, L)
        age buckets (history_time="bias" only) -> z (B, M, d)."""
        return self.run(x, QueryLayout.per_request(hist_mask, age), x_t)

    def run(self, x: torch.Tensor, layout: QueryLayout, x_t: torch.Tensor) -> torch.Tensor:
        """x (N, L, d) history rows (requests' histories, or user-day windows); layout: which
        events of which row each query sees; x_t target tokens in the layout's query form,
        (B, M, d) or (T, 1, d) -> z of the same shape as x_t."""
        if (self.age_biases is None) != (layout.age is None):
            raise ValueError(
                f"history_time={'bias' if self.age_biases is not None else 'token'} needs "
                f"{'age buckets' if self.age_biases is not None else 'no age buckets'} in the query layout"
            )
        with record_function("stca.query_transform"):
            q = self.query_transforms[0](x_t)  # (..., d)
        outputs: list[torch.Tensor] = []
        for i, attention in enumerate(self.attentions):
            with record_function("stca.history_transform"):
                x_i = self.history_transforms[i](x)  # (N, L, d): once per row, shared by all its queries
            with record_function("stca.target_attention"):
                bias = None
                if self.age_biases is not None and layout.age is not None:
                    bias = self.age_biases[i](layout.age)  # (N, K, L, H)
                o = attention(layout.to_slots(q), x_i, layout.key_mask, layout.has_history, bias)
                outputs.append(layout.from_slots(o))  # (..., d), as x_t
            if i + 1 < len(self.attentions):
                with record_function("stca.query_fusion"):
                    fused = self.query_fusions[i](torch.cat([*outputs, x_t], dim=-1))  # (..., d)
                    q = self.query_transforms[i + 1](fused)
        if self.pool_norm is not None:
            with record_function("stca.history_pool"):
                outputs.append(self.pooled_history(x, layout, x_t))
        with record_function("stca.output_fusion"):
            return self.output(self.output_fusion(torch.cat([*outputs, x_t], dim=-1)))  # (..., d)

    def pooled_history(self, x: torch.Tensor, layout: QueryLayout, x_t: torch.Tensor) -> torch.Tensor:
        """LN(masked mean of the event tokens) each query's request sees, in x_t's layout; 0 for a
        request without history (STCAConfig.history_pool explains why)."""
        if self.pool_norm is None:
            raise ValueError("STCAEncoder.pooled_history needs config.history_pool=True")
        seen = (layout.key_mask & layout.has_history[..., None]).to(x.dtype)  # (N, K, L)
        pooled = torch.einsum("nkl,nld->nkd", seen, x) / seen.sum(-1, keepdim=True).clamp(min=1.0)
        pooled = self.pool_norm(pooled).masked_fill(~layout.has_history[..., None], 0.0)  # (N, K, d)
        m = layout.slot_targets if layout.slot_index is not None else x_t.shape[1]
        return layout.from_slots(pooled[:, :, None, :].expand(-1, -1, m, -1))  # as x_t


class RankingHead(nn.Module):
    """MLP over [z; x_t; user] -> one logit per task. LayerNorm, never BatchNorm: request-grouped
    batches are not IID (docs/design.md §7)."""

    def __init__(self, config: STCAConfig) -> None:
        super().__init__()
        width = 2 * config.d + config.id_dim
        self.net = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, config.head_hidden),
            nn.SiLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, config.head_hidden),
            nn.SiLU(),
        )
        self.output = nn.Linear(config.head_hidden, config.num_tasks)  # one logit per task

    def forward(self, z: torch.Tensor, x_t: torch.Tensor, user: torch.Tensor) -> torch.Tensor:
        """z, x_t (B, M, d); user (B, id_dim) -> logits (B, M, T)."""
        user = user[:, None, :].expand(-1, z.shape[1], -1)  # (B, M, id_dim)
        return self.output(self.net(torch.cat([z, x_t, user], dim=-1)))


def pointwise_batch(batch: RequestBatch) -> tuple[RequestBatch, tuple[torch.Tensor, torch.Tensor]]:
    """One row per real target, each with its own copy of the request's history (the flat layout
    a point-wise trainer reads); also the (request, target) index of each row."""
    rows, cols = batch.target_mask.nonzero(as_tuple=True)  # (N,), (N,)
    history = {name: getattr(batch, name)[rows] for name in HISTORY_FIELDS}  # (N, L) copies
    flat = RequestBatch(
        request_id=[batch.request_id[r] for r in rows.tolist()],
        user_id=batch.user_id[rows],
        request_ts=batch.request_ts[rows],
        hist_len=batch.hist_len[rows],
        num_targets=torch.ones_like(rows),
        tgt_item_id=batch.tgt_item_id[rows, cols][:, None],  # (N, 1)
        tgt_author_id=batch.tgt_author_id[rows, cols][:, None],
        tgt_position=batch.tgt_position[rows, cols][:, None],
        tgt_duration_ms=batch.tgt_duration_ms[rows, cols][:, None],
        labels=batch.labels[rows, cols][:, None, :],  # (N, 1, T)
        **history,
    )
    return flat, (rows, cols)


def _with_nonempty_history_axis(batch: RequestBatch) -> RequestBatch:
    """A batch whose L is 0 (no row has history) gets one padded column, so shapes stay regular."""
    if batch.hist_item_id.shape[1] > 0:
        return batch
    padded: dict[str, Any] = {name: F.pad(getattr(batch, name), (0, 1)) for name in HISTORY_FIELDS}  # (B, 1)
    return replace(batch, **padded)


class Ranker(nn.Module):
    """Embeddings, ranking head, loss and the two batching modes; subclasses define `encode`."""

    # STCAConfig.history_time values the model implements: the age-as-logit-bias form is STCA's.
    history_time_kinds: ClassVar[tuple[str, ...]] = ("token",)

    def __init__(self, config: STCAConfig) -> None:
        super().__init__()
        if config.history_time not in self.history_time_kinds:
            raise ConfigError(
                f"{type(self).__name__} supports history_time {self.history_time_kinds}, got "
                f"{config.history_time!r}; the request-independent history ('bias') is STCA's"
            )
        self.config = config
        self.item = nn.Embedding(config.item_buckets, config.id_dim)
        self.author = nn.Embedding(config.author_buckets, config.id_dim)
        self.user = nn.Embedding(config.user_buckets, config.id_dim)
        # P: one item -> one vector, history and target alike
        self.item_proj = nn.Linear(config.id_dim, config.d)
        self.events = EventEmbedding(config, self.item, self.author, self.item_proj)
        self.targets = TargetEmbedding(config, self.item, self.author, self.item_proj)
        self.head = RankingHead(config)
        self._zero_side_embeddings()

    def _zero_side_embeddings(self) -> None:
        """Every embedding table but the item's starts at zero, so at initialisation a token is its
        item and matching a target to its history is learnable. Author, action, time, watch ratio,
        target position, duration and user then grow where they pay. Started at N(0, 1) instead,
        these features outweighed the item, and on a planted "share of the target's topic in the
        history" task STCA and DIN stayed at AUC 0.5 while zero-initialised ones reached 0.8 in
        250 steps."""
        for module in self.modules():
            if isinstance(module, nn.Embedding) and module is not self.item:
                nn.init.zeros_(module.weight)

    def init_task_bias(self, rates: Sequence[float]) -> None:
        """Start each task's logit at the log-odds of its base rate (loader.label_rates). From 0
        (p = 0.5), rare tasks' early gradients reshape the shared trunk and, on the planted-signal
        data, kept STCA at chance for all tasks (benchmarks/quality.py); from the base rate it learns."""
        if len(rates) != self.config.num_tasks:
            raise ValueError(
                f"expected {self.config.num_tasks} rates for tasks {self.config.tasks}, got {list(rates)}"
            )
        r = torch.tensor(rates, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
        with torch.no_grad():
            self.head.output.bias.copy_(torch.log(r / (1 - r)))

    def history_parameters(self) -> list[nn.Parameter]:
        """The parameters only history events use (EventEmbedding's own: W_f, action, time, watch;
        not the item / author tables and P it shares with the targets): the gradient reaching them
        is the collapse alarm's history-path gradient (trainer.metrics.history_gradient)."""
        shared = {id(p) for p in self.targets.parameters()}
        return [p for p in self.events.parameters() if id(p) not in shared]

    def encode(self, x: torch.Tensor, hist_mask: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """x (B, L, d), hist_mask (B, L), x_t (B, M, d) -> z (B, M, d)."""
        raise NotImplementedError

    def encode_batch(self, x: torch.Tensor, batch: RequestBatch, x_t: torch.Tensor) -> torch.Tensor:
        """`encode` with the batch at hand, for encoders that read more of it (STCA's age bias)."""
        return self.encode(x, batch.hist_mask, x_t)

    def forward(self, batch: RequestBatch, mode: str = "rlb") -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits (B, M, T), loss). Padded targets get logit 0 and no loss."""
        if mode == "rlb":
            logits = self.logits(batch)  # (B, M, T)
        elif mode == "pointwise":
            flat, (rows, cols) = pointwise_batch(batch)
            flat_logits = self.logits(flat)  # (N, 1, T)
            logits = flat_logits.new_zeros(*batch.target_mask.shape, flat_logits.shape[-1])  # (B, M, T)
            logits = logits.index_put((rows, cols), flat_logits[:, 0])
        else:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        with record_function("loss"):
            loss = masked_bce_loss(logits, batch.labels, batch.target_mask, self.config.loss_weights)
        return logits, loss

    def logits(self, batch: RequestBatch) -> torch.Tensor:
        """(B, M, T) logits of the batch as it is (request-level), padded targets set to 0."""
        batch = _with_nonempty_history_axis(batch)
        with record_function("embed"):
            x = self.events(batch)  # (B, L, d)
            x_t = self.targets(batch)  # (B, M, d)
            user = self.user(hash_ids(batch.user_id, self.config.user_buckets))  # (B, id_dim)
        with record_function("encode"):
            z = self.encode_batch(x, batch, x_t)  # (B, M, d)
        with record_function("head"):
            logits = self.head(z, x_t, user)  # (B, M, T)
        return logits.masked_fill(~batch.target_mask[..., None], 0.0)

    @torch.no_grad()
    def predict(self, batch: RequestBatch) -> torch.Tensor:
        """(B, M, T) probabilities in eval mode (the caller's train/eval mode is restored);
        padded targets read 0.5: mask them with batch.target_mask."""
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self.logits(batch).float())
        finally:
            self.train(was_training)


class STCA(Ranker):
    """The STCA ranker: event/target tokens -> STCAEncoder -> ranking head."""

    history_time_kinds = HISTORY_TIME_KINDS

    def __init__(self, config: STCAConfig) -> None:
        super().__init__(config)
        self.encoder = STCAEncoder(config)

    def encode(self, x: torch.Tensor, hist_mask: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, hist_mask, x_t)

    def encode_batch(self, x: torch.Tensor, batch: RequestBatch, x_t: torch.Tensor) -> torch.Tensor:
        age = None
        if self.config.history_time == "bias":
            age = self.events.age_buckets(batch.request_ts[:, None], batch.hist_ts)  # (B, L)
        return self.encoder(x, batch.hist_mask, x_t, age)
