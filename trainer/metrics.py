"""Ranking metrics per task: AUC, per-user GAUC and log loss (numpy only, no sklearn), each AUC
and GAUC with a 95% interval from a bootstrap over users.

AUC is computed from average ranks, so tied scores count one half (the Mann-Whitney U statistic).
GAUC is the impression-weighted mean of per-user AUCs over users who have both classes: the
metric that matches how a feed ranks items for one user at a time.

Intervals are a cluster bootstrap over USERS, not impressions or requests: one user's impressions
(and requests) share a history, a taste and a model error, so they are correlated, and resampling
them one by one treats correlated draws as independent and understates the variance. Each replicate
draws the users with replacement (multinomial counts, seeded), weights every impression by its
user's count, and recomputes the metric exactly (ties 1/2) from weighted positive / negative counts
over the sorted unique scores; the 2.5% / 97.5% percentiles of the replicates are the interval.
`paired_difference` compares two models on the same impressions over the same user resamples: a
win is a win only when the difference's interval excludes 0."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loader import HISTORY_FIELDS, RequestBatch

LOGLOSS_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] so log loss stays finite
BOOTSTRAP_REPLICATES = 200  # user resamples per interval (TrainConfig.bootstrap_replicates)
CI_LEVEL = 0.95  # two-sided percentile interval
_CHUNK_CELLS = 4_000_000  # replicates x score groups per vectorised chunk (bounds memory)


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
    data = _Grouped.of(scores, labels, groups)
    valid = data.user_valid
    weight = data.user_n[valid].sum()
    return float((data.user_n * data.user_auc)[valid].sum() / weight) if weight else math.nan


@dataclass(frozen=True)
class _Grouped:
    """Impressions folded into (user, unique score) groups, the unit every bootstrap replicate
    re-weights: per group its user, score rank and positive / negative counts; per user its
    impressions and AUC (NaN without both classes)."""

    n_users: int
    group_user: np.ndarray  # (G,) user code 0..U-1
    group_score: np.ndarray  # (G,) rank of the group's score among the unique scores 0..K-1
    group_pos: np.ndarray  # (G,) positives
    group_neg: np.ndarray  # (G,) negatives
    n_scores: int  # K
    user_n: np.ndarray  # (U,) impressions
    user_auc: np.ndarray  # (U,) per-user AUC, NaN when the user lacks a class

    @property
    def user_valid(self) -> np.ndarray:
        return ~np.isnan(self.user_auc)

    @classmethod
    def of(cls, scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
           groups: np.ndarray | torch.Tensor) -> _Grouped:  # fmt: skip
        s = _np(scores).astype(np.float64).ravel()
        y = (_np(labels).ravel() > 0.5).astype(np.float64)
        g = _np(groups).ravel()
        if not s.shape == y.shape == g.shape:
            raise ValueError(f"scores, labels and groups differ in size: {s.shape}, {y.shape}, {g.shape}")
        _, user = np.unique(g, return_inverse=True)
        uniq, score = np.unique(s, return_inverse=True)
        n_users, k = int(user.max()) + 1 if user.size else 0, max(1, uniq.size)
        key, ginv = np.unique(user.astype(np.int64) * k + score, return_inverse=True)
        pos = np.bincount(ginv, weights=y, minlength=key.size)
        neg = np.bincount(ginv, weights=1.0 - y, minlength=key.size)
        group_user = key // k
        # Per-user Mann-Whitney U: each group's positives beat the user's negatives at lower scores
        # (groups are sorted by user, then score) and tie with the negatives of their own group.
        below = np.cumsum(neg) - neg
        first = np.searchsorted(group_user, np.arange(n_users))
        if n_users:
            below -= below[first][group_user]
        u_stat = np.bincount(group_user, weights=pos * (below + 0.5 * neg), minlength=n_users)
        p_u = np.bincount(group_user, weights=pos, minlength=n_users)
        n_u = np.bincount(group_user, weights=neg, minlength=n_users)
        with np.errstate(invalid="ignore", divide="ignore"):
            user_auc = np.where((p_u > 0) & (n_u > 0), u_stat / (p_u * n_u), np.nan)
        return cls(n_users, group_user, key % k, pos, neg, k, p_u + n_u, user_auc)


def bootstrap_counts(n_users: int, replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> np.ndarray:
    """(replicates, n_users) multiplicities of a resample of the users with replacement; the same
    seed gives the same resamples, which is what makes two models' replicates paired."""
    if n_users == 0:
        return np.zeros((replicates, 0))
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=replicates).astype(np.float64)


def _replicate_aucs(data: _Grouped, counts: np.ndarray) -> np.ndarray:
    """(R,) AUC of each replicate: impressions weighted by their user's count, computed exactly
    from the weighted positives / negatives per unique score (ties 1/2), in chunks of replicates
    (each chunk one bincount over replicate x score cells); NaN where a class has zero weight."""
    r, k = counts.shape[0], data.n_scores
    out = np.empty(r)
    chunk = max(1, _CHUNK_CELLS // max(k, data.group_user.size))
    for lo in range(0, r, chunk):
        c = counts[lo:lo + chunk][:, data.group_user]  # (C, G) weight of each group
        rows = np.arange(c.shape[0])[:, None] * k + data.group_score[None, :]
        pos = np.bincount(rows.ravel(), (c * data.group_pos).ravel(), c.shape[0] * k).reshape(-1, k)
        neg = np.bincount(rows.ravel(), (c * data.group_neg).ravel(), c.shape[0] * k).reshape(-1, k)
        below = np.cumsum(neg, axis=1) - neg
        total = pos.sum(axis=1) * neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo:lo + chunk] = np.where(total > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / total, np.nan)
    return out


def _replicate_gaucs(data: _Grouped, counts: np.ndarray) -> np.ndarray:
    """(R,) GAUC of each replicate: per-user AUCs (fixed: a resample repeats whole users) weighted
    by multiplicity x impressions."""
    valid = data.user_valid
    w = counts[:, valid] * data.user_n[valid]
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, w @ data.user_auc[valid] / total, np.nan)


def _interval(replicates: np.ndarray) -> list[float] | None:
    """The CI_LEVEL percentile interval of the finite replicates; None when there are none."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return None
    tail = (1.0 - CI_LEVEL) / 2.0 * 100.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def bootstrap_intervals(
    scores: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, users: np.ndarray | torch.Tensor,
    replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0,
) -> dict[str, list[float] | None]:
    """{"auc_ci": [lo, hi], "gauc_ci": [lo, hi]} from a bootstrap over users (None where the
    metric has no finite replicate)."""
    data = _Grouped.of(scores, labels, users)
    counts = bootstrap_counts(data.n_users, replicates, seed)
    return {"auc_ci": _interval(_replicate_aucs(data, counts)),
            "gauc_ci": _interval(_replicate_gaucs(data, counts))}  # fmt: skip


def paired_difference(
    scores_a: np.ndarray | torch.Tensor, scores_b: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor, users: np.ndarray | torch.Tensor,
    metric: str = "auc", replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0,
) -> dict[str, Any]:
    """metric(a) - metric(b) on the same impressions, with the interval of the difference over
    the same user resamples for both models (paired, so the users both models find hard cancel
    out); "verdict" is "a wins" / "b wins" only when that interval excludes 0, else "no difference"."""
    if metric not in ("auc", "gauc"):
        raise ValueError(f"paired_difference compares 'auc' or 'gauc', got {metric!r}")
    a, b = _Grouped.of(scores_a, labels, users), _Grouped.of(scores_b, labels, users)
    counts = bootstrap_counts(a.n_users, replicates, seed)
    rep = _replicate_aucs if metric == "auc" else _replicate_gaucs
    if metric == "auc":
        diff = auc(scores_a, labels) - auc(scores_b, labels)
    else:
        diff = gauc(scores_a, labels, users) - gauc(scores_b, labels, users)
    if math.isnan(diff):
        return {"metric": metric, "absent": "a class is missing: no difference to compare"}
    ci = _interval(rep(a, counts) - rep(b, counts))
    verdict = "no difference"
    if ci is not None and ci[0] > 0:
        verdict = "a wins"
    elif ci is not None and ci[1] < 0:
        verdict = "b wins"
    return {"metric": metric, "diff": float(diff), "diff_ci": ci, "verdict": verdict}


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
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """probs, labels (N, T) over real targets; user_ids (N,) ->
    {task: {auc, auc_ci, gauc, gauc_ci, logloss, positive_rate, n}}. A metric that does not exist
    (a task without positives or negatives; no user with both classes for GAUC) is left out, with
    its reason under "absent", so no NaN ever reaches a JSON file. replicates=0 skips intervals."""
    p, y = _np(probs), _np(labels)
    if p.ndim != 2 or p.shape != y.shape or p.shape[1] != len(tasks):
        raise ValueError(f"expected probs and labels (N, {len(tasks)}), got {p.shape} and {y.shape}")
    out: dict[str, dict[str, Any]] = {}
    for t, task in enumerate(tasks):
        row: dict[str, Any] = {"n": float(y.shape[0])}
        if y.shape[0]:
            row["logloss"] = log_loss(p[:, t], y[:, t])
            row["positive_rate"] = float(y[:, t].mean())
        n_pos = int((y[:, t] > 0.5).sum())
        if n_pos == 0 or n_pos == y.shape[0]:
            row["absent"] = "no positives" if n_pos == 0 else "no negatives"
            out[task] = row
            continue
        row["auc"] = auc(p[:, t], y[:, t])
        value = gauc(p[:, t], y[:, t], user_ids)
        if math.isnan(value):
            row["absent"] = "gauc: no user has both classes"
        else:
            row["gauc"] = value
        if replicates:
            ci = bootstrap_intervals(p[:, t], y[:, t], user_ids, replicates, seed)
            row["auc_ci"] = ci["auc_ci"]
            if "gauc" in row:
                row["gauc_ci"] = ci["gauc_ci"]
        out[task] = row
    return out


class MetricAccumulator:
    """Collects `model.predict(batch)` outputs over an evaluation pass (real targets only)."""

    def __init__(self, tasks: Sequence[str], replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> None:
        self.tasks = tuple(tasks)
        self.replicates, self.seed = replicates, seed
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

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probs (N, T), labels (N, T), users (N,)) collected so far."""
        t = len(self.tasks)
        probs = np.concatenate(self._probs) if self._probs else np.zeros((0, t))
        labels = np.concatenate(self._labels) if self._labels else np.zeros((0, t))
        users = np.concatenate(self._users) if self._users else np.zeros((0,), dtype=np.int64)
        return probs, labels, users

    def compute(self) -> dict[str, dict[str, Any]]:
        return task_metrics(*self.arrays(), self.tasks, self.replicates, self.seed)


# --- history-collapse alarm ------------------------------------------------------------------------

PROBE_MIN_LOGIT_CHANGE = 1e-3  # mean |logit(full history) - logit(another request's history)| below
# this means the predictions do not read the history (a trained model that uses it moves by ~0.1+)
FLAT_AUC_DECIMALS = 4  # AUCs equal to this many decimals at every length count as a flat curve
# Mean normalised attention entropy (trainer.model.attention_entropy) below this: every target reads
# one event of its history whatever the history holds, a saturated attention that no longer learns
# where to look (trained STCA on the real logs reads 0.3-0.9).
ATTENTION_ENTROPY_MIN = 0.02
# |gradient| of the history-only parameters (Ranker.history_parameters) over |gradient| of all
# parameters, mean over the last HISTORY_GRAD_STEPS training steps, below this: the loss hardly
# reaches the history, so training cannot make the predictions depend on it.
HISTORY_GRAD_MIN_RATIO = 1e-6
HISTORY_GRAD_STEPS = 100


def shuffled_history(batch: RequestBatch) -> tuple[RequestBatch, torch.Tensor]:
    """The batch with each request given another request's history, targets and users kept, and
    a (B,) mask of the requests whose history really changed (only those can show a dependence).

    The partner is another user's request where the batch allows it: requests sorted by user are
    shifted by the largest per-user count, so a user's run of requests never lands on itself
    (neighbouring requests of one user share almost their whole history, and an evaluation batch
    grouped by length can hold only empty histories: a plain roll measured nothing there)."""
    b = batch.size
    order = torch.sort(batch.user_id.cpu(), stable=True).indices
    shift = int(torch.unique(batch.user_id.cpu(), return_counts=True)[1].max()) if b else 0
    if not 0 < shift < b:
        shift = 1 if b else 0
    partner = torch.empty(b, dtype=torch.int64)
    partner[order] = order[(torch.arange(b) + shift) % max(b, 1)]
    partner = partner.to(batch.hist_len.device)
    swapped = {f: getattr(batch, f)[partner] for f in (*HISTORY_FIELDS, "hist_len")}
    changed = batch.hist_len != batch.hist_len[partner]
    for f in HISTORY_FIELDS:
        changed |= (getattr(batch, f) != swapped[f]).any(dim=1)
    return dataclasses.replace(batch, **swapped), changed


@contextmanager
def recording_attention(model: torch.nn.Module) -> Iterator[list[tuple[float, int]]]:
    """Within the block, every attention module of `model` that can (an `entropy_log` attribute:
    STCA's TargetAttention, DIN) appends (sum, count) of its rows' normalised entropies to the
    yielded list; models without target attention (mean pooling) leave it empty."""
    log: list[tuple[float, int]] = []
    modules = [m for m in model.modules() if hasattr(m, "entropy_log")]
    before = [m.entropy_log for m in modules]  # an enclosing block's list (nested use)
    for m in modules:
        setattr(m, "entropy_log", log)  # noqa: B010 (modules typed as nn.Module)
    try:
        yield log
    finally:
        for m, b in zip(modules, before, strict=True):
            setattr(m, "entropy_log", b)  # noqa: B010


@torch.no_grad()
def history_probe(model: torch.nn.Module, batches: Iterable[RequestBatch]) -> dict[str, Any] | None:
    """Mean |logit change| over real targets and tasks when each request's history is swapped for
    another's, over the requests whose history the swap changed (a few evaluation batches); None
    when no request's history could be changed (e.g. only empty histories). For a model with
    target attention also the mean normalised attention entropy over the same batches (every
    layer, head and target; "attention_entropy", 0 = one event per target, 1 = uniform)."""
    total, count = 0.0, 0
    logits: Callable[[RequestBatch], torch.Tensor] = model.logits  # type: ignore[assignment]
    with recording_attention(model) as entropies:
        for batch in batches:
            if batch.size < 2:
                continue
            swapped, changed = shuffled_history(batch)
            if not bool(changed.any()):
                continue
            mask = batch.target_mask & changed[:, None]
            own = logits(batch).float()
            with recording_attention(model):  # the swapped pass is not the model's own reading
                change = (own - logits(swapped).float()).abs()[mask]
            total, count = total + float(change.sum()), count + change.numel()
    if not count:
        return None
    out = {"mean_abs_logit_change": total / count, "threshold": PROBE_MIN_LOGIT_CHANGE, "values": count}
    rows = sum(n for _, n in entropies)
    if rows:
        out["attention_entropy"] = sum(h for h, _ in entropies) / rows
        out["attention_entropy_threshold"] = ATTENTION_ENTROPY_MIN
    return out


def grad_norm(params: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """The L2 norm of the gradients of `params` (0 when none has one), left on the device: the
    training loop reads it only when the alarm is computed, so a step costs no extra sync."""
    norms = [p.grad.norm() for p in params if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


def history_gradient(steps: Sequence[tuple[float, float]]) -> dict[str, Any] | None:
    """The history-path gradient over training steps given as (|grad| of the history-only
    parameters, |grad| of all parameters), before clipping: the mean of each and of their ratio
    over the last HISTORY_GRAD_STEPS steps; None without steps (or history-only parameters)."""
    last = [(h, t) for h, t in steps[-HISTORY_GRAD_STEPS:] if math.isfinite(h) and math.isfinite(t)]
    if not last:
        return None
    return {
        "mean_norm": sum(h for h, _ in last) / len(last),
        "mean_total_norm": sum(t for _, t in last) / len(last),
        "mean_ratio": sum(h / t if t > 0 else 0.0 for h, t in last) / len(last),
        "threshold": HISTORY_GRAD_MIN_RATIO,
        "steps": len(last),
    }


def history_collapse_warnings(
    eval_metrics: Mapping[str, Mapping[str, Mapping[str, Any]]],
    probe: Mapping[str, Any] | None,
    gradient: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Warnings that predictions do not depend on the history: (a) every task with an AUC has the
    same AUC (to FLAT_AUC_DECIMALS) at every evaluated inference length (two or more); (b) the
    probe's mean |logit change| under swapped histories is below its threshold; (c) the probe's
    mean attention entropy is near zero (ATTENTION_ENTROPY_MIN); (d) the history-path gradient
    (`history_gradient`) is near zero against the whole gradient (HISTORY_GRAD_MIN_RATIO)."""
    out: list[dict[str, Any]] = []
    lengths = sorted(eval_metrics, key=int)
    if len(lengths) >= 2:
        tasks = [t for t in eval_metrics[lengths[0]] if all("auc" in eval_metrics[n][t] for n in lengths)]
        flat = {t: round(eval_metrics[lengths[0]][t]["auc"], FLAT_AUC_DECIMALS) for t in tasks}
        if tasks and all(round(eval_metrics[n][t]["auc"], FLAT_AUC_DECIMALS) == flat[t]
                         for n in lengths for t in tasks):  # fmt: skip
            out.append({
                "kind": "history_collapse", "test": "auc_flat_across_lengths", "lengths": lengths,
                "auc": flat,
                "message": f"AUC identical to {FLAT_AUC_DECIMALS} decimals at every inference length "
                           f"{lengths} for every task: the predictions ignore the history",
            })  # fmt: skip
    if probe is not None and probe["mean_abs_logit_change"] < probe["threshold"]:
        out.append({
            "kind": "history_collapse", "test": "history_probe", **probe,
            "message": f"swapping each request's history for another's moved the logits by "
                       f"{probe['mean_abs_logit_change']:.2e} on average (< {probe['threshold']:g}): "
                       "the predictions ignore the history",
        })  # fmt: skip
    entropy = None if probe is None else probe.get("attention_entropy")
    if entropy is not None and entropy < ATTENTION_ENTROPY_MIN:
        out.append({
            "kind": "history_collapse", "test": "attention_entropy", "attention_entropy": entropy,
            "threshold": ATTENTION_ENTROPY_MIN,
            "message": f"mean normalised attention entropy {entropy:.3g} (< {ATTENTION_ENTROPY_MIN:g}): "
                       "every target reads a single history event, the attention has saturated",
        })  # fmt: skip
    if gradient is not None and gradient["mean_ratio"] < gradient["threshold"]:
        out.append({
            "kind": "history_collapse", "test": "history_gradient", **gradient,
            "message": f"the history-only parameters got {gradient['mean_ratio']:.2e} of the gradient "
                       f"norm over the last {gradient['steps']} steps (< {gradient['threshold']:g}): "
                       "the loss hardly reaches the history path",
        })  # fmt: skip
    return out


# --- paired comparisons of two runs ---------------------------------------------------------------

PREDICTIONS_FILE = "eval_predictions.npz"  # written by trainer.train beside metrics.json


def write_predictions(
    path: Path, predictions: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> None:
    """Saves each evaluated length's (probs (N, T), labels (N, T), users (N,)) for compare_runs."""
    arrays = {f"{kind}_{n}": a for n, arrs in predictions.items()
              for kind, a in zip(("probs", "labels", "users"), arrs, strict=True)}  # fmt: skip
    np.savez_compressed(path, **arrays)


def compare_runs(
    run_a: str | Path, run_b: str | Path, tasks: Sequence[str], metrics: Sequence[str] = ("auc", "gauc"),
    replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{length: {task: {metric: paired_difference(a, b)}}} from two run folders' eval predictions,
    which must be of the same held-out impressions (same table, version and dates)."""
    a, b = (np.load(Path(r) / PREDICTIONS_FILE) for r in (run_a, run_b))
    lengths = sorted({k.split("_", 1)[1] for k in a.files} & {k.split("_", 1)[1] for k in b.files}, key=int)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for n in lengths:
        labels, users = a[f"labels_{n}"], a[f"users_{n}"]
        if not (np.array_equal(labels, b[f"labels_{n}"]) and np.array_equal(users, b[f"users_{n}"])):
            raise ValueError(
                f"{run_a} and {run_b} evaluated different impressions at length {n}: compare runs "
                "evaluated on the same table version and dates"
            )
        out[n] = {
            task: {m: paired_difference(a[f"probs_{n}"][:, t], b[f"probs_{n}"][:, t], labels[:, t], users, m,
                                        replicates, seed) for m in metrics}
            for t, task in enumerate(tasks)
        }  # fmt: skip
    return out
