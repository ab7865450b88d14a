"""The batch the loader yields and the trainer consumes: one request per row, tensors only.

Padded form (`RequestBatch`): history fields [B, L] and target fields [B, M], left-aligned (the
real events of row b are positions 0 .. hist_len[b]-1, oldest first; padding is 0 after them).
L and M are the batch's real maxima, never the table's L_max. Packed form (`PackedHistory`):
values + offsets, for kernels that take ragged input without padding."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from schemas.fields import HISTORY_COLUMNS, TASKS
from schemas.request_samples import TARGET_COLUMNS

# Tensor field names of the padded batch, derived from the contract (never typed twice).
HISTORY_FIELDS: tuple[str, ...] = tuple(c.name for c in HISTORY_COLUMNS)  # hist_item_id, ...
TARGET_FIELDS: tuple[str, ...] = tuple(c.name for c in TARGET_COLUMNS)  # tgt_item_id, ...


@dataclass
class RequestBatch:
    """B requests with their histories and targets as torch tensors.

    Shapes: B requests, L = max(hist_len) in the batch, M = max(num_targets), T = len(TASKS).
    Integer ids are int64, the other int fields int32, labels float32 (0/1).
    """

    request_id: list[str]  # (B,) kept as Python strings: strings never reach torch
    user_id: torch.Tensor  # (B,) int64
    request_ts: torch.Tensor  # (B,) int64, ms since the epoch
    hist_len: torch.Tensor  # (B,) int64, real history length per request (<= L)
    hist_item_id: torch.Tensor  # (B, L) int64
    hist_author_id: torch.Tensor  # (B, L) int64
    hist_action: torch.Tensor  # (B, L) int32, action bit flags
    hist_ts: torch.Tensor  # (B, L) int64, ms
    hist_watch_ms: torch.Tensor  # (B, L) int32
    hist_duration_ms: torch.Tensor  # (B, L) int32
    num_targets: torch.Tensor  # (B,) int64, real number of targets per request (<= M)
    tgt_item_id: torch.Tensor  # (B, M) int64
    tgt_author_id: torch.Tensor  # (B, M) int64
    tgt_position: torch.Tensor  # (B, M) int32
    tgt_duration_ms: torch.Tensor  # (B, M) int32
    labels: torch.Tensor  # (B, M, T) float32, tasks in schemas.fields.TASKS order

    @property
    def size(self) -> int:
        return int(self.user_id.shape[0])

    @property
    def hist_mask(self) -> torch.Tensor:
        """(B, L) bool: True on real history events."""
        length = self.hist_item_id.shape[1]
        return torch.arange(length, device=self.hist_len.device)[None, :] < self.hist_len[:, None]

    @property
    def target_mask(self) -> torch.Tensor:
        """(B, M) bool: True on real targets."""
        m = self.tgt_item_id.shape[1]
        return torch.arange(m, device=self.num_targets.device)[None, :] < self.num_targets[:, None]

    @property
    def num_history_tokens(self) -> int:
        return int(self.hist_len.sum())

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "request_id"}

    def to(self, device: torch.device | str, non_blocking: bool = False) -> RequestBatch:
        """A copy on `device`; with pinned host memory and non_blocking=True the copy is async."""
        moved: dict[str, Any] = {
            k: v.to(device, non_blocking=non_blocking) for k, v in self.tensors().items()
        }
        return replace(self, **moved)

    def pin_memory(self) -> RequestBatch:
        pinned: dict[str, Any] = {k: v.pin_memory() for k, v in self.tensors().items()}
        return replace(self, **pinned)

    def with_history_suffix(self, lengths: torch.Tensor | int) -> RequestBatch:
        """Keep the most recent min(hist_len, lengths) events of each row (a suffix), re-padded.

        Used for length-extrapolative training (sampled lengths per request) and for evaluating
        at a fixed inference length. L shrinks to the new maximum."""
        keep = torch.minimum(self.hist_len, torch.as_tensor(lengths, device=self.hist_len.device))  # (B,)
        new_l = int(keep.max()) if self.size else 0
        start = self.hist_len - keep  # (B,) first kept event
        pos = torch.arange(new_l, device=keep.device)[None, :]  # (1, L')
        idx = (start[:, None] + pos).clamp(max=max(self.hist_item_id.shape[1] - 1, 0))  # (B, L')
        valid = pos < keep[:, None]  # (B, L')
        cut: dict[str, Any] = {
            name: torch.where(valid, getattr(self, name).gather(1, idx), 0) for name in HISTORY_FIELDS
        }
        return replace(self, hist_len=keep, **cut)

    def packed_history(self) -> PackedHistory:
        """The history fields as values + offsets (no padding)."""
        mask = self.hist_mask
        offsets = torch.zeros(self.size + 1, dtype=torch.int64, device=self.hist_len.device)
        offsets[1:] = torch.cumsum(self.hist_len, 0)
        return PackedHistory(
            offsets=offsets,
            values={name: getattr(self, name)[mask] for name in HISTORY_FIELDS},
        )


@dataclass
class PackedHistory:
    """Ragged histories: row b's events are values[name][offsets[b]:offsets[b+1]], oldest first."""

    offsets: torch.Tensor  # (B + 1,) int64
    values: dict[str, torch.Tensor]  # name -> (sum(hist_len),)


NUM_TASKS = len(TASKS)
