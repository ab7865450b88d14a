"""`UserDayLoader`: a pinned Delta snapshot of `user_day_samples` -> `RequestBatch` or `GroupedBatch`.

    from loader import UserDayLoader, UserDayLoaderConfig

    loader = UserDayLoader("warehouse/user_day_samples", UserDayLoaderConfig(batch_size=256, seed=7))
    for batch in loader:            # RequestBatch: the same requests and tensors as RequestLoader's
        logits, loss = model(batch)
    grouped = UserDayLoader(path, UserDayLoaderConfig(batch_size=64, output="groups"))
    for batch in grouped:           # GroupedBatch: 64 whole user-days, each window once (MRLB)
        ...

A user-day row stores its window once and each request's [hist_start, hist_end) slice of it
(schemas/user_day_samples.py). The loader decodes each window once, per row group, and slices
it with numpy: `output="requests"` copies each request's (sampled suffix of its) slice into the
padded `RequestBatch` with the request loader's collate, so a request_samples history of 10k
events decoded k times per user-day becomes one window decoded once. `output="groups"` hands
whole user-days to MRLB as jagged values + offsets (loader/grouped_batch.py).

Everything else is `RequestLoader`'s: petastorm schedules the row groups (seeded shuffle, rank
sharding, a worker pool, loader/petastorm_io.py), its `ShuffleBuffer` mixes, its producer thread
collates ahead (loader/request_loader.py), and loader/epochs.py gives the seeded, resumable
epochs, `len()`, the context manager and the failure guard. What differs:

* the shuffle buffer holds whole user-days (a row group's requests enter it together). Per-request
  output draws *requests* at random from it, as RequestLoader draws rows; grouped output draws
  whole *user-days* (a batch holds all of each one's requests). `batch_size` counts requests for
  per-request output and user-days for grouped output (every rank yields the same number of
  batches in both: the request counts per row group are read up front).
* before the first epoch the loader reads the small per-request columns of every row group and
  refuses a table whose offsets are inconsistent, naming the file and row group; every row group
  read is checked again, with its windows (lengths, and no slice reaching its request_ts).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from schemas.fields import LABEL_COLUMN_NAMES
from schemas.user_day_samples import USER_DAY_SAMPLES

from .batch import HISTORY_FIELDS, TARGET_FIELDS, RequestBatch
from .collate import TARGET_ARRAYS, RowGroupArrays, ShuffleBuffer, collate, stack_histories
from .epochs import EpochLoader, batch_sizes
from .errors import DataFileError, IncompleteEpochError, LoaderError, SchemaMismatchError
from .grouped_batch import GroupedBatch
from .petastorm_io import SOURCE_KEY, RowGroup, open_reader, read_footers
from .request_loader import EpochProducer, LoaderConfig, petastorm_seed
from .snapshot import DateBound, Snapshot

log = logging.getLogger(__name__)

OUTPUTS = ("requests", "groups")
PER_REQUEST: tuple[str, ...] = ("request_id", "request_ts", "hist_start", "hist_end", "num_targets")
# Read before the first epoch, for the per-rank request counts and the offsets check.
INDEX_COLUMNS: tuple[str, ...] = (
    "user_id", "window_len", "num_requests", "hist_start", "hist_end", "num_targets", "total_targets",
)  # fmt: skip
USER_DAY_LOADER_COLUMNS: tuple[str, ...] = (
    "user_id", "window_len", *HISTORY_FIELDS, "num_requests", *PER_REQUEST, "total_targets", *TARGET_ARRAYS,
)  # fmt: skip
_ARROW_SCHEMA = USER_DAY_SAMPLES.arrow_schema()
_REBUILD = (
    "the loader refuses the table: rebuild that date with jobs/build_user_day_samples.py (the quality "
    "gate should have stopped it; was the table written by something else?)"
)


class UserDayOffsetsError(LoaderError):
    """A user-day row whose per-request offsets or lengths do not fit its window or targets."""


@dataclass(frozen=True)
class UserDayLoaderConfig(LoaderConfig):
    """`LoaderConfig` plus the output; batch_size counts requests ("requests") or user-days ("groups").

    shuffle_buffer and length_window count requests for per-request output and user-days for
    grouped output (the unit a batch draws). token_budget is not supported."""

    output: str = "requests"  # "requests": RequestBatch; "groups": GroupedBatch of whole user-days

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.token_budget is not None:
            raise ValueError("token_budget is not supported by the user-day loader; use batch_size")


def check_schema(schema: pa.Schema, where: str, names: tuple[str, ...] = USER_DAY_LOADER_COLUMNS) -> None:
    """Every column in `names` is present with the contract's type; raises naming file and column."""
    for name in names:
        expected = _ARROW_SCHEMA.field(name).type
        if name not in schema.names:
            raise SchemaMismatchError(
                f"{where}: column {name!r} ({expected}) is missing; columns present: {schema.names}. "
                "Was the table written by jobs/build_user_day_samples.py with the current "
                "schemas/user_day_samples.py?"
            )
        if schema.field(name).type != expected:
            raise SchemaMismatchError(
                f"{where}: column {name!r} has type {schema.field(name).type}, the contract says {expected}"
            )


def _column(table: pa.Table, name: str, source: str) -> pa.Array:
    """A checked column (check_schema ran on the table) as one array, without nulls."""
    column = table.column(name)
    array = column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)
    if array.null_count or (isinstance(array, pa.ListArray) and array.values.null_count):
        raise TypeError(f"{source}: column {name!r} has nulls; tensors cannot hold them ({_REBUILD})")
    return array


def _scalars(array: pa.Array) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.int64)


def _flat(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A list column's (values, offsets from 0): the values of a sliced column start at offsets[0]."""
    offsets = np.asarray(array.offsets.to_numpy(), dtype=np.int64)
    values = array.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
    return values, offsets - offsets[0]


def check_offsets(
    source: str,
    user_id: np.ndarray,
    window_len: np.ndarray,
    request_offsets: np.ndarray,
    hist_start: np.ndarray,
    hist_end: np.ndarray,
    num_targets: np.ndarray,
    total_targets: np.ndarray,
) -> None:
    """Raise UserDayOffsetsError naming the file, row group, user and request whose offsets do not
    fit: 0 <= start <= end <= window_len, starts and ends non-decreasing within a user-day, the
    targets summing to total_targets."""
    day = np.repeat(np.arange(len(window_len)), np.diff(request_offsets))
    first = np.zeros(len(day), bool)
    first[request_offsets[:-1][np.diff(request_offsets) > 0]] = True
    problems = (
        ("hist_start < 0 or hist_end < hist_start", (hist_start < 0) | (hist_end < hist_start)),
        ("hist_end > window_len", hist_end > window_len[day]),
        ("hist_start decreases", ~first & (np.diff(hist_start, prepend=0) < 0)),
        ("hist_end decreases", ~first & (np.diff(hist_end, prepend=0) < 0)),
        ("num_targets < 0", num_targets < 0),
    )
    for rule, bad in problems:
        if bad.any():
            r = int(np.argmax(bad))
            d = int(day[r])
            raise UserDayOffsetsError(
                f"{source}: user {int(user_id[d])}, request {r - int(request_offsets[d])} of the user-day: "
                f"{rule} (hist_start {int(hist_start[r])}, hist_end {int(hist_end[r])}, window_len "
                f"{int(window_len[d])}); {_REBUILD}"
            )
    cumulative = np.concatenate([[0], np.cumsum(num_targets)])
    sums = cumulative[request_offsets[1:]] - cumulative[request_offsets[:-1]]
    if not np.array_equal(sums, total_targets):
        d = int(np.argmax(sums != total_targets))
        raise UserDayOffsetsError(
            f"{source}: user {int(user_id[d])}: num_targets sum to {int(sums[d])} but total_targets is "
            f"{int(total_targets[d])}; {_REBUILD}"
        )


def _lengths_match(source: str, name: str, offsets: np.ndarray, expected: np.ndarray, what: str) -> None:
    actual = np.diff(offsets)
    if not np.array_equal(actual, expected):
        d = int(np.argmax(actual != expected))
        raise UserDayOffsetsError(
            f"{source}: user-day row {d}: {name} has {int(actual[d])} values but {what} = "
            f"{int(expected[d])}; {_REBUILD}"
        )


def index_row_group(table: pa.Table, source: str) -> int:
    """The requests of one row group of INDEX_COLUMNS, after check_offsets."""
    check_schema(table.schema, source, INDEX_COLUMNS)
    window_len = _scalars(_column(table, "window_len", source))
    num_requests = _scalars(_column(table, "num_requests", source))
    per = {n: _flat(_column(table, n, source)) for n in ("hist_start", "hist_end", "num_targets")}
    for name, (_, offsets) in per.items():
        _lengths_match(source, name, offsets, num_requests, "num_requests")
    check_offsets(
        source, _scalars(_column(table, "user_id", source)), window_len, per["hist_start"][1],
        per["hist_start"][0].astype(np.int64), per["hist_end"][0].astype(np.int64),
        per["num_targets"][0].astype(np.int64), _scalars(_column(table, "total_targets", source)),
    )  # fmt: skip
    return int(num_requests.sum())


@dataclass
class UserDays:
    """One row group of user_day_samples as numpy views over the Arrow buffers (checked).

    `requests` is the request-level view the request loader's collate reads: one row per request,
    its history ending at `history_ends` in the row group's flat windows (`values`), its targets
    at `offsets` in the flat targets."""

    source: str
    user_id: np.ndarray  # (G,)
    window_offsets: np.ndarray  # (G + 1,), into the flat window values
    request_offsets: np.ndarray  # (G + 1,), into the per-request arrays
    hist_start: np.ndarray  # (R,), into the request's own window
    hist_end: np.ndarray  # (R,)
    requests: RowGroupArrays  # R rows

    @property
    def num_days(self) -> int:
        return len(self.user_id)

    @classmethod
    def from_table(cls, table: pa.Table, source: str) -> UserDays:
        check_schema(table.schema, source)
        user_id = _scalars(_column(table, "user_id", source))
        window_len = _scalars(_column(table, "window_len", source))
        num_requests = _scalars(_column(table, "num_requests", source))
        total_targets = _scalars(_column(table, "total_targets", source))
        values: dict[str, np.ndarray] = {}
        offsets: dict[str, np.ndarray] = {}
        checks = (
            (HISTORY_FIELDS, window_len, "window_len"),
            (PER_REQUEST, num_requests, "num_requests"),
            (TARGET_ARRAYS, total_targets, "total_targets"),
        )
        for names, lengths, what in checks:
            for name in names:
                array = _column(table, name, source)
                if name == "request_id":  # strings stay Python strings, as in RequestBatch
                    request_id = array.flatten().to_pylist()
                    offsets[name] = np.asarray(array.offsets.to_numpy(), np.int64) - array.offsets[0].as_py()
                else:
                    values[name], offsets[name] = _flat(array)
                _lengths_match(source, name, offsets[name], lengths, what)
        req_off, win_off = offsets["hist_start"], offsets[HISTORY_FIELDS[0]]
        hist_start = values["hist_start"].astype(np.int64)
        hist_end = values["hist_end"].astype(np.int64)
        num_targets = values["num_targets"].astype(np.int64)
        check_offsets(source, user_id, window_len, req_off, hist_start, hist_end, num_targets, total_targets)
        day = np.repeat(np.arange(len(user_id)), num_requests)
        ends = win_off[day] + hist_end
        request_ts = values["request_ts"].astype(np.int64)
        read = np.flatnonzero(hist_end > hist_start)
        leak = read[values["hist_ts"][ends[read] - 1] >= request_ts[read]]
        if len(leak):
            r = int(leak[0])
            raise UserDayOffsetsError(
                f"{source}: request {request_id[r]} (user {int(user_id[day[r]])}): the last event "
                f"of its slice has event_ts {int(values['hist_ts'][ends[r] - 1])} >= its request_ts "
                f"{int(request_ts[r])}: the slice reaches its own request; {_REBUILD}"
            )
        target_offsets = np.zeros(len(num_targets) + 1, np.int64)
        np.cumsum(num_targets, out=target_offsets[1:])
        window = {name: values[name] for name in HISTORY_FIELDS}
        stacks = stack_histories(window)  # each window event is copied into ~k requests' rows
        requests = RowGroupArrays(
            source,
            len(num_targets),
            request_id,
            {"user_id": user_id[day], "request_ts": request_ts, "hist_len": hist_end - hist_start,
             "num_targets": num_targets},
            {name: target_offsets for name in TARGET_ARRAYS},
            {**window, **{name: values[name] for name in TARGET_ARRAYS}},
            history_ends=ends,
            history_stacks=stacks,
        )  # fmt: skip
        requests.pad_targets()
        return cls(source, user_id, win_off, req_off, hist_start, hist_end, requests)

    def day_rows(self) -> DayRows:
        """The row group with one row per user-day, for a ShuffleBuffer that draws whole days."""
        window_len = np.diff(self.window_offsets)
        labels = [f"user {u}" for u in self.user_id.tolist()]
        return DayRows(self.source, self.num_days, labels, {"hist_len": window_len}, {}, {}, days=self)


@dataclass
class DayRows(RowGroupArrays):
    """A ShuffleBuffer's view of a UserDays row group: one row per user-day (hist_len = window_len)."""

    days: UserDays | None = field(default=None, repr=False)


def collate_groups(
    rows: list[tuple[RowGroupArrays, int]], keep: np.ndarray | None = None, pin_memory: bool = False
) -> GroupedBatch:
    """Whole user-days into a GroupedBatch: each window trimmed to the events its requests read
    (after the per-request suffix `keep`, indexed by request in batch order), copied once."""
    windows: dict[str, list[np.ndarray]] = {n: [] for n in HISTORY_FIELDS}
    targets: dict[str, list[np.ndarray]] = {n: [] for n in TARGET_ARRAYS}
    user_id, window_len, request_id = [], [], []
    per: dict[str, list[np.ndarray]] = {n: [] for n in PER_REQUEST[1:]}  # request_ts .. num_targets
    position = 0  # requests collated so far (the index into keep)
    for view, d in rows:
        days = view.days if isinstance(view, DayRows) else None
        if days is None:
            raise TypeError(f"collate_groups takes DayRows, got {type(view).__name__} from {view.source}")
        req = days.requests
        lo, hi = int(days.request_offsets[d]), int(days.request_offsets[d + 1])
        start, end = days.hist_start[lo:hi], days.hist_end[lo:hi]
        if keep is not None:
            start = np.maximum(start, end - keep[position : position + hi - lo])
        position += hi - lo
        read = end > start
        first = int(start[read].min()) if read.any() else 0
        last = int(end[read].max()) if read.any() else 0
        base = int(days.window_offsets[d])
        for name in HISTORY_FIELDS:
            windows[name].append(req.values[name][base + first : base + last])
        t_lo, t_hi = int(req.offsets[TARGET_ARRAYS[0]][lo]), int(req.offsets[TARGET_ARRAYS[0]][hi])
        for name in TARGET_ARRAYS:
            targets[name].append(req.values[name][t_lo:t_hi])
        user_id.append(int(days.user_id[d]))
        window_len.append(last - first)
        request_id += req.request_id[lo:hi]
        per["request_ts"].append(req.scalars["request_ts"][lo:hi])
        per["hist_start"].append(np.clip(start - first, 0, last - first))
        per["hist_end"].append(np.clip(end - first, 0, last - first))
        per["num_targets"].append(req.scalars["num_targets"][lo:hi])

    def cat(parts: list[np.ndarray], dtype: Any = None) -> torch.Tensor:
        out = np.concatenate(parts) if parts else np.zeros(0, dtype or np.int64)
        return torch.from_numpy(out if dtype is None else out.astype(dtype, copy=False))

    counts = np.array([len(p) for p in per["request_ts"]], np.int64)
    label_parts = [cat(targets[name], np.float32) for name in LABEL_COLUMN_NAMES]
    batch = GroupedBatch(
        request_id=request_id,
        user_id=torch.tensor(user_id, dtype=torch.int64),
        window_len=torch.tensor(window_len, dtype=torch.int64),
        window={name: cat(parts) for name, parts in windows.items()},
        group=torch.from_numpy(np.repeat(np.arange(len(counts)), counts)),
        **{name: cat(parts, np.int64) for name, parts in per.items()},
        targets={name: cat(targets[name]) for name in TARGET_FIELDS},
        labels=torch.stack(label_parts, dim=1),
    )
    return batch.pin_memory() if pin_memory else batch


class UserDayLoader(EpochLoader[RequestBatch | GroupedBatch, UserDayLoaderConfig]):
    """Iterates one epoch of RequestBatch (output="requests") or GroupedBatch (output="groups")
    per `iter()`; see the module docstring. State counts requests in both outputs."""

    def __init__(
        self,
        source: str | Path | Snapshot,
        config: UserDayLoaderConfig | None = None,
        *,
        version: int | None = None,
        date_from: DateBound = None,
        date_to: DateBound = None,
    ) -> None:
        """`source`: the user_day_samples table's path, or a Snapshot resolved already."""
        super().__init__(
            source, config or UserDayLoaderConfig(), version=version, date_from=date_from, date_to=date_to,
            empty_hint="build it with jobs/build_user_day_samples.py, or check the date range",
        )  # fmt: skip
        self._footers: dict[str, pq.FileMetaData] = {}
        self._requests: dict[str, int] = {}  # row-group source -> requests
        self._check_files()
        self._batches_per_epoch: int | None = None
        log.info(
            "user-day loader: %s version %d, %d files, %d user-days, %d requests, rank %d/%d, output %s",
            self.snapshot.table_path, self.snapshot.version, len(self.snapshot.data_files),
            self.snapshot.num_records, self.num_requests, self.config.rank, self.config.world_size,
            self.config.output,
        )  # fmt: skip

    @property
    def num_requests(self) -> int:
        """Requests in the snapshot (all ranks)."""
        return sum(self._requests.values())

    def _check_files(self) -> None:
        """Footers, the small per-request columns of every row group (requests per row group) and
        their offsets; a missing, unreadable or inconsistent file is refused here, by name."""
        snap, cfg = self.snapshot, self.config
        self._footers.update(read_footers(snap, check_schema))
        reader, shards = open_reader(
            snap.files, INDEX_COLUMNS, seed=1, shuffle_row_groups=False, rank=0, world_size=1,
            workers=cfg.workers, pool=cfg.pool, footers=self._footers,
        )  # fmt: skip
        try:
            for table in reader:
                source = (table.schema.metadata or {}).get(SOURCE_KEY, b"?").decode()
                self._requests[source] = index_row_group(table, source)
        finally:
            reader.stop()
            reader.join()
        missing = [_source(g) for g in shards[0] if _source(g) not in self._requests]
        if missing:
            raise IncompleteEpochError(f"reading the index of {snap.table_path} skipped {missing[:3]}")
        if len(shards[0]) < cfg.world_size:
            raise LoaderError(
                f"{snap.table_path} version {snap.version} has {len(shards[0])} row groups for "
                f"{cfg.world_size} ranks; use fewer ranks, or write the table in more, smaller row groups"
            )

    def _plan(self) -> tuple[list[list[RowGroup]], list[int]]:
        """Every rank's row groups (petastorm's rule, the same in every epoch) and units per rank."""
        cfg = self.config
        reader, shards = open_reader(
            self.snapshot.files, USER_DAY_LOADER_COLUMNS, seed=1, shuffle_row_groups=False, rank=cfg.rank,
            world_size=cfg.world_size, workers=1, pool="dummy", footers=self._footers,
        )  # fmt: skip
        reader.stop()
        reader.join()
        return shards, units_per_rank(shards, self._requests, cfg.output)

    def _epoch_batches(self) -> int:
        if self._batches_per_epoch is None:
            _, units = self._plan()
            self._batches_per_epoch = len(batch_sizes(units, self.config.batch_size, self.config.rank))
        return self._batches_per_epoch

    def _open_epoch(self, epoch: int, skip: int) -> _UserDayProducer:
        producer = _UserDayProducer(self.snapshot, self.config, epoch, skip, self._footers, self._requests)
        producer.start()
        return producer

    def _deliver(self, batch: RequestBatch | GroupedBatch) -> RequestBatch | GroupedBatch:
        cfg = self.config
        return batch.to(cfg.device, non_blocking=cfg.pinned) if cfg.device else batch

    def state_dict(self) -> dict[str, Any]:
        """EpochLoader's state (in requests) plus the output: a grouped run resumes at a user-day
        boundary, which a per-request state need not be."""
        return {**super().state_dict(), "output": self.config.output}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("output", "requests") != self.config.output:
            raise ValueError(
                f"cannot resume: state has output={state.get('output')!r}, this loader has "
                f"{self.config.output!r}"
            )
        super().load_state_dict(state)

    def describe(self) -> dict[str, Any]:
        return {"table": self.snapshot.table_path, "version": self.snapshot.version,
                "files": len(self.snapshot.data_files), "user_days": self.snapshot.num_records,
                "requests": self.num_requests, "config": asdict(self.config)}  # fmt: skip


def _source(group: RowGroup) -> str:
    """The name ArrowRowGroupWorker gives a row group's table (SOURCE_KEY)."""
    return f"{group.path} (row group {group.row_group})"


def units_per_rank(shards: list[list[RowGroup]], requests: Mapping[str, int], output: str) -> list[int]:
    """What batch_size counts, per rank: requests, or user-days (rows) for grouped output."""
    if output == "groups":
        return [sum(g.num_rows for g in shard) for shard in shards]
    return [sum(requests[_source(g)] for g in shard) for shard in shards]


class _UserDayProducer(EpochProducer):
    """RequestLoader's producer thread and queue, reading user-day row groups (module docstring)."""

    def __init__(
        self,
        snapshot: Snapshot,
        cfg: UserDayLoaderConfig,
        epoch: int,
        skip: int,
        footers: dict[str, pq.FileMetaData],
        requests: Mapping[str, int],
    ) -> None:
        super().__init__(snapshot, cfg, epoch, skip, footers)
        self.grouped = cfg.output == "groups"
        self.requests = requests

    def _open_reader(self) -> tuple[Any, list[list[RowGroup]]]:
        cfg = self.cfg
        return open_reader(
            self.snapshot.files, USER_DAY_LOADER_COLUMNS, seed=petastorm_seed(cfg.seed, self.epoch),
            shuffle_row_groups=cfg.shuffle, rank=cfg.rank, world_size=cfg.world_size, workers=cfg.workers,
            pool=cfg.pool, footers=self.footers,
            # Built on the worker that decoded the row group: this loader is bound by the collate,
            # on the producer thread, not by decoding (docs/loader.md, the user-day loader).
            convert=UserDays.from_table,
        )  # fmt: skip

    def _produce(self) -> None:
        cfg = self.cfg
        try:
            reader, shards = self._open_reader()
        except OSError as e:
            raise DataFileError(
                f"opening the data files of {self.snapshot.table_path} v{self.snapshot.version} failed: {e}; "
                "a file was removed or rewritten after the snapshot was resolved (VACUUM too early?)"
            ) from e
        try:
            expected = sum(self.requests[_source(g)] for g in shards[cfg.rank])
            units = units_per_rank(shards, self.requests, "groups" if self.grouped else "requests")
            sizes = batch_sizes(units, cfg.batch_size, cfg.rank)
            lengths = self._lengths(expected)
            rng = np.random.default_rng([cfg.seed, self.epoch, cfg.rank]) if cfg.shuffle else None
            by_length = not cfg.shuffle and cfg.group_by_length is not False
            window = cfg.shuffle_buffer if cfg.shuffle else cfg.length_window if by_length else 0
            buffer = ShuffleBuffer(max(window, cfg.batch_size), rng, by_length)
            stream, exhausted, emitted = iter(reader), False, 0
            for size in sizes:
                while not exhausted and not buffer.full:
                    days = next(stream, None)
                    if days is None:
                        exhausted = True
                        continue
                    buffer.add(days.day_rows() if self.grouped else days.requests)
                rows = buffer.take(size)
                n = sum(_requests_of(view, d) for view, d in rows) if self.grouped else len(rows)
                keep = None if lengths is None else lengths[emitted : emitted + n]
                if not self._emit(rows, keep, emitted, n):
                    return
                emitted += n
            if not exhausted and next(stream, None) is not None:
                raise IncompleteEpochError(
                    f"rank {cfg.rank} epoch {self.epoch}: more rows than the {expected} planned requests"
                )
            if not self._stop.is_set() and (emitted != expected or len(buffer)):
                raise IncompleteEpochError(
                    f"rank {cfg.rank} epoch {self.epoch}: read {emitted} requests, its row groups hold "
                    f"{expected} ({len(shards[cfg.rank])} row groups of {self.snapshot.table_path} "
                    f"v{self.snapshot.version})"
                )
        finally:
            reader.stop()
            reader.join()

    def _emit(
        self, rows: list[tuple[RowGroupArrays, int]], keep: np.ndarray | None, emitted: int, n: int
    ) -> bool:
        """Collate and queue one batch of n requests, minus those a resumed run consumed before its
        checkpoint; False once stopped."""
        if self._stop.is_set():
            return False
        pinned = self.cfg.pinned
        if not self.grouped:
            first = max(0, self.skip - emitted)
            if first >= len(rows):
                return True
            return self._put(collate(rows[first:], None if keep is None else keep[first:], pinned))
        if emitted >= self.skip:
            return self._put(collate_groups(rows, keep, pinned))
        if emitted + n > self.skip:
            raise ValueError(
                f"cannot resume a grouped epoch at request {self.skip}: it falls inside a batch of whole "
                f"user-days (requests {emitted}..{emitted + n}); was the state saved by another loader?"
            )
        return True


def _requests_of(view: RowGroupArrays, d: int) -> int:
    days = view.days if isinstance(view, DayRows) else None
    if days is None:
        raise TypeError(f"expected a user-day row, got {type(view).__name__}")
    return int(days.request_offsets[d + 1] - days.request_offsets[d])


__all__ = [
    "USER_DAY_LOADER_COLUMNS",
    "DayRows",
    "UserDayLoader",
    "UserDayLoaderConfig",
    "UserDayOffsetsError",
    "UserDays",
    "collate_groups",
]
