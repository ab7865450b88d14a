"""From Arrow row groups to `RequestBatch`: a shuffle buffer over rows, and a ragged-to-padded
collate that copies each kept history suffix once, straight into the (optionally pinned) tensor.

Why here and not in a petastorm TransformSpec: a TransformSpec goes Arrow -> pandas -> func ->
Arrow -> numpy for every row group, copying each 10k list several times and padding every row
of a row group to that group's maximum. Collating from Arrow buffers copies each kept event
once and pads only to the batch maximum (benchmarks/loader.py measures both)."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

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
_LABELS = "labels"  # padded_targets name for all label columns as (rows, M, T)
_TORCH_DTYPES = {pa.int64(): torch.int64, pa.int32(): torch.int32}


@functools.cache
def _torch_dtype(name: str) -> torch.dtype:
    field = _ARROW_SCHEMA.field(name)
    arrow_type = field.type.value_type if pa.types.is_list(field.type) else field.type
    return _TORCH_DTYPES[arrow_type]


# The history fields by tensor dtype (int64 ids and times, int32 the rest): the unit of a stacked
# row group (`stack_histories`) and of the batch's history storage (one (k, B, L) tensor per group).
HISTORY_DTYPE_GROUPS: tuple[tuple[str, ...], ...] = tuple(
    tuple(n for n in HISTORY_FIELDS if _torch_dtype(n) == dtype)
    for dtype in dict.fromkeys(map(_torch_dtype, HISTORY_FIELDS))
)


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
            raise SchemaMismatchError(
                f"{where}: column {name!r} has type {actual}, the contract says {expected}"
            )


@dataclass
class RowGroupArrays:
    """One row group's columns as numpy views over the Arrow buffers (no copies)."""

    source: str
    num_rows: int
    request_id: list[str]
    scalars: dict[str, np.ndarray]  # name -> (rows,)
    offsets: dict[str, np.ndarray]  # list column -> (rows + 1,), from 0: equal within history / target fields
    values: dict[str, np.ndarray]  # list column -> flat values
    # Where each row's history ends in the history values, when rows share events (the user-day
    # loader: every request is a slice of its day's window); None: offsets[history field][1:].
    history_ends: np.ndarray | None = None
    # Per HISTORY_DTYPE_GROUPS entry, its fields' values as the rows of one (k, N) array (values[name]
    # are those rows): collate then slices k fields with one view (stack_histories). None: separate.
    history_stacks: tuple[np.ndarray, ...] | None = None

    @classmethod
    def from_table(cls, table: pa.Table, source: str) -> RowGroupArrays:
        check_schema(table.schema, source)
        table = table.combine_chunks()
        scalars, offsets, values = {}, {}, {}
        for name in ("user_id", "request_ts", "hist_len", "num_targets"):
            column = (
                table.column(name).chunk(0) if table.num_rows else pa.array([], table.schema.field(name).type)
            )
            if column.null_count:
                raise TypeError(
                    f"{source}: column {name!r} has {column.null_count} nulls; tensors cannot hold them"
                )
            scalars[name] = column.to_numpy(zero_copy_only=False)
        for name in (*HISTORY_FIELDS, *TARGET_ARRAYS):
            if not table.num_rows:
                offsets[name], values[name] = np.zeros(1, np.int32), np.zeros(0)
                continue
            column = table.column(name).chunk(0)
            flat = column.values  # the whole child array: a sliced column's offsets do not start at 0
            if column.null_count or flat.null_count:
                raise TypeError(
                    f"{source}: column {name!r} has null lists or elements "
                    f"({column.null_count} / {flat.null_count}); "
                    "the quality gate should have stopped this partition"
                )
            starts = column.offsets.to_numpy()
            values[name] = flat.to_numpy()[starts[0] : starts[-1]]  # so offsets start at 0 in every field
            offsets[name] = starts - starts[0] if starts[0] else starts
        arrays = cls(source, table.num_rows, table.column("request_id").to_pylist(), scalars, offsets, values)
        arrays._check_lengths()
        arrays.pad_targets()
        return arrays

    def pad_targets(self) -> None:
        """Builds padded_targets for every target field and the labels now: from_table runs on the
        reader's worker thread, beside the decoding, and the collate thread then only copies rows."""
        for name in (*TARGET_FIELDS, _LABELS):
            self.padded_targets(name)

    def padded_targets(self, name: str) -> np.ndarray:
        """A target field as (rows, M_g) zero-padded to this group's most targets, or for
        `_LABELS` every label column as (rows, M_g, T) float32; built once per row group."""
        cache: dict[str, np.ndarray] = self.__dict__.setdefault("_padded_targets", {})
        if name not in cache:
            counts = self.scalars["num_targets"]
            real = np.arange(int(counts.max(initial=0)))[None, :] < counts[:, None]  # (rows, M_g)
            columns = LABEL_COLUMN_NAMES if name == _LABELS else (name,)
            out = np.zeros(
                (*real.shape, len(columns)), np.float32 if name == _LABELS else self.values[name].dtype
            )
            for t, column in enumerate(columns):
                offsets = self.offsets[column]
                out[..., t][real] = self.values[column][offsets[0] : offsets[-1]]
            cache[name] = out if name == _LABELS else out[..., 0]
        return cache[name]

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


def stack_histories(values: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Copies each dtype group's history values into one (k, N) array and points values[name] at
    its row; the result is RowGroupArrays.history_stacks.

    Worth its copy where the collate slices the same values many times: the user-day loader copies
    each window event into about k requests' rows, and building a view per field and row was a third
    of its collate (the memcpy itself is the rest); stacked, one view covers the group's fields."""
    stacks = []
    for names in HISTORY_DTYPE_GROUPS:
        n = len(values[names[0]])
        stack = _host_array((len(names), n), values[names[0]].dtype)
        for row, name in zip(stack, names, strict=True):
            row[:] = values[name]
            values[name] = row
        stacks.append(stack)
    return tuple(stacks)


_NUMPY_DTYPES: dict[torch.dtype, np.dtype[Any]] = {
    torch.int64: np.dtype(np.int64), torch.int32: np.dtype(np.int32), torch.float32: np.dtype(np.float32)
}


@functools.cache
def host_memory_pool() -> pa.MemoryPool:
    """The pool for the loader's host memory: decoded row groups and batch tensors.

    mimalloc keeps freed pages for reuse. pyarrow's default jemalloc pool releases them to the
    OS at once (its decay is 0), so each epoch re-faulted every page of the row groups it held
    and of the batches it built (about 90,000 faults, a fifth of the epoch's CPU time in the
    benchmark); torch's CPU allocator also returns large blocks. Falls back to the default pool
    where pyarrow was built without mimalloc."""
    try:
        return pa.mimalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


def _host_array(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """An uninitialized, writable array from host_memory_pool() (numpy's own allocation would
    fault in fresh pages every epoch)."""
    count = math.prod(shape)
    buf = pa.allocate_buffer(max(1, count * dtype.itemsize), memory_pool=host_memory_pool())
    return np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)


def _allocate(shapes: Sequence[tuple[tuple[int, ...], torch.dtype]], pin: bool) -> list[torch.Tensor]:
    """Uninitialized tensors of these shapes and dtypes, carved from one host allocation (the
    collate writes every element): one allocation per batch instead of one per tensor.

    Host memory comes from host_memory_pool(); pinned memory from torch's caching host allocator,
    which reuses blocks too."""
    sizes = [math.prod(shape) * _NUMPY_DTYPES[dtype].itemsize for shape, dtype in shapes]
    starts = np.concatenate([[0], np.cumsum([-(-n // 64) * 64 for n in sizes])]).tolist()  # 64-byte aligned
    if pin:
        arena = torch.empty(max(1, starts[-1]), dtype=torch.uint8, pin_memory=True)
        return [
            arena[a : a + n].view(dtype).view(shape)
            for (shape, dtype), a, n in zip(shapes, starts, sizes, strict=False)
        ]
    raw = _host_array((max(1, starts[-1]),), np.dtype(np.uint8))
    return [
        torch.from_numpy(raw[a : a + n].view(_NUMPY_DTYPES[dtype]).reshape(shape))
        for (shape, dtype), a, n in zip(shapes, starts, sizes, strict=False)
    ]


_ZEROS: dict[tuple[np.dtype, int], np.ndarray] = {}


def _zeros(dtype: np.dtype, n: int, rows: int = 0) -> np.ndarray:
    """A read-only zero array of at least n elements, or of `rows` x at least n (padding is
    sliced from it)."""
    zeros = _ZEROS.get((dtype, rows))
    if zeros is None or zeros.shape[-1] < n:
        shape = (rows, max(n, 16_384)) if rows else (max(n, 16_384),)
        zeros = _ZEROS[dtype, rows] = np.zeros(shape, dtype)
        zeros.flags.writeable = False
    return zeros


def _runs(rows: Sequence[tuple[RowGroupArrays, int]]) -> list[tuple[RowGroupArrays, int, int, np.ndarray]]:
    """The batch as runs of consecutive rows from one row group: (group, first, end, rows in the group)."""
    runs, first = [], 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i][0] is not rows[first][0]:
            runs.append(
                (rows[first][0], first, i, np.fromiter((r for _, r in rows[first:i]), np.int64, i - first))
            )
            first = i
    return runs


def _pack(
    out: np.ndarray,
    sources: list[np.ndarray],
    runs: list[tuple[RowGroupArrays, int, int, np.ndarray]],
    kept: Sequence[Any],
    padding: Sequence[Any],
    zeros: np.ndarray,
) -> None:
    """out = each row's kept slice of its run's source, then its padding slice of zeros, end to end
    along the last axis: one np.concatenate, a memcpy per slice and no Python loop over rows."""
    runs_of = zip(sources, runs, strict=True)
    per_row = chain.from_iterable(repeat(src, end - first) for src, (_, first, end, _) in runs_of)
    events: Iterator[np.ndarray] = map(np.ndarray.__getitem__, per_row, kept)
    pads = map(zeros.__getitem__, padding)
    np.concatenate(list(chain.from_iterable(zip(events, pads, strict=True))), axis=out.ndim - 1, out=out)


def collate(
    rows: Sequence[tuple[RowGroupArrays, int]],
    keep: np.ndarray | None = None,
    pin_memory: bool = False,
) -> RequestBatch:
    """Pads the selected rows into a RequestBatch.

    `keep[i]` caps row i's history to its most recent keep[i] events (length-extrapolative
    training); None keeps the full history. L and M are the batch's real maxima.

    Each history field (each dtype group of them, where the row groups are stacked) is one
    np.concatenate of slices (a memcpy per row, no gather index and no Python loop over rows);
    the rest is numpy per run of rows from one row group (ShuffleBuffer hands rows grouped by
    row group)."""
    b = len(rows)
    runs = _runs(rows)

    def gather(name: str) -> np.ndarray:
        out = np.empty(b, np.int64)
        for g, first, end, rs in runs:
            out[first:end] = g.scalars[name][rs]
        return out

    hist_len = gather("hist_len")
    if keep is not None:
        hist_len = np.minimum(hist_len, keep)
    num_targets = gather("num_targets")
    big_l, big_m = int(hist_len.max(initial=0)), int(num_targets.max(initial=0))

    # One (k, B, L) tensor per dtype group (each field's (B, L) tensor is a contiguous view of
    # it), the target fields and the labels, all from one allocation.
    shapes: list[tuple[tuple[int, ...], torch.dtype]] = [
        ((len(g), b, big_l), _torch_dtype(g[0])) for g in HISTORY_DTYPE_GROUPS
    ]
    shapes += [((b, big_m), _torch_dtype(n)) for n in TARGET_FIELDS]
    shapes.append(((b, big_m, len(LABEL_COLUMN_NAMES)), torch.float32))
    tensors = _allocate(shapes, pin_memory)
    stores = tensors[: len(HISTORY_DTYPE_GROUPS)]
    tgt = dict(zip(TARGET_FIELDS, tensors[len(HISTORY_DTYPE_GROUPS) : -1], strict=True))
    labels = tensors[-1]
    hist = {
        n: store[i]
        for names, store in zip(HISTORY_DTYPE_GROUPS, stores, strict=True)
        for i, n in enumerate(names)
    }
    if big_l:
        # Row i is its kept events then zeros: 2B slices laid end to end make the (B, L) tensor.
        # All history fields share these offsets (from 0; RowGroupArrays checks the lengths).
        ends = np.empty(b, np.int64)
        for g, first, end, rs in runs:
            shared = g.history_ends
            ends[first:end] = g.offsets[HISTORY_FIELDS[0]][rs + 1] if shared is None else shared[rs]
        kept = list(map(slice, (ends - hist_len).tolist(), ends.tolist()))  # the most recent hist_len events
        padding = list(map(slice, (big_l - hist_len).tolist()))
        stacked = [g.history_stacks for g, *_ in runs if g.history_stacks is not None]
        if len(stacked) == len(runs):  # every run's row group is stacked: k fields per view
            kept_k = list(zip(repeat(slice(None)), kept))
            padding_k = list(zip(repeat(slice(None)), padding))
            for k, (names, store) in enumerate(zip(HISTORY_DTYPE_GROUPS, stores, strict=True)):
                out = store.numpy().reshape(len(names), -1)
                zeros = _zeros(out.dtype, big_l, len(names))
                _pack(out, [stacks[k] for stacks in stacked], runs, kept_k, padding_k, zeros)
        else:
            for n, tensor in hist.items():
                out = tensor.numpy().reshape(-1)
                _pack(out, [g.values[n] for g, *_ in runs], runs, kept, padding, _zeros(out.dtype, big_l))

    padded = [(tensor.numpy(), n) for n, tensor in tgt.items()] + [(labels.numpy(), _LABELS)]
    for out, name in padded:
        out.fill(0)
        for g, first, end, rs in runs:
            source = g.padded_targets(name)  # (rows, M_g) or (rows, M_g, T), zero-padded
            width = min(source.shape[1], big_m)
            out[first:end, :width] = source[rs, :width]

    return RequestBatch(
        request_id=[g.request_id[r] for g, r in rows],
        user_id=torch.from_numpy(gather("user_id")),
        request_ts=torch.from_numpy(gather("request_ts")),
        hist_len=torch.from_numpy(hist_len),
        num_targets=torch.from_numpy(num_targets),
        labels=labels,
        **hist,
        **tgt,
    )


class ShuffleBuffer:
    """Rows of several row groups, drawn at random (or in order) without replacement.

    Holds at least `capacity` rows while the stream lasts, so a batch mixes the requests of many
    users from several row groups (the table is clustered by user, docs/design.md §7).

    The rows are kept in draw order, arranged when a row group is added: a uniform permutation of
    everything held (successive prefixes of one permutation are successive draws without
    replacement, the same distribution as a fresh draw per batch), or the stable sort by length
    (taking a prefix leaves the rest sorted). A batch is then a prefix: O(batch), not O(buffer)."""

    def __init__(self, capacity: int, rng: np.random.Generator | None, by_length: bool = False) -> None:
        self.capacity = capacity
        self.rng = rng  # None: no shuffling (evaluation)
        self.by_length = by_length  # without rng: shortest histories first, so batches pad little
        self._groups: list[RowGroupArrays] = []
        self._held: list[int] = []  # rows of each group still in the buffer
        self._group_ids = np.zeros(0, np.int64)
        self._row_ids = np.zeros(0, np.int64)
        self._lengths = np.zeros(0, np.int64)
        self._peeked = 0

    def __len__(self) -> int:
        return len(self._row_ids)

    @property
    def full(self) -> bool:
        return len(self) >= self.capacity

    def add(self, group: RowGroupArrays) -> None:
        self._groups.append(group)
        self._held.append(group.num_rows)
        gid = len(self._groups) - 1
        group_ids = np.concatenate([self._group_ids, np.full(group.num_rows, gid)])
        row_ids = np.concatenate([self._row_ids, np.arange(group.num_rows)])
        lengths = self._lengths
        if group.num_rows:
            lengths = np.concatenate([lengths, group.scalars["hist_len"].astype(np.int64)])
        order: np.ndarray | slice = slice(None)
        if self.rng is not None:
            order = self.rng.permutation(len(row_ids))
        elif self.by_length:
            order = np.argsort(lengths, kind="stable")
        self._group_ids, self._row_ids, self._lengths = group_ids[order], row_ids[order], lengths[order]

    def peek(self, n: int) -> list[tuple[RowGroupArrays, int]]:
        """The next min(n, len) rows in draw order, not yet removed (see take_peeked)."""
        self._peeked = n = min(n, len(self))
        group_ids, row_ids = self._group_ids[:n].tolist(), self._row_ids[:n].tolist()
        return [(self._groups[g], r) for g, r in zip(group_ids, row_ids, strict=True)]

    def take_peeked(self, n: int) -> list[tuple[RowGroupArrays, int]]:
        """Removes and returns the first n rows of the last peek, grouped by row group (the
        collate copies per run of rows from one group; order within a batch carries no meaning)."""
        n = min(n, self._peeked)
        by_group = np.argsort(self._group_ids[:n], kind="stable")
        group_ids, row_ids = self._group_ids[:n][by_group].tolist(), self._row_ids[:n][by_group].tolist()
        out = [(self._groups[g], r) for g, r in zip(group_ids, row_ids, strict=True)]
        self._group_ids, self._row_ids, self._lengths = (
            self._group_ids[n:],
            self._row_ids[n:],
            self._lengths[n:],
        )
        self._peeked = 0
        for gid, taken in Counter(group_ids).items():
            self._held[gid] -= taken
            if not self._held[gid]:
                # Drop the Arrow buffers of a fully consumed row group (keep the slot: ids stay valid).
                self._groups[gid] = RowGroupArrays(self._groups[gid].source, 0, [], {}, {}, {})
        return out

    def take(self, n: int) -> list[tuple[RowGroupArrays, int]]:
        self.peek(n)
        return self.take_peeked(n)
