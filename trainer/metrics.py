"""Ranking metrics per task: AUC, per-user GAUC and log loss (numpy only, no sklearn).

AUC is computed from average ranks, so tied scores count one half (the Mann-Whitney U statistic).
GAUC is the impression-weighted mean of per-user AUCs over users who have both classes: the
metric that matches how a feed ranks items for one user at a time."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from loader import RequestBatch

LOGLOSS_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] so log loss stays finite


def _np(x: np.ndarray | torch.Tensor | Sequence[float]) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def average_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of `scores`, ties sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank of the last element of each tie group
    return (upper - (counts - 1) / 2.0)[inverse]


def auc(scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """P(score of a random positive > score of a random negative), ties 1/2; NaN if a class is missing."""
    s = _np(scores).astype(np.float64).ravel()
    y = _np(labels).ravel() > 0.5
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in size: {s.shape} vs {y.shape}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def gauc(
    scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, groups: np.ndarray | torch.Tensor
) -> float:
    """sum_u n_u AUC_u / sum_u n_u over groups (users) with both classes; n_u = the user's
    impressions. NaN when no user has both classes."""
    s = _np(scores).astype(np.float64).ravel()
    y = _np(labels).ravel() > 0.5
    g = _np(groups).ravel()
    if not s.shape == y.shape == g.shape:
        raise ValueError(f"scores, labels and groups differ in size: {s.shape}, {y.shape}, {g.shape}")
    order = np.argsort(g, kind="stable")
    _, starts = np.unique(g[order], return_index=True)
    total, weight = 0.0, 0
    for idx in np.split(order, starts[1:]):
        value = auc(s[idx], y[idx])
        if not math.isnan(value):
            total += idx.size * value
            weight += idx.size
    return total / weight if weight else math.nan


def log_loss(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """Mean binary cross-entropy of probabilities; NaN for no samples."""
    p = np.clip(_np(probs).astype(np.float64).ravel(), LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
    y = _np(labels).astype(np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"probs and labels differ in size: {p.shape} vs {y.shape}")
    if p.size == 0:
        return math.nan
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def task_metrics(
    probs: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    user_ids: np.ndarray | torch.Tensor,
    tasks: Sequence[str],
) -> dict[str, dict[str, float]]:
    """probs, labels (N, T) over real targets; user_ids (N,) ->
    {task: {auc, gauc, logloss, positive_rate, n}}."""
    p, y = _np(probs), _np(labels)
    if p.ndim != 2 or p.shape != y.shape or p.shape[1] != len(tasks):
        raise ValueError(f"expected probs and labels (N, {len(tasks)}), got {p.shape} and {y.shape}")
    out: dict[str, dict[str, float]] = {}
    for t, task in enumerate(tasks):
        out[task] = {
            "auc": auc(p[:, t], y[:, t]),
            "gauc": gauc(p[:, t], y[:, t], user_ids),
            "logloss": log_loss(p[:, t], y[:, t]),
            "positive_rate": float(y[:, t].mean()) if y.shape[0] else math.nan,
            "n": float(y.shape[0]),
        }
    return out


class MetricAccumulator:
    """Collects `model.predict(batch)` outputs over an evaluation pass (real targets only)."""

    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = tuple(tasks)
        self._probs: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._users: list[np.ndarray] = []

    def update(self, batch: RequestBatch, probs: torch.Tensor) -> None:
        """probs (B, M, T) for `batch`; padded targets are dropped here."""
        mask = batch.target_mask  # (B, M)
        if probs.shape[:2] != mask.shape:
            raise ValueError(
                f"probs {tuple(probs.shape)} do not match the batch's targets {tuple(mask.shape)}"
            )
        self._probs.append(_np(probs[mask]))  # (n, T)
        self._labels.append(_np(batch.labels[mask]))
        self._users.append(_np(batch.user_id[:, None].expand_as(mask)[mask]))

    def compute(self) -> dict[str, dict[str, float]]:
        t = len(self.tasks)
        probs = np.concatenate(self._probs) if self._probs else np.zeros((0, t))
        labels = np.concatenate(self._labels) if self._labels else np.zeros((0, t))
        users = np.concatenate(self._users) if self._users else np.zeros((0,), dtype=np.int64)
        return task_metrics(probs, labels, users, self.tasks)
