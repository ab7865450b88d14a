"""The grouped batch of the user-day loader, for MRLB training: each user-day window once.

Layout (TorchRec's KeyedJaggedTensor convention: flat values + lengths, offsets derived):

* G groups (user-days). `window[name]` holds every group's window events back to back, oldest
  first within a group; group g's events are values[window_offsets[g] : window_offsets[g + 1]],
  with window_offsets = [0, cumsum(window_len)].
* R requests, group by group, in request order within a group. `group[r]` is request r's group;
  its history is its group's window[hist_start[r] : hist_end[r]] (offsets into the group's own
  window, so a group can be moved between batches without rewriting them).
* Targets flat: request r's targets are targets[name][target_offsets[r] : target_offsets[r + 1]],
  target_offsets = [0, cumsum(num_targets)]; labels is (sum(num_targets), T).

`to_request_batch()` expands it into the padded per-request `RequestBatch` (the same requests and
tensors the request-level loader gives), so MRLB and RLB can be checked against each other."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from .batch import HISTORY_FIELDS, TARGET_FIELDS, RequestBatch


class GroupedBatchError(ValueError):
    """A grouped batch whose offsets do not fit its windows or targets."""


def _offsets(lengths: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(lengths.shape[0] + 1, dtype=torch.int64, device=lengths.device)
    out[1:] = torch.cumsum(lengths, 0)
    return out


@dataclass
class GroupedBatch:
    """G user-day windows and their R requests as jagged torch tensors (see the module docstring)."""

    request_id: list[str]  # (R,)
    user_id: torch.Tensor  # (G,) int64
    window_len: torch.Tensor  # (G,) int64, events in each group's window
    window: dict[str, torch.Tensor]  # HISTORY_FIELDS -> (sum(window_len),) values
    group: torch.Tensor  # (R,) int64, non-decreasing group index of each request
    request_ts: torch.Tensor  # (R,) int64, ms
    hist_start: torch.Tensor  # (R,) int64, into the request's group window
    hist_end: torch.Tensor  # (R,) int64, exclusive
    num_targets: torch.Tensor  # (R,) int64
    targets: dict[str, torch.Tensor]  # TARGET_FIELDS -> (sum(num_targets),) values
    labels: torch.Tensor  # (sum(num_targets), T) float32

    @property
    def num_groups(self) -> int:
        return int(self.user_id.shape[0])

    @property
    def size(self) -> int:
        """R: the number of requests (what `RequestBatch.size` counts)."""
        return int(self.group.shape[0])

    @property
    def window_offsets(self) -> torch.Tensor:
        return _offsets(self.window_len)

    @property
    def target_offsets(self) -> torch.Tensor:
        return _offsets(self.num_targets)

    @property
    def hist_len(self) -> torch.Tensor:
        return self.hist_end - self.hist_start

    @property
    def num_history_tokens(self) -> int:
        """Events each request reads (with repeats): what RLB would compute over."""
        return int(self.hist_len.sum())

    @property
    def num_window_tokens(self) -> int:
        """Events stored once per group: what MRLB computes the history side over."""
        return int(self.window_len.sum())

    def validate(self) -> None:
        """Raise GroupedBatchError naming the first bad request (or group); called before a forward.

        start == end is allowed: a user's first request may have no earlier event (request_samples
        keeps such cold-start requests with hist_len 0), and the models handle an empty history."""
        total = int(self.window_len.sum())
        for name in HISTORY_FIELDS:
            if self.window[name].shape[0] != total:
                raise GroupedBatchError(
                    f"window field {name} has {self.window[name].shape[0]} values but the groups' "
                    f"window_len sum to {total}"
                )
        m = int(self.num_targets.sum())
        for name in TARGET_FIELDS:
            if self.targets[name].shape[0] != m:
                raise GroupedBatchError(
                    f"target field {name} has {self.targets[name].shape[0]} values but num_targets sum to {m}"
                )
        if self.labels.shape[0] != m:
            raise GroupedBatchError(f"labels has {self.labels.shape[0]} rows but num_targets sum to {m}")
        if len(self.request_id) != self.size:
            raise GroupedBatchError(f"{len(self.request_id)} request ids for {self.size} requests")
        if self.size and (
            int(self.group.min()) < 0
            or int(self.group.max()) >= self.num_groups
            or bool((self.group[1:] < self.group[:-1]).any())
        ):
            raise GroupedBatchError(
                f"group indices must be non-decreasing in [0, {self.num_groups}), got {self.group.tolist()}"
            )
        limit = self.window_len[self.group] if self.size else self.hist_end
        bad = (
            (self.hist_start < 0)
            | (self.hist_end > limit)
            | (self.hist_end < self.hist_start)
        )
        if bool(bad.any()):
            r = int(bad.nonzero()[0, 0])
            raise GroupedBatchError(
                f"request {self.request_id[r]!r}: history slice [{int(self.hist_start[r])}, "
                f"{int(self.hist_end[r])}) does not fit its group's window of {int(limit[r])} events "
                "(need 0 <= start <= end <= window_len); the batch's offsets are inconsistent with its "
                "windows"
            )

    def tensors(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "request_id"}

    def _map(self, fn: Any) -> GroupedBatch:
        moved: dict[str, Any] = {}
        for name, value in self.tensors().items():
            moved[name] = {k: fn(v) for k, v in value.items()} if isinstance(value, dict) else fn(value)
        return replace(self, **moved)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> GroupedBatch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> GroupedBatch:
        return self._map(lambda t: t.pin_memory())

    def with_history_suffix(self, lengths: torch.Tensor | int) -> GroupedBatch:
        """Keep the most recent min(hist_len, lengths) events of each request's own slice.

        The windows are unchanged (other requests of the group may still need the events); only
        hist_start moves. Per-request Beta length sampling and fixed inference lengths use this."""
        keep = torch.minimum(self.hist_len, torch.as_tensor(lengths, device=self.hist_end.device))
        return replace(self, hist_start=self.hist_end - keep)

    def padded_windows(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Each group's window left-aligned in a (G, W) tensor per field, and the (G, W) real-event mask."""
        width = int(self.window_len.max()) if self.num_groups else 0
        pos = torch.arange(width, device=self.window_len.device)[None, :]
        mask = pos < self.window_len[:, None]
        idx = (self.window_offsets[:-1, None] + pos).clamp(max=max(self.num_window_tokens - 1, 0))
        padded = {
            name: torch.where(mask, values[idx], 0) if values.numel() else values.new_zeros(mask.shape)
            for name, values in self.window.items()
        }
        return padded, mask

    def _padded_targets(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        width = int(self.num_targets.max()) if self.size else 0
        pos = torch.arange(width, device=self.num_targets.device)[None, :]
        mask = pos < self.num_targets[:, None]
        total = int(self.num_targets.sum())
        idx = (self.target_offsets[:-1, None] + pos).clamp(max=max(total - 1, 0))
        out = {
            name: torch.where(mask, values[idx], 0) if values.numel() else values.new_zeros(mask.shape)
            for name, values in self.targets.items()
        }
        labels = (
            torch.where(mask[..., None], self.labels[idx], 0.0)
            if total
            else self.labels.new_zeros((*mask.shape, self.labels.shape[-1]))
        )
        out["labels"] = labels
        return out, mask

    def to_request_batch(self) -> RequestBatch:
        """The padded per-request batch: request r's history is its slice, left-aligned, oldest first."""
        hist_len = self.hist_len
        width = int(hist_len.max()) if self.size else 0
        pos = torch.arange(width, device=hist_len.device)[None, :]
        valid = pos < hist_len[:, None]
        first = self.window_offsets[self.group] + self.hist_start if self.size else hist_len
        idx = (first[:, None] + pos).clamp(max=max(self.num_window_tokens - 1, 0))
        history = {
            name: torch.where(valid, values[idx], 0) if values.numel() else values.new_zeros(valid.shape)
            for name, values in self.window.items()
        }
        targets, _ = self._padded_targets()
        return RequestBatch(
            request_id=list(self.request_id),
            user_id=self.user_id[self.group],
            request_ts=self.request_ts,
            hist_len=hist_len,
            num_targets=self.num_targets,
            **history,
            **targets,
        )
