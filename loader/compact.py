"""`CompactLoader`: a pinned Delta snapshot of `request_samples_compact` -> `CompactBatch`es.

    from loader import CompactLoader, CompactLoaderConfig

    loader = CompactLoader("warehouse/request_samples_compact", CompactLoaderConfig(batch_size=256))
    for batch in loader:                         # CompactBatch: .requests is a RequestBatch
        logits, loss = vista_ranker(batch)       # the cached summary replaces the history

The compact table keeps every `request_samples` column the loader reads (the history columns hold
only the raw events since the summary), so this module reuses `RowGroupArrays`, `ShuffleBuffer`
and `collate` from loader/collate.py for the request part and adds the summary columns beside
them. `RequestBatch` and `RequestLoader` are untouched.

Compared with `RequestLoader` this is the small version: row groups are read with pyarrow in the
calling thread (a compact row is a few KB, so reading is cheap next to the model), with a seeded
row-group order, a row shuffle buffer, rank sharding with equal batch counts per rank, a per-row
cap on raw events, and, from the base both share (loader/epochs.py), the same
`state_dict()` / `load_state_dict()` resume mid-epoch as `RequestLoader` (the order is a pure
function of seed and epoch, so resuming replays the reads and skips the rows consumed before the
checkpoint), the context manager and the refusal to iterate again after a failure; no token
budget.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from schemas.request_samples_compact import REQUEST_SAMPLES_COMPACT, SUMMARY_RENAMES
from schemas.user_summaries import QUANTIZATION_DTYPES
from storage.object_store import parquet_file

from .batch import RequestBatch
from .collate import LOADER_COLUMNS, RowGroupArrays, ShuffleBuffer, collate
from .epochs import EpochLoader, batch_sizes
from .errors import LoaderError, SchemaMismatchError
from .snapshot import DateBound, Snapshot

log = logging.getLogger(__name__)

SUMMARY_FIELDS: tuple[str, ...] = tuple(SUMMARY_RENAMES.values())  # summary_as_of_ts, quantization, ...
COMPACT_LOADER_COLUMNS: tuple[str, ...] = (*LOADER_COLUMNS, *SUMMARY_FIELDS)
_ARROW_SCHEMA = REQUEST_SAMPLES_COMPACT.arrow_schema()


@dataclass
class CompactBatch:
    """B requests: the request part (raw recent events, targets, labels) and the cached summaries.

    Shapes: k summary tokens of width d (one model_version per table, so one k, d and format per
    batch); rows without a summary have has_summary False and zeros in summary / summary_scale."""

    requests: RequestBatch  # hist_* = raw events with summary_as_of_ts <= event_ts < request_ts
    has_summary: torch.Tensor  # (B,) bool
    summary: torch.Tensor  # (B, k, d) int8 or float16, as stored
    summary_scale: torch.Tensor  # (B, k) float32
    summary_as_of_ts: torch.Tensor  # (B,) int64, 0 where there is no summary
    quantization: str  # "int8" or "fp16"

    @property
    def size(self) -> int:
        return self.requests.size

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("requests", "quantization")
        }

    def dequantized(self) -> torch.Tensor:
        """(B, k, d) float32 summary tokens (zeros where has_summary is False)."""
        return self.summary.float() * self.summary_scale[..., None]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> CompactBatch:
        moved: dict[str, Any] = {
            k: v.to(device, non_blocking=non_blocking) for k, v in self.tensors().items()
        }
        return replace(self, requests=self.requests.to(device, non_blocking), **moved)


@dataclass
class CompactRowGroup(RowGroupArrays):
    """RowGroupArrays plus the summary columns of the same rows."""

    summary: list[bytes | None] | None = None
    summary_scale: list[list[float] | None] | None = None
    summary_as_of_ts: np.ndarray | None = None  # (rows,) int64, -1 where null
    quantization: list[str | None] | None = None
    num_tokens: np.ndarray | None = None  # (rows,) -1 where null
    dim: np.ndarray | None = None

    @classmethod
    def from_compact_table(cls, table: pa.Table, source: str) -> CompactRowGroup:
        for name in SUMMARY_FIELDS:
            expected = _ARROW_SCHEMA.field(name).type
            if name not in table.schema.names or table.schema.field(name).type != expected:
                have = table.schema.field(name).type if name in table.schema.names else "missing"
                raise SchemaMismatchError(f"{source}: column {name!r} should be {expected}, found {have}")
        base = RowGroupArrays.from_table(table, source)

        def ints(name: str) -> np.ndarray:
            return np.asarray(table.column(name).fill_null(-1).to_numpy(), dtype=np.int64)

        return cls(
            **{f.name: getattr(base, f.name) for f in fields(RowGroupArrays)},
            summary=table.column("summary").to_pylist(),
            summary_scale=table.column("summary_scale").to_pylist(),
            summary_as_of_ts=ints("summary_as_of_ts"),
            quantization=table.column("quantization").to_pylist(),
            num_tokens=ints("num_tokens"),
            dim=ints("dim"),
        )


def collate_compact(rows: list[tuple[RowGroupArrays, int]], keep: np.ndarray | None = None) -> CompactBatch:
    """Pads the rows' request part with loader/collate.collate and stacks their summaries."""
    requests = collate(rows, keep)
    present = [
        (g, r) for g, r in rows if isinstance(g, CompactRowGroup) and g.summary and g.summary[r] is not None
    ]
    shapes = {
        (int(g.num_tokens[r]), int(g.dim[r]), str(g.quantization[r]))  # type: ignore[index]
        for g, r in present
    }
    if len(shapes) > 1:
        raise LoaderError(
            f"one batch holds summaries of several shapes/formats {sorted(shapes)}: mixed model versions?"
        )
    k, d, kind = shapes.pop() if shapes else (0, 0, "int8")
    if kind not in QUANTIZATION_DTYPES:
        raise LoaderError(
            f"unknown summary quantization {kind!r}; expected one of {sorted(QUANTIZATION_DTYPES)}"
        )
    np_dtype = np.dtype(QUANTIZATION_DTYPES[kind])
    b = len(rows)
    summary = np.zeros((b, k, d), np_dtype)
    scale = np.zeros((b, k), np.float32)
    as_of = np.zeros(b, np.int64)
    has = np.zeros(b, bool)
    for i, (g, r) in enumerate(rows):
        if not isinstance(g, CompactRowGroup) or not g.summary or g.summary[r] is None:
            continue
        blob = g.summary[r]
        assert blob is not None and g.summary_scale is not None and g.summary_as_of_ts is not None
        if len(blob) != k * d * np_dtype.itemsize:
            raise LoaderError(
                f"{g.source}: request {g.request_id[r]}: summary has {len(blob)} bytes, "
                f"expected {k}x{d} {kind}"
            )
        summary[i] = np.frombuffer(blob, np_dtype).reshape(k, d)
        scale[i] = g.summary_scale[r]
        as_of[i], has[i] = g.summary_as_of_ts[r], True
    return CompactBatch(
        requests=requests,
        has_summary=torch.from_numpy(has),
        summary=torch.from_numpy(summary),
        summary_scale=torch.from_numpy(scale),
        summary_as_of_ts=torch.from_numpy(as_of),
        quantization=kind,
    )


@dataclass(frozen=True)
class CompactLoaderConfig:
    batch_size: int = 256  # requests per batch
    shuffle: bool = True  # seeded row-group order and row shuffle buffer; False: file order
    seed: int = 0  # with the epoch, fixes the order
    shuffle_buffer: int = 2_048  # rows held for mixing
    max_recent: int | None = None  # cap on raw events kept per request (the most recent)
    rank: int = 0
    world_size: int = 1
    device: str | None = None  # move batches there

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.shuffle_buffer < 1:
            raise ValueError(
                f"batch_size and shuffle_buffer must be >= 1, got {self.batch_size}, {self.shuffle_buffer}"
            )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={self.rank}, world_size={self.world_size}"
            )
        if self.max_recent is not None and self.max_recent < 0:
            raise ValueError(f"max_recent must be >= 0, got {self.max_recent}")


class CompactLoader(EpochLoader[CompactBatch, CompactLoaderConfig]):
    """Iterates one epoch of CompactBatches per `iter()`; see the module docstring. State, resume,
    len(), the context manager and the failure guard come from loader/epochs.py."""

    def __init__(
        self,
        source: str | Path | Snapshot,
        config: CompactLoaderConfig | None = None,
        *,
        version: int | None = None,
        date_from: DateBound = None,
        date_to: DateBound = None,
    ) -> None:
        """`source`: the table's path, or a Snapshot resolved already."""
        super().__init__(
            source, config or CompactLoaderConfig(), version=version, date_from=date_from, date_to=date_to,
            empty_hint="run jobs/build_compact_samples.py first",
        )  # fmt: skip
        self._groups: list[tuple[str, int, int]] = []  # (file, row group, rows)
        for f in self.snapshot.data_files:
            meta = parquet_file(f.path).metadata
            self._groups += [(f.path, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]

    def _plan(self, epoch: int) -> tuple[np.random.Generator | None, list[np.ndarray], list[int], list[int]]:
        """An epoch's row-group shards: (rng, shards, rows per rank, this rank's batch sizes)."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, epoch]) if cfg.shuffle else None
        order = rng.permutation(len(self._groups)) if rng is not None else np.arange(len(self._groups))
        shards = [order[r :: cfg.world_size] for r in range(cfg.world_size)]
        per_rank = [sum(self._groups[i][2] for i in s) for s in shards]
        return rng, shards, per_rank, batch_sizes(per_rank, cfg.batch_size, cfg.rank)

    def _epoch_batches(self) -> int:
        """Row groups are dealt to ranks in a seeded order, so with unequal row groups the count
        can change from epoch to epoch."""
        return len(self._plan(self._epoch)[3])

    def _open_epoch(self, epoch: int, skip: int) -> _CompactEpoch:
        return _CompactEpoch(self, epoch, skip)

    def _deliver(self, batch: CompactBatch) -> CompactBatch:
        return batch.to(self.config.device) if self.config.device else batch


class _CompactEpoch:
    """One epoch of a CompactLoader, read in the consumer's thread (a compact row is small)."""

    def __init__(self, loader: CompactLoader, epoch: int, skip: int) -> None:
        self.loader, self.epoch, self.skip = loader, epoch, skip
        self._stopped = False

    def close(self) -> None:
        self._stopped = True

    def __iter__(self) -> Iterator[CompactBatch]:
        cfg, groups = self.loader.config, self.loader._groups
        rng, shards, per_rank, sizes = self.loader._plan(self.epoch)
        buffer = ShuffleBuffer(
            max(cfg.shuffle_buffer, cfg.batch_size) if rng is not None else cfg.batch_size, rng
        )
        pending = [groups[i] for i in shards[cfg.rank]]
        emitted = 0
        for size in sizes:
            if self._stopped:
                return
            while pending and not buffer.full:
                path, index, _ = pending.pop(0)
                table = parquet_file(path).read_row_group(index, columns=list(COMPACT_LOADER_COLUMNS))
                buffer.add(CompactRowGroup.from_compact_table(table, f"{path}#rg{index}"))
            rows = buffer.take(size)
            first = max(0, self.skip - emitted)  # resuming: rows consumed before the checkpoint
            emitted += len(rows)
            if first >= len(rows):
                continue
            rows = rows[first:]
            keep = None if cfg.max_recent is None else np.full(len(rows), cfg.max_recent, np.int64)
            yield collate_compact(rows, keep)
        if emitted != per_rank[cfg.rank]:
            raise LoaderError(
                f"rank {cfg.rank}: read {emitted} requests, its row groups hold {per_rank[cfg.rank]}"
            )


__all__ = [
    "COMPACT_LOADER_COLUMNS",
    "CompactBatch",
    "CompactLoader",
    "CompactLoaderConfig",
    "collate_compact",
]
