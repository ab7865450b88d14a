"""The training objective: BCE per task, averaged over every real target of the batch.

Dividing by the batch's total number of real targets (not a per-request mean first) is what keeps
request-level batching (RLB) and point-wise training the same objective with the same gradients
(docs/design.md §2): a request with 20 targets weighs 20 impressions, as it does point-wise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def per_task_bce(logits: torch.Tensor, labels: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """(T,) mean BCE-with-logits per task over the real targets.

    logits, labels: (B, M, T); target_mask: (B, M) bool. Padded targets contribute nothing, whatever
    their logits or labels hold (torch.where, so even a NaN there cannot leak into the sum)."""
    if logits.shape != labels.shape or logits.shape[:2] != target_mask.shape:
        raise ValueError(
            f"expected logits and labels (B, M, T) and target_mask (B, M); got logits {tuple(logits.shape)}, "
            f"labels {tuple(labels.shape)}, target_mask {tuple(target_mask.shape)}"
        )
    per = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")  # (B, M, T)
    per = torch.where(target_mask[..., None], per, torch.zeros((), device=per.device))  # (B, M, T)
    real = target_mask.sum().clamp(min=1)  # total real targets in the batch (1 if none: loss 0)
    return per.sum(dim=(0, 1)) / real  # (T,)


def masked_bce_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    target_mask: torch.Tensor,
    weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """Scalar loss: sum over tasks of weight_t * per-task mean BCE over all real targets."""
    per_task = per_task_bce(logits, labels, target_mask)  # (T,)
    if weights is None:
        return per_task.sum()
    if len(weights) != per_task.shape[0]:
        raise ValueError(f"expected {per_task.shape[0]} task weights, got {len(weights)}: {list(weights)}")
    return (per_task * torch.tensor(weights, dtype=per_task.dtype, device=per_task.device)).sum()
