"""From Arrow row groups to `RequestBatch`: a shuffle buffer over rows, and a ragged-to-padded
collate that copies each kept history suffix once, straight into the (optionally pinned) tensor.

Why here and not in a petastorm TransformSpec: a TransformSpec goes Arrow -> pandas -> func ->
Arrow -> numpy for every row group, copying each 10k list several times and padding every row
of a row group to that group's maximum. Collating from Arrow buffers copies each kept event
once and pads only to the batch maximum (benchmarks/loader.py measures both)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from schemas.fields import LABEL_COLUMN_NAMES
from schemas.request_samples import REQUEST_SAMPLES

from .batch import HISTORY_FIELDS, TARGET_FIELDS, RequestBatch
from .errors import SchemaMismatchError

TARGET_ARRAYS: tuple[str, ...] = (*TARGET_FIELDS, *LABEL_COLUMN_NAMES)
SCALARS: tuple[str, ...] = ("request_id", "user_id", "request_ts", "hist_len", "num_targets")
LOADER_COLUMNS: tuple[str, ...] = (*SCALARS, *HISTORY_FIELDS, *TARGET_ARRAYS)

_ARROW_SCHEMA = REQUEST_SAMPLES.arrow_schema()
_TORCH_DTYPES = {pa.int64(): torch.int64, pa.int32(): torch.int32}


def _torch_dtype(name: str) -> torch.dtype:
    field = _ARROW_SCHEMA.field(name)
    arrow_type = field.type.value_type if pa.types.is_list(field.type) else field.type
    return _TORCH_DTYPES[arrow_type]


def check_schema(schema: pa.Schema, where: str) -> None:
    """Every loader column is present with the contract's type; raises naming file and field."""
    for name in LOADER_COLUMNS:
        expected = _ARROW_SCHEMA.field(name).type
        if name not in schema.names:
            raise SchemaMismatchError(
                f"{where}: column {name!r} ({expected}) is missing; columns present: {schema.names}. "
                "Was the table written by build_request_samples with the current schemas/request_samples.py?"
            )
        actual = schema.field(name).type
        if actual != expected:
            raise SchemaMismatchError(f"{where}: column {name!r} has type {actual}, the contract says {expected}")


@dataclass
class RowGroupArrays:
    """One row group's columns as numpy views over the Arrow buffers (no copies)."""

    source: str
    num_rows: int
    request_id: list[str]
    scalars: dict[str, np.ndarray]  # name -> (rows,)
    offsets: dict[str, np.ndarray]  # list column -> (rows + 1,)
    values: dict[str, np.ndarray]  # list column -> flat values

    @classmethod
    def from_table(cls, table: pa.Table, source: str) -> RowGroupArrays:
        check_schema(table.schema, source)
        table = table.combine_chunks()
        scalars, offsets, values = {}, {}, {}
        for name in ("user_id", "request_ts", "hist_len", "num_targets"):
            column = table.column(name).chunk(0) if table.num_rows else pa.array([], table.schema.field(name).type)
            if column.null_count:
                raise TypeError(f"{source}: column {name!r} has {column.null_count} nulls; tensors cannot hold them")
            scalars[name] = column.to_numpy(zero_copy_only=False)
        for name in (*HISTORY_FIELDS, *TARGET_ARRAYS):
            if not table.num_rows:
                offsets[name], values[name] = np.zeros(1, np.int32), np.zeros(0)
                continue
            column = table.column(name).chunk(0)
            flat = column.values  # honours the array's slice offset through `offsets` below
            if column.null_count or flat.null_count:
                raise TypeError(
                    f"{source}: column {name!r} has null lists or elements ({column.null_count} / {flat.null_count}); "
                    "the quality gate should have stopped this partition"
                )
            offsets[name] = column.offsets.to_numpy()
            values[name] = flat.to_numpy()
        arrays = cls(source, table.num_rows, table.column("request_id").to_pylist(), scalars, offsets, values)
        arrays._check_lengths()
        return arrays

    def _check_lengths(self) -> None:
        for names, length in ((HISTORY_FIELDS, "hist_len"), (TARGET_ARRAYS, "num_targets")):
            for name in names:
                actual = np.diff(self.offsets[name])
                if not np.array_equal(actual, self.scalars[length]):
                    row = int(np.argmax(actual != self.scalars[length]))
                    raise SchemaMismatchError(
                        f"{self.source}: row {row} (request {self.request_id[row]}): {name} has "
                        f"{actual[row]} elements but {length} = {self.scalars[length][row]}"
                    )


_NUMPY_DTYPES = {torch.int64: np.int64, torch.int32: np.int32, torch.float32: np.float32}


def _empty(shape: tuple[int, ...], dtype: torch.dtype, pin: bool) -> torch.Tensor:
    """An uninitialized tensor; the collate writes every element (values, then zero padding).

    Host memory comes from pyarrow's pool (jemalloc), which keeps freed blocks for reuse:
    torch's CPU allocator returns large blocks to the OS, and re-faulting tens of MB of fresh
    pages per batch cost more than the copy itself. Pinned memory uses torch's caching host
    allocator, which reuses blocks too."""
    if pin:
        return torch.empty(shape, dtype=dtype, pin_memory=True)
    np_dtype = np.dtype(_NUMPY_DTYPES[dtype])
    buf = pa.allocate_buffer(max(1, int(np.prod(shape)) * np_dtype.itemsize))
    return torch.from_numpy(np.frombuffer(buf, dtype=np_dtype, count=int(np.prod(shape))).reshape(shape))


def collate(
    rows: Sequence[tuple[RowGroupArrays, int]],
    keep: np.ndarray | None = None,
    pin_memory: bool = False,
) -> RequestBatch:
    """Pads the selected rows into a RequestBatch.

    `keep[i]` caps row i's history to its most recent keep[i] events (length-extrapolative
    training); None keeps the full history. L and M are the batch's real maxima."""
    b = len(rows)
    hist_len = np.array([g.scalars["hist_len"][r] for g, r in rows], dtype=np.int64)
    if keep is not None:
        hist_len = np.minimum(hist_len, keep)
    num_targets = np.array([g.scalars["num_targets"][r] for g, r in rows], dtype=np.int64)
    big_l, big_m = int(hist_len.max(initial=0)), int(num_targets.max(initial=0))

    hist = {n: _empty((b, big_l), _torch_dtype(n), pin_memory) for n in HISTORY_FIELDS}
    tgt = {n: _empty((b, big_m), _torch_dtype(n), pin_memory) for n in TARGET_FIELDS}
    labels = _empty((b, big_m, len(LABEL_COLUMN_NAMES)), torch.float32, pin_memory)
    hist_np = {n: t.numpy() for n, t in hist.items()}
    tgt_np = {n: t.numpy() for n, t in tgt.items()}
    labels_np = labels.numpy()
    labels_np.fill(0)
    for i, (g, r) in enumerate(rows):
        k, m = hist_len[i], num_targets[i]
        for n, out in hist_np.items():
            end = g.offsets[n][r + 1]
            out[i, :k] = g.values[n][end - k : end]  # the most recent k events, oldest first
            out[i, k:] = 0
        for n, out in tgt_np.items():
            start = g.offsets[n][r]
            out[i, :m] = g.values[n][start : start + m]
            out[i, m:] = 0
        for t, n in enumerate(LABEL_COLUMN_NAMES):
            start = g.offsets[n][r]
            labels_np[i, :m, t] = g.values[n][start : start + m]

    def scalar(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array([g.scalars[name][r] for g, r in rows], dtype=np.int64))

    return RequestBatch(
        request_id=[g.request_id[r] for g, r in rows],
        user_id=scalar("user_id"),
        request_ts=scalar("request_ts"),
        hist_len=torch.from_numpy(hist_len),
        num_targets=torch.from_numpy(num_targets),
        labels=labels,
        **hist,
        **tgt,
    )


class ShuffleBuffer:
    """Rows of several row groups, drawn at random (or in order) without replacement.

    Holds at least `capacity` rows while the stream lasts, so a batch mixes the requests of many
    users from several row groups (the table is clustered by user, DESIGN.md §7)."""

    def __init__(self, capacity: int, rng: np.random.Generator | None, by_length: bool = False) -> None:
        self.capacity = capacity
        self.rng = rng  # None: no shuffling (evaluation)
        self.by_length = by_length  # without rng: shortest histories first, so batches pad little
        self._groups: list[RowGroupArrays] = []
        self._group_ids = np.zeros(0, np.int64)
        self._row_ids = np.zeros(0, np.int64)
        self._lengths = np.zeros(0, np.int64)
        self._peeked = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self._row_ids)

    @property
    def full(self) -> bool:
        return len(self) >= self.capacity

    def add(self, group: RowGroupArrays) -> None:
        self._groups.append(group)
        gid = len(self._groups) - 1
        self._group_ids = np.concatenate([self._group_ids, np.full(group.num_rows, gid)])
        self._row_ids = np.concatenate([self._row_ids, np.arange(group.num_rows)])
        if group.num_rows:
            self._lengths = np.concatenate([self._lengths, group.scalars["hist_len"].astype(np.int64)])

    def peek(self, n: int) -> list[tuple[RowGroupArrays, int]]:
        """The next min(n, len) rows in draw order, not yet removed (see take_peeked)."""
        n = min(n, len(self))
        if self.rng is not None:
            self._peeked = self.rng.choice(len(self), size=n, replace=False)
        elif self.by_length:
            self._peeked = np.argsort(self._lengths, kind="stable")[:n]
        else:
            self._peeked = np.arange(n)
        return [(self._groups[g], int(r)) for g, r in zip(self._group_ids[self._peeked], self._row_ids[self._peeked], strict=True)]

    def take_peeked(self, n: int) -> list[tuple[RowGroupArrays, int]]:
        """Removes and returns the first n rows of the last peek."""
        picked = self._peeked[:n]
        out = [(self._groups[g], int(r)) for g, r in zip(self._group_ids[picked], self._row_ids[picked], strict=True)]
        keep = np.ones(len(self), bool)
        keep[picked] = False
        self._group_ids, self._row_ids, self._lengths = self._group_ids[keep], self._row_ids[keep], self._lengths[keep]
        self._peeked = np.zeros(0, np.int64)
        self._release_consumed_groups()
        return out

    def take(self, n: int) -> list[tuple[RowGroupArrays, int]]:
        self.peek(n)
        return self.take_peeked(n)

    def _release_consumed_groups(self) -> None:
        live = set(np.unique(self._group_ids).tolist())
        for gid, group in enumerate(self._groups):
            if gid not in live and group.num_rows:
                # Drop the Arrow buffers of a fully consumed row group (keep the slot: ids stay valid).
                self._groups[gid] = RowGroupArrays(group.source, 0, [], {}, {}, {})
