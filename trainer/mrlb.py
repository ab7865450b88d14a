"""MRLB (multi-request batching): STCA trained on a user-day's requests together, computing the
history side once per user-day window (docs/training.md, "MRLB").

RLB embeds and transforms a request's history once for its m targets. A user's requests of one
day read nearly the same events, so with a request-independent history (STCAConfig.history_time
"bias": the event token carries no age, trainer/model.py `STCAEncoder`) the event embedding and
the per-layer history transform X~(i) = LN(X + SwiGLU_i(X)) (12·L·d² FLOPs a layer, the dominant
cost at L = 10k) run once per window of a `GroupedBatch` (loader/grouped_batch.py) and serve all
of its requests. What stays per request is cheap: its targets' queries, its age bias (one table
lookup per event) and its attention, where each request's targets see only their own
[hist_start, hist_end) slice of the window (request-aware masking, `grouped_layout`).

Same objective as RLB and point-wise: one BCE per real target, averaged over every real target of
the batch (trainer/losses.py), so on the same requests the three modes give the same loss and
gradients (tests/test_mrlb.py). `MRLB` is the module a training loop (and DDP) wraps:
`MRLB(stca)(grouped) -> (logits (sum(num_targets), T), loss)`, the logits in the batch's flat
target order."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.profiler import record_function

from loader.grouped_batch import GroupedBatch
from trainer.losses import masked_bce_loss
from trainer.model import STCA, QueryLayout, Ranker, hash_ids

AgeBuckets = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (request_ts, hist_ts) -> buckets


def _starts(counts: torch.Tensor) -> torch.Tensor:
    """Exclusive prefix sums: where each run of `counts` starts in the flat layout."""
    return torch.cumsum(counts, 0) - counts


def grouped_layout(batch: GroupedBatch, window_ts: torch.Tensor, age_buckets: AgeBuckets) -> QueryLayout:
    """Request slots over the (G, W) padded windows: group g's k-th request is slot (g, k),
    K = the most requests of any group, M = the most targets of any request.

    window_ts (G, W): each window's event times (padding anywhere, it is masked). Slot (g, k) may
    see window events [hist_start, hist_end) of its request and nothing else; an empty slot (a
    padded one, or a request without history) gets the dummy key 0 and a zero output, as in
    trainer.model.attention_key_mask. The queries are one row per real target, in the batch's flat
    target order, placed at (slot, position within its request)."""
    g, r, width = batch.num_groups, batch.size, window_ts.shape[1]
    device = window_ts.device
    counts = torch.bincount(batch.group, minlength=g)  # (G,) requests per group
    k = max(int(counts.max()) if r else 0, 1)
    m = max(int(batch.num_targets.max()) if r else 0, 1)
    rank = torch.arange(r, device=device) - _starts(counts)[batch.group]  # (R,) request's rank in its group
    slot = batch.group * k + rank  # (R,) into (G*K)
    request_of_target = torch.repeat_interleave(torch.arange(r, device=device), batch.num_targets)  # (T,)
    position = (
        torch.arange(request_of_target.shape[0], device=device)
        - _starts(batch.num_targets)[request_of_target]
    )  # (T,) target's position within its request

    def per_slot(values: torch.Tensor) -> torch.Tensor:
        return values.new_zeros(g * k).index_copy(0, slot, values).view(g, k)  # (G, K)

    start, end, request_ts = per_slot(batch.hist_start), per_slot(batch.hist_end), per_slot(batch.request_ts)
    pos = torch.arange(width, device=device)  # (W,)
    key_mask = (pos >= start[..., None]) & (pos < end[..., None])  # (G, K, W): the slot's own slice
    has_history = end > start  # (G, K)
    key_mask[..., 0] |= ~has_history  # the dummy key of empty slots
    age = age_buckets(request_ts[..., None], window_ts[:, None, :])  # (G, K, W)
    return QueryLayout(
        key_mask=key_mask,
        has_history=has_history,
        age=age,
        slot_index=slot[request_of_target] * m + position,
        slot_targets=m,
    )


def grouped_logits(model: STCA, batch: GroupedBatch) -> torch.Tensor:
    """(sum(num_targets), T) logits of the batch's targets, in its flat target order. The event
    embedding and every layer's history transform run once per window; `batch` is not validated
    here (MRLB.forward does)."""
    windows, _ = batch.padded_windows()  # HISTORY_FIELDS -> (G, W); padding is masked below
    if windows["hist_item_id"].shape[1] == 0:  # no window has events: one padded column
        windows = {name: F.pad(values, (0, 1)) for name, values in windows.items()}  # (G, 1)
    with record_function("embed"):
        x = model.events.tokens(windows, None)  # (G, W, d): request-independent event tokens
        x_t = model.targets.tokens({name: v[:, None] for name, v in batch.targets.items()})  # (T, 1, d)
        request_of_target = torch.repeat_interleave(
            torch.arange(batch.size, device=batch.group.device), batch.num_targets
        )  # (T,)
        users = batch.user_id[batch.group[request_of_target]]  # (T,)
        user = model.user(hash_ids(users, model.config.user_buckets))  # (T, id_dim)
    layout = grouped_layout(batch, windows["hist_ts"], model.events.age_buckets)
    with record_function("encode"):
        z = model.encoder.run(x, layout, x_t)  # (T, 1, d)
    with record_function("head"):
        return model.head(z, x_t, user)[:, 0]  # (T, tasks)


def check_mrlb_model(model: Ranker) -> STCA:
    """The model MRLB can train: STCA with the request-independent history; else a ValueError
    saying what to set."""
    if not isinstance(model, STCA):
        raise ValueError(
            f"MRLB trains STCA only (the shared history transform is STCA's), got {type(model).__name__}; "
            "use --model stca, or --mode rlb for the other models"
        )
    if model.config.history_time != "bias":
        raise ValueError(
            f"MRLB needs STCA's request-independent history, got history_time={model.config.history_time!r}: "
            "an event token that carries its age at the request cannot be shared between requests; "
            'pass --model-config \'{"history_time": "bias"}\' (or STCAConfig(history_time="bias"))'
        )
    return model


class MRLB(nn.Module):
    """STCA over grouped batches: `forward(batch) -> (logits (sum(num_targets), T), loss)`, the
    loss the same global mean over all real targets as RLB. The wrapped model is the one to save
    and evaluate (on per-request batches, `model(batch, "rlb")`); this module adds no weights."""

    def __init__(self, model: Ranker) -> None:
        super().__init__()
        self.model = check_mrlb_model(model)

    def forward(self, batch: GroupedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        batch.validate()  # GroupedBatchError naming the request, before any compute
        logits = grouped_logits(self.model, batch)  # (T, tasks)
        with record_function("loss"):
            every = torch.ones(1, logits.shape[0], dtype=torch.bool, device=logits.device)  # (1, T)
            loss = masked_bce_loss(logits[None], batch.labels[None], every, self.model.config.loss_weights)
        return logits, loss
