"""AUC / GAUC / log loss against hand-computed values and an O(n^2) brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from synthetic.batches import random_batch
from trainer.metrics import MetricAccumulator, auc, average_ranks, gauc, log_loss, task_metrics


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
