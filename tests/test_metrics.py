"""AUC / GAUC / log loss against hand-computed values and an O(n^2) brute force; the user bootstrap's
weighted AUC against duplicated data, its coverage on simulated data, and absent metrics."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from synthetic.batches import random_batch
from trainer.metrics import (
    MetricAccumulator,
    _Grouped,
    _replicate_aucs,
    _replicate_gaucs,
    auc,
    average_ranks,
    bootstrap_counts,
    bootstrap_intervals,
    gauc,
    log_loss,
    paired_difference,
    task_metrics,
)


def brute_force_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_hand_example_with_ties() -> None:
    # Pairs (pos, neg): (0.8, 0.1) win, (0.8, 0.4) win, (0.4, 0.1) win, (0.4, 0.4) tie -> 3.5 / 4.
    assert auc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]) == pytest.approx(0.875)
    assert auc([0.3, 0.2, 0.1], [1, 1, 0]) == 1.0
    assert auc([0.5, 0.5], [1, 0]) == 0.5
    assert math.isnan(auc([0.1, 0.2], [1, 1]))
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_auc_matches_brute_force_on_random_data() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        scores = rng.integers(0, 6, n) / 5.0  # coarse: many ties
        labels = rng.integers(0, 2, n)
        if labels.min() == labels.max():
            continue
        assert auc(scores, labels) == pytest.approx(brute_force_auc(scores, labels), abs=1e-12)


def test_gauc_is_impression_weighted_over_users_with_both_classes() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.2, 0.3, 0.4, 0.7, 0.6])
    labels = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    users = np.array([1, 1, 2, 2, 2, 2, 3, 3])  # user 3 has one class only: left out
    # user 1: AUC 1 over 2 impressions; user 2: pos {0.2, 0.3} vs neg {0.5, 0.4}: 0 wins -> AUC 0,
    # 4 impressions.
    assert gauc(scores, labels, users) == pytest.approx((2 * 1.0 + 4 * 0.0) / 6)
    assert math.isnan(gauc(scores, labels, np.arange(8)))


def test_gauc_matches_brute_force_on_random_data() -> None:
    rng = np.random.default_rng(1)
    scores, labels, users = rng.random(200).round(2), rng.integers(0, 2, 200), rng.integers(0, 15, 200)
    total, weight = 0.0, 0
    for u in np.unique(users):
        sel = users == u
        if labels[sel].min() != labels[sel].max():
            total += sel.sum() * brute_force_auc(scores[sel], labels[sel])
            weight += sel.sum()
    assert gauc(scores, labels, users) == pytest.approx(total / weight, abs=1e-12)


def test_log_loss_hand_example_and_clipping() -> None:
    expected = -(math.log(0.8) + math.log(1 - 0.4)) / 2
    assert log_loss([0.8, 0.4], [1, 0]) == pytest.approx(expected)
    assert math.isfinite(log_loss([0.0, 1.0], [1, 0]))  # clipped, not inf


def test_accumulator_uses_real_targets_only() -> None:
    batch = random_batch([3, 2], [2, 1], max_targets=3, seed=5, num_tasks=2)
    probs = torch.rand(2, 3, 2)
    probs[~batch.target_mask] = float("nan")  # padded targets must never be read
    acc = MetricAccumulator(["finish", "like"])
    acc.update(batch, probs)
    result = acc.compute()
    mask = batch.target_mask
    expected = task_metrics(
        probs[mask], batch.labels[mask], batch.user_id[:, None].expand_as(mask)[mask], ["finish", "like"]
    )
    assert result.keys() == {"finish", "like"}
    assert result["finish"]["n"] == 3
    assert result["like"]["logloss"] == pytest.approx(expected["like"]["logloss"])
    assert math.isfinite(result["finish"]["logloss"])


def test_weighted_replicate_auc_and_gauc_equal_the_plain_metrics_on_duplicated_data() -> None:
    # A replicate weights each impression by its user's multiplicity: that must be exactly the
    # metric of the data with each user's impressions repeated that many times (ties included).
    rng = np.random.default_rng(2)
    scores, labels, users = rng.integers(0, 8, 300) / 8.0, rng.integers(0, 2, 300), rng.integers(0, 40, 300)
    data = _Grouped.of(scores, labels, users)
    counts = bootstrap_counts(data.n_users, replicates=5, seed=3)
    code = np.unique(users, return_inverse=True)[1]
    for r in range(5):
        times = counts[r][code].astype(int)
        dup = np.repeat(scores, times), np.repeat(labels, times)
        assert _replicate_aucs(data, counts[r : r + 1])[0] == pytest.approx(auc(*dup), abs=1e-12)
        # GAUC: each copy of a resampled user counts as its own user, so the per-user AUC is
        # unchanged and its weight is multiplicity x impressions.
        assert _replicate_gaucs(data, counts[r : r + 1])[0] == pytest.approx(
            _gauc_with_copies(scores, labels, users, counts[r], code), abs=1e-12
        )
    assert _replicate_aucs(data, np.ones((1, data.n_users)))[0] == pytest.approx(auc(scores, labels))


def _gauc_with_copies(scores: np.ndarray, labels: np.ndarray, users: np.ndarray, count: np.ndarray,
                      code: np.ndarray) -> float:  # fmt: skip
    """GAUC over a resample built literally: user u appears count[u] times, each copy a new user."""
    s_parts, y_parts, g_parts, next_id = [], [], [], 0
    for u in range(count.size):
        for _ in range(int(count[u])):
            sel = code == u
            s_parts.append(scores[sel])
            y_parts.append(labels[sel])
            g_parts.append(np.full(sel.sum(), next_id))
            next_id += 1
    return gauc(np.concatenate(s_parts), np.concatenate(y_parts), np.concatenate(g_parts))


def _clustered(rng: np.random.Generator, n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Impressions whose scores and labels share a per-user effect (so they are correlated within
    a user, the case a bootstrap over impressions gets wrong)."""
    per_user = rng.integers(2, 12, n_users)
    users = np.repeat(np.arange(n_users), per_user)
    taste, offset = rng.normal(0, 1, n_users)[users], rng.normal(0, 1, n_users)[users]
    labels = (rng.random(users.size) < 1 / (1 + np.exp(-(taste - 0.5)))).astype(int)
    scores = 0.8 * labels + 0.6 * taste + 0.8 * offset + rng.normal(0, 1, users.size)
    return scores, labels, users


def test_user_bootstrap_covers_the_true_auc_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(7)
    truth = auc(*_clustered(rng, 200_000)[:2])  # the population AUC, to about 1e-3
    hits = 0
    for _ in range(200):
        scores, labels, users = _clustered(rng, 150)
        lo, hi = bootstrap_intervals(scores, labels, users, replicates=200, seed=int(rng.integers(1 << 30)))[
            "auc_ci"
        ] or (math.nan, math.nan)
        hits += lo <= truth <= hi
    assert 0.88 <= hits / 200 <= 0.99, hits


def test_interval_is_wider_with_fewer_users() -> None:
    rng = np.random.default_rng(8)
    width = {}
    for n_users in (40, 1_000):
        ci = bootstrap_intervals(*_clustered(rng, n_users), seed=1)
        assert ci["auc_ci"] is not None and ci["gauc_ci"] is not None
        width[n_users] = ci["auc_ci"][1] - ci["auc_ci"][0]
    assert width[40] > 2 * width[1_000]


def test_a_task_without_positives_is_absent_not_nan_and_json_is_strict() -> None:
    rng = np.random.default_rng(9)
    probs = rng.random((50, 2))
    labels = np.stack([rng.integers(0, 2, 50), np.zeros(50)], axis=1)
    users = rng.integers(0, 10, 50)
    out = task_metrics(probs, labels, users, ["finish", "like"], replicates=50)
    assert {"auc", "auc_ci", "gauc", "gauc_ci"} <= out["finish"].keys()
    assert out["finish"]["auc_ci"][0] <= out["finish"]["auc"] <= out["finish"]["auc_ci"][1]
    assert out["like"]["absent"] == "no positives" and "auc" not in out["like"] and "gauc" not in out["like"]
    json.dumps(out, allow_nan=False)  # raises on any NaN


def test_paired_difference_needs_an_interval_that_excludes_zero() -> None:
    rng = np.random.default_rng(10)
    scores, labels, users = _clustered(rng, 300)
    better = paired_difference(scores + 1.0 * labels, scores, labels, users)
    assert better["verdict"] == "a wins" and better["diff_ci"][0] > 0
    noise = paired_difference(scores + rng.normal(0, 0.3, scores.size), scores, labels, users, metric="gauc")
    assert noise["verdict"] == "no difference" and noise["diff_ci"][0] <= 0 <= noise["diff_ci"][1]
    assert paired_difference(scores, scores + labels, labels, users)["verdict"] == "b wins"
