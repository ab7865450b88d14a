"""Synthetic `RequestBatch`es built directly as tensors, for tests and benchmarks (no loader, no
Spark).

Values follow the contract (loader/batch.py): left-aligned histories, oldest first, event times
strictly before the request, padding 0 after hist_len / num_targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from loader import HISTORY_FIELDS, TARGET_FIELDS, RequestBatch
from loader.grouped_batch import GroupedBatch
from schemas.constants import DAY_MS, SECOND_MS, day_start_ms
from schemas.fields import ACTION_BITS, TASKS
from trainer.config import STCAConfig

REQUEST_TS = day_start_ms("2026-01-01")


def random_batch(
    hist_lens: Sequence[int],
    num_targets: Sequence[int],
    *,
    max_hist: int | None = None,
    max_targets: int | None = None,
    num_items: int = 100_000,
    num_authors: int = 10_000,
    num_tasks: int = len(TASKS),
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> RequestBatch:
    """One request per entry of hist_lens / num_targets; L = max_hist or max(hist_lens), same for M."""
    if len(hist_lens) != len(num_targets):
        raise ValueError(
            f"hist_lens and num_targets differ in length: {len(hist_lens)} vs {len(num_targets)}"
        )
    g = torch.Generator().manual_seed(seed)
    b = len(hist_lens)
    length = max_hist if max_hist is not None else max(hist_lens, default=0)
    m = max_targets if max_targets is not None else max(num_targets, default=0)
    if max(hist_lens, default=0) > length or max(num_targets, default=0) > m:
        raise ValueError(
            f"padded sizes L={length}, M={m} below the real maxima {max(hist_lens)}, {max(num_targets)}"
        )
    hist_len = torch.tensor(list(hist_lens), dtype=torch.int64)
    n_tgt = torch.tensor(list(num_targets), dtype=torch.int64)
    hist_mask = torch.arange(length)[None, :] < hist_len[:, None]  # (B, L)
    tgt_mask = torch.arange(m)[None, :] < n_tgt[:, None]  # (B, M)

    def masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(
            mask if x.dim() == mask.dim() else mask[..., None], x, torch.zeros((), dtype=x.dtype)
        )

    request_ts = REQUEST_TS + torch.randint(0, DAY_MS, (b,), generator=g)
    # Gaps between consecutive events (1 s .. 3 days); an event's age is the sum of the real gaps
    # from it to the newest event, so times increase along the row and stay before the request.
    gaps = torch.where(hist_mask, torch.randint(SECOND_MS, 3 * DAY_MS, (b, length), generator=g), 0)
    age = gaps.flip(1).cumsum(1).flip(1)  # (B, L)
    hist_ts = request_ts[:, None] - age  # (B, L)
    duration = torch.randint(3_000, 120_000, (b, length), generator=g, dtype=torch.int32)
    watch = (duration.float() * torch.rand(b, length, generator=g) * 1.5).to(torch.int32)
    return RequestBatch(
        request_id=[f"r{seed}-{i}" for i in range(b)],
        user_id=torch.randint(0, 1 << 40, (b,), generator=g),
        request_ts=request_ts,
        hist_len=hist_len,
        hist_item_id=masked(torch.randint(1, num_items, (b, length), generator=g), hist_mask),
        hist_author_id=masked(torch.randint(1, num_authors, (b, length), generator=g), hist_mask),
        hist_action=masked(
            torch.randint(0, 2 ** len(ACTION_BITS), (b, length), generator=g, dtype=torch.int32), hist_mask
        ),
        hist_ts=masked(hist_ts, hist_mask),
        hist_watch_ms=masked(watch, hist_mask),
        hist_duration_ms=masked(duration, hist_mask),
        num_targets=n_tgt,
        tgt_item_id=masked(torch.randint(1, num_items, (b, m), generator=g), tgt_mask),
        tgt_author_id=masked(torch.randint(1, num_authors, (b, m), generator=g), tgt_mask),
        tgt_position=masked(torch.arange(m, dtype=torch.int32).expand(b, m).contiguous(), tgt_mask),
        tgt_duration_ms=masked(
            torch.randint(3_000, 120_000, (b, m), generator=g, dtype=torch.int32), tgt_mask
        ),
        labels=masked(torch.randint(0, 2, (b, m, num_tasks), generator=g).float(), tgt_mask),
    ).to(device)


def planted_batch(
    n: int,
    length: int,
    m: int,
    *,
    clean_recent: int = 0,
    seed: int = 0,
    num_topics: int = 10,
    items_per_topic: int = 6,
    old_interest_prob: float = 0.6,
    target_interest_prob: float = 0.3,
    interest_logit: float = 2.0,
    base_logit: float = -1.0,
) -> RequestBatch:
    """The planted topic-share signal as tensors: n requests of `length` events and m targets.

    topic = item_id % num_topics and author_id = topic + 1. Each request has two interest topics;
    events older than the last `clean_recent` come from them with old_interest_prob, the recent
    ones never lean, and a target comes from them with target_interest_prob (else any topic). Label
    (every task) ~ Bernoulli(sigmoid(base_logit + interest_logit * [target topic is an interest])).
    So only the history's old part says which targets finish. The topic is in the item id, the one
    table that starts non-zero (trainer/model.py): with few items per topic a short run learns
    which items share a topic. Every other feature is random_batch's noise; every event a play."""
    g = np.random.default_rng(seed)
    rows = np.arange(n)[:, None]
    interests = np.stack([g.integers(0, num_topics, n), g.integers(0, num_topics, n)], 1)  # (n, 2)
    same = interests[:, 1] == interests[:, 0]
    interests[:, 1] = np.where(same, (interests[:, 0] + 1) % num_topics, interests[:, 1])
    old = np.arange(length)[None, :] < length - clean_recent  # (1, length)
    lean = old & (g.random((n, length)) < old_interest_prob)
    topic = np.where(
        lean, interests[rows, g.integers(0, 2, (n, length))], g.integers(0, num_topics, (n, length))
    )
    t_lean = g.random((n, m)) < target_interest_prob
    t_topic = np.where(t_lean, interests[rows, g.integers(0, 2, (n, m))], g.integers(0, num_topics, (n, m)))
    is_interest = (t_topic[:, :, None] == interests[:, None, :]).any(-1)  # (n, m)
    label = g.random((n, m)) < 1 / (1 + np.exp(-(base_logit + interest_logit * is_interest)))
    item = topic + num_topics * g.integers(0, items_per_topic, (n, length))
    t_item = t_topic + num_topics * g.integers(0, items_per_topic, (n, m))
    base = random_batch([length] * n, [m] * n, seed=seed)
    labels = torch.from_numpy(label.astype(np.float32))[..., None].expand_as(base.labels).contiguous()
    return replace(
        base,
        hist_item_id=torch.from_numpy(item.astype(np.int64)),
        hist_author_id=torch.from_numpy(topic.astype(np.int64) + 1),
        hist_action=torch.ones_like(base.hist_action),
        tgt_item_id=torch.from_numpy(t_item.astype(np.int64)),
        tgt_author_id=torch.from_numpy(t_topic.astype(np.int64) + 1),
        labels=labels,
    )


def tiny_config(**overrides: Any) -> STCAConfig:
    """A model small enough for unit tests (milliseconds per step)."""
    values: dict[str, Any] = {
        "d": 16,
        "heads": 2,
        "layers": 3,
        "id_dim": 8,
        "item_buckets": 512,
        "author_buckets": 64,
        "user_buckets": 64,
        "time_buckets": 16,
        "position_buckets": 8,
        "duration_buckets": 8,
        "head_hidden": 16,
    }
    return STCAConfig(**{**values, **overrides})


def membership_batch(
    n: int,
    length: int,
    m: int,
    *,
    seed: int = 0,
    num_items: int = 20_000,
    zipf_exponent: float = 1.0,
    num_authors: int = 2_000,
    positive_rate: float = 0.5,
    min_length: int | None = None,
) -> RequestBatch:
    """The sanity task "label = 1 iff the target item occurs in the history", as tensors.

    Items are drawn from a power law over 1 .. num_items (P(rank k) ~ k**-zipf_exponent), the
    author is a function of the item (item % num_authors + 1). Each request has `m` distinct target
    items drawn from the same law; each target is positive with probability `positive_rate`,
    independently of its item. History events (length drawn uniformly in [min_length, length],
    default length) that hit a negative target are redrawn; each positive target is then written
    over one event at a random position (the positives get distinct positions). So the label
    depends on the history only: a model that reads the target alone (its item, its popularity)
    scores AUC 0.5. Every task carries the same label. Other fields are random_batch's noise."""
    if not 1 <= m <= (min_length if min_length is not None else length):
        raise ValueError(
            f"need 1 <= m <= the shortest history, got m={m}, length={length}, min_length={min_length}"
        )
    g = np.random.default_rng(seed)
    p = np.arange(1, num_items + 1, dtype=np.float64) ** -zipf_exponent
    p /= p.sum()
    lo = min_length if min_length is not None else length
    hist_lens = g.integers(lo, length + 1, n)  # (n,)
    item = g.choice(num_items, size=(n, length), p=p) + 1  # (n, L)
    t_item = np.stack([g.choice(num_items, size=m, replace=False, p=p) + 1 for _ in range(n)])  # (n, m)
    label = g.random((n, m)) < positive_rate  # (n, m)
    # Redraw every event that equals one of the request's targets, until none does.
    hit = (item[:, :, None] == t_item[:, None, :]).any(-1)  # (n, L)
    while hit.any():
        item[hit] = g.choice(num_items, size=int(hit.sum()), p=p) + 1
        hit = (item[:, :, None] == t_item[:, None, :]).any(-1)
    # Each positive target replaces one event at a distinct random position of the real history.
    for r in range(n):
        pos = g.permutation(int(hist_lens[r]))[:m]  # (m,) distinct positions
        item[r, pos[label[r]]] = t_item[r, label[r]]
    real = np.arange(length)[None, :] < hist_lens[:, None]  # (n, L)
    item = np.where(real, item, 0)
    base = random_batch(hist_lens.tolist(), [m] * n, max_hist=length, seed=seed)
    labels = torch.from_numpy(label.astype(np.float32))[..., None].expand_as(base.labels).contiguous()
    return replace(
        base,
        hist_item_id=torch.from_numpy(item.astype(np.int64)),
        hist_author_id=torch.from_numpy(np.where(real, item % num_authors + 1, 0).astype(np.int64)),
        tgt_item_id=torch.from_numpy(t_item.astype(np.int64)),
        tgt_author_id=torch.from_numpy((t_item % num_authors + 1).astype(np.int64)),
        labels=labels,
    )


def user_day_batch(
    requests_per_user: Sequence[int],
    *,
    l_max: int,
    max_targets: int,
    min_targets: int = 1,
    first_events: tuple[int, int] | None = None,
    gap_events: tuple[int, int] = (0, 12),
    num_items: int = 100_000,
    num_authors: int = 10_000,
    num_tasks: int = len(TASKS),
    seed: int = 0,
) -> GroupedBatch:
    """User-days as a `GroupedBatch` (loader/grouped_batch.py): one event sequence per user, its
    requests at increasing times, each request's history the last <= l_max events before it.

    User u has requests_per_user[u] requests; before the first come n0 events (uniform in
    first_events, default [0, l_max + l_max // 4]: cold starts, short and full histories), and
    between consecutive requests uniform(gap_events) more (0: two requests read the same
    history). Events and requests share one timeline of strictly increasing times, so every event
    of a request's slice is strictly before its request_ts and every later event after it. The
    window runs from the first request's first history event to the last event before the last
    request. Each request has min_targets..max_targets targets; other values are random_batch's
    noise."""
    if l_max < 1 or not 1 <= min_targets <= max_targets or min(requests_per_user, default=1) < 1:
        raise ValueError(
            f"need l_max >= 1, 1 <= min_targets <= max_targets and >= 1 request per user, got "
            f"l_max={l_max}, min_targets={min_targets}, max_targets={max_targets}, "
            f"requests_per_user={list(requests_per_user)}"
        )
    g = np.random.default_rng(seed)
    lo, hi = first_events if first_events is not None else (0, l_max + l_max // 4)
    window: dict[str, list[np.ndarray]] = {name: [] for name in HISTORY_FIELDS}
    per_request: dict[str, list[int]] = {"group": [], "request_ts": [], "hist_start": [], "hist_end": []}
    window_len: list[int] = []
    for u, k in enumerate(requests_per_user):
        cuts = int(g.integers(lo, hi + 1)) + np.concatenate(
            [[0], np.cumsum(g.integers(gap_events[0], gap_events[1] + 1, k - 1))]
        ).astype(np.int64)  # (k,) events before each request
        events = int(cuts[-1])
        # One timeline: request j comes right after event cuts[j] - 1; steps of 1 s .. 1 day.
        slot = np.arange(events + k)
        is_request = np.zeros(events + k, dtype=bool)
        is_request[cuts + np.arange(k)] = True
        ts = REQUEST_TS - 40 * DAY_MS + np.cumsum(g.integers(SECOND_MS, DAY_MS // 4, events + k))
        event_ts, request_ts = ts[slot[~is_request]], ts[is_request]  # (events,), (k,)
        first = max(0, int(cuts[0]) - l_max)  # the window's first event: the first request's cut
        for j in range(k):
            per_request["group"].append(u)
            per_request["request_ts"].append(int(request_ts[j]))
            per_request["hist_start"].append(max(0, int(cuts[j]) - l_max) - first)
            per_request["hist_end"].append(int(cuts[j]) - first)
        n = events - first
        window_len.append(n)
        duration = g.integers(3_000, 120_000, n)
        values = {
            "hist_item_id": g.integers(1, num_items, n),
            "hist_author_id": g.integers(1, num_authors, n),
            "hist_action": g.integers(0, 2 ** len(ACTION_BITS), n),
            "hist_ts": event_ts[first:],
            "hist_watch_ms": (duration * g.random(n) * 1.5).astype(np.int64),
            "hist_duration_ms": duration,
        }
        for name in HISTORY_FIELDS:
            window[name].append(values[name])
    r = len(per_request["group"])
    num_targets = g.integers(min_targets, max_targets + 1, r)
    t = int(num_targets.sum())
    int32 = {"hist_action", "hist_watch_ms", "hist_duration_ms", "tgt_position", "tgt_duration_ms"}

    def tensor(name: str, values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(values, dtype=np.int32 if name in int32 else np.int64))

    targets = {
        "tgt_item_id": g.integers(1, num_items, t),
        "tgt_author_id": g.integers(1, num_authors, t),
        "tgt_position": np.concatenate([np.arange(n) for n in num_targets]),
        "tgt_duration_ms": g.integers(3_000, 120_000, t),
    }
    return GroupedBatch(
        request_id=[f"u{seed}-{u}-r{j}" for u, k in enumerate(requests_per_user) for j in range(k)],
        user_id=torch.from_numpy(g.integers(0, 1 << 40, len(requests_per_user))),
        window_len=torch.tensor(window_len, dtype=torch.int64),
        window={name: tensor(name, np.concatenate(window[name])) for name in HISTORY_FIELDS},
        group=torch.tensor(per_request["group"], dtype=torch.int64),
        request_ts=torch.tensor(per_request["request_ts"], dtype=torch.int64),
        hist_start=torch.tensor(per_request["hist_start"], dtype=torch.int64),
        hist_end=torch.tensor(per_request["hist_end"], dtype=torch.int64),
        num_targets=torch.from_numpy(num_targets.astype(np.int64)),
        targets={name: tensor(name, targets[name]) for name in TARGET_FIELDS},
        labels=torch.from_numpy(g.integers(0, 2, (t, num_tasks)).astype(np.float32)),
    )
