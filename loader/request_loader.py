"""`RequestLoader`: a pinned Delta snapshot of `request_samples` -> torch `RequestBatch`es.

    from loader import LengthSampling, LoaderConfig, RequestLoader

    loader = RequestLoader("warehouse/request_samples", LoaderConfig(batch_size=256, seed=7,
                           length_sampling=LengthSampling(mean=2_000)), date_to="2026-01-03")
    print(loader.snapshot.version)          # what this run reads; pin it with version=...
    for batch in loader:                    # one epoch; iterate again for the next
        logits, loss = model(batch.to("cuda", non_blocking=True))

Petastorm schedules the row groups (seeded shuffle, rank sharding, a worker pool); this module
mixes rows across row groups in a buffer, samples history lengths, collates ragged rows into
padded tensors in a background thread, and keeps the guarantees training needs: every rank
yields the same number of batches, the same seed gives the same batches, `state_dict()` resumes
mid-epoch without repeats or gaps, and any failure ends iteration with an error naming the file.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from .batch import RequestBatch
from .collate import LOADER_COLUMNS, RowGroupArrays, ShuffleBuffer, check_schema, collate
from .epochs import EpochLoader, batch_sizes
from .errors import DataFileError, IncompleteEpochError, LoaderError
from .lengths import LengthSampling
from .petastorm_io import POOLS, SOURCE_KEY, RowGroup, open_reader, read_footers
from .snapshot import DateBound, Snapshot

log = logging.getLogger(__name__)

_END = object()
_POLL_S = 0.5  # how often a blocked queue operation re-checks that the other side is alive


@dataclass(frozen=True)
class LoaderConfig:
    batch_size: int = 256  # requests per batch (the cap when token_budget is set)
    shuffle: bool = True  # seeded row-group order and a row shuffle buffer; False: file order (evaluation)
    seed: int = 0  # with the epoch, fixes the order, the sampled lengths and therefore every batch
    shuffle_buffer: int = 2_048  # rows held for mixing (memory: rows x mean history x ~36 bytes)
    group_by_length: bool | None = (
        None  # without shuffle, batch similar history lengths (less padding); default on
    )
    # rows held for that grouping: smaller starts batches sooner (collate overlaps decoding), larger pads less
    length_window: int = 512
    length_sampling: LengthSampling | None = None  # training: random recent suffixes; None keeps all
    max_history: int | None = None  # cap on events kept per request (e.g. an inference length)
    token_budget: int | None = None  # close a batch once its history tokens would exceed this
    rank: int = 0  # this process's rank for data-parallel training
    world_size: int = 1  # number of ranks; all yield the same number of batches
    workers: int = 2  # petastorm reader threads
    pool: str = "thread"  # "thread", or "dummy" (everything in the calling thread; for debugging)
    prefetch: int = 4  # collated batches queued ahead of the consumer
    device: str | None = None  # move batches there (non-blocking from pinned memory on CUDA)
    pin_memory: bool | None = None  # default: True when device is CUDA

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={self.rank}, world_size={self.world_size}"
            )
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if min(self.workers, self.prefetch, self.shuffle_buffer, self.length_window) < 1:
            raise ValueError(
                "workers, prefetch, shuffle_buffer, length_window must be >= 1: "
                f"{self.workers}, {self.prefetch}, {self.shuffle_buffer}, {self.length_window}"
            )
        if self.max_history is not None and self.max_history < 1:
            raise ValueError(f"max_history must be >= 1, got {self.max_history}")
        if self.token_budget is not None:
            if self.token_budget < 1:
                raise ValueError(f"token_budget must be >= 1, got {self.token_budget}")
            if self.world_size > 1:
                # Token-balanced batch counts depend on the data each rank reads, so equal counts
                # per rank (needed to avoid a DDP hang) cannot be promised without a global plan.
                raise ValueError("token_budget needs world_size == 1; use batch_size for data-parallel runs")

    @property
    def pinned(self) -> bool:
        wanted = self.pin_memory if self.pin_memory is not None else str(self.device or "").startswith("cuda")
        return bool(wanted) and torch.cuda.is_available()


def petastorm_seed(*parts: int) -> int:
    """A non-zero 31-bit seed from parts (petastorm treats 0 as unseeded)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] % (2**31 - 1)) + 1


class RequestLoader(EpochLoader[RequestBatch, LoaderConfig]):
    """Iterates one epoch of request batches per `iter()`; see the module docstring. State,
    resume, len(), the context manager and the failure guard come from loader/epochs.py."""

    def __init__(
        self,
        source: str | Path | Snapshot,
        config: LoaderConfig | None = None,
        *,
        version: int | None = None,
        date_from: DateBound = None,
        date_to: DateBound = None,
    ) -> None:
        """`source`: the table's path, or a Snapshot resolved already (then `version` may be
        omitted; the dates narrow it without reading the Delta log again)."""
        super().__init__(
            source, config or LoaderConfig(), version=version, date_from=date_from, date_to=date_to,
            empty_hint="check the table and the date range",
        )  # fmt: skip
        self._check_files()
        self._batches_per_epoch: int | None = None  # len(); the shards are the same every epoch
        log.info(
            "loader: %s version %d, %d files, %s requests, rank %d/%d",
            self.snapshot.table_path, self.snapshot.version, len(self.snapshot.data_files),
            self.snapshot.num_records, self.config.rank, self.config.world_size,
        )  # fmt: skip

    def _check_files(self) -> None:
        snap = self.snapshot
        # kept: the reader's shard plan needs the row counts
        self._footers: dict[str, pq.FileMetaData] = read_footers(snap, check_schema)
        row_groups = sum(footer.num_row_groups for footer in self._footers.values())
        if row_groups < self.config.world_size:
            # petastorm deals whole row groups to ranks: a rank without one would have no data.
            raise LoaderError(
                f"{snap.table_path} version {snap.version} has {row_groups} row groups for "
                f"{self.config.world_size} ranks; use fewer ranks, or write the table in more, smaller "
                "row groups"
            )

    def _epoch_batches(self) -> int:
        """A TypeError with token_budget, where the count depends on each epoch's order (len()
        then also stays out of list()'s way)."""
        cfg = self.config
        if cfg.token_budget is not None:
            raise TypeError(
                "a RequestLoader with token_budget has no len(): its batches close by history tokens"
            )
        if self._batches_per_epoch is None:
            # petastorm picks a rank's row groups by index, whatever the seed (only their order
            # changes per epoch), so the plan of any epoch gives every epoch's count.
            reader, shards = open_reader(
                self.snapshot.files, LOADER_COLUMNS, seed=1, shuffle_row_groups=False, rank=cfg.rank,
                world_size=cfg.world_size, workers=1, pool="dummy", footers=self._footers,
            )  # fmt: skip
            reader.stop()
            reader.join()
            per_rank = [sum(g.num_rows for g in shard) for shard in shards]
            self._batches_per_epoch = len(batch_sizes(per_rank, cfg.batch_size, cfg.rank))
        return self._batches_per_epoch

    def _open_epoch(self, epoch: int, skip: int) -> EpochProducer:
        producer = EpochProducer(self.snapshot, self.config, epoch, skip, self._footers)
        producer.start()
        return producer

    def _deliver(self, batch: RequestBatch) -> RequestBatch:
        cfg = self.config
        return batch.to(cfg.device, non_blocking=cfg.pinned) if cfg.device else batch

    def describe(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        return {"table": self.snapshot.table_path, "version": self.snapshot.version,
                "files": len(self.snapshot.data_files), "requests": self.snapshot.num_records, "config": cfg}


class EpochProducer:
    """Reads, buffers and collates one epoch in a background thread; hands batches over a queue.

    Public for the loaders built on it (`UserDayLoader` overrides `_produce`): the thread, the
    queue, error hand-over and early close are the same for every loader."""

    def __init__(
        self,
        snapshot: Snapshot,
        cfg: LoaderConfig,
        epoch: int,
        skip: int,
        footers: dict[str, pq.FileMetaData],
    ) -> None:
        self.snapshot, self.cfg, self.epoch, self.skip, self.footers = snapshot, cfg, epoch, skip, footers
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=cfg.prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rlb-loader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def __iter__(self) -> Iterator[RequestBatch]:
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise LoaderError("the loader thread stopped without finishing the epoch") from None
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                if isinstance(item, LoaderError | TypeError | ValueError):
                    raise item
                raise LoaderError(
                    f"reading {self.snapshot.table_path} failed: {type(item).__name__}: {item}"
                ) from item
            yield item

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        if self._thread.is_alive():
            self._thread.join()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            self._produce()
            self._put(_END)
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(e)

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
            mine = shards[cfg.rank]
            expected = sum(g.num_rows for g in mine)
            per_rank = [sum(g.num_rows for g in shard) for shard in shards]
            sizes = batch_sizes(per_rank, cfg.batch_size, cfg.rank) if cfg.token_budget is None else None
            lengths = self._lengths(expected)
            rng = np.random.default_rng([cfg.seed, self.epoch, cfg.rank]) if cfg.shuffle else None
            by_length = not cfg.shuffle and cfg.group_by_length is not False
            window = cfg.shuffle_buffer if cfg.shuffle else cfg.length_window if by_length else 0
            capacity = max(window, cfg.batch_size)
            buffer = ShuffleBuffer(capacity, rng, by_length)
            stream = iter(reader)
            exhausted, emitted, batch_index = False, 0, 0
            while not self._stop.is_set():
                while not exhausted and not buffer.full:
                    table = next(stream, None)
                    if table is None:
                        exhausted = True
                    else:
                        # Built here, not on the reader's workers (open_reader's `convert`): this
                        # loader is bound by decoding, which those threads do.
                        source = (table.schema.metadata or {}).get(SOURCE_KEY, b"?").decode()
                        buffer.add(RowGroupArrays.from_table(table, source))
                if not len(buffer):
                    break
                if sizes is not None:
                    if batch_index >= len(sizes):
                        raise IncompleteEpochError(
                            f"rank {cfg.rank} read more rows than its {expected} planned rows"
                        )
                    rows = buffer.take(sizes[batch_index])
                else:
                    rows = self._take_by_tokens(buffer, lengths, emitted)
                keep = None if lengths is None else lengths[emitted : emitted + len(rows)]
                first = max(0, self.skip - emitted)  # resuming: rows consumed before the checkpoint
                if first < len(rows):
                    cut = None if keep is None else keep[first:]
                    if not self._put(collate(rows[first:], cut, cfg.pinned)):
                        return
                emitted, batch_index = emitted + len(rows), batch_index + 1
            if not self._stop.is_set() and emitted != expected:
                raise IncompleteEpochError(
                    f"rank {cfg.rank} epoch {self.epoch}: read {emitted} requests, its row groups hold "
                    f"{expected} "
                    f"({len(mine)} row groups of {self.snapshot.table_path} v{self.snapshot.version})"
                )
        finally:
            # Not `with reader`: its __exit__ prints to stdout.
            reader.stop()
            reader.join()

    def _open_reader(self) -> tuple[Any, list[list[RowGroup]]]:
        cfg = self.cfg
        return open_reader(
            self.snapshot.files,
            LOADER_COLUMNS,
            seed=petastorm_seed(cfg.seed, self.epoch),
            shuffle_row_groups=cfg.shuffle,
            rank=cfg.rank,
            world_size=cfg.world_size,
            workers=cfg.workers,
            pool=cfg.pool,
            footers=self.footers,
        )

    def _lengths(self, n: int) -> np.ndarray | None:
        """Per-sample history caps for the epoch, indexed by position in this rank's stream."""
        cfg = self.cfg
        if cfg.length_sampling is None:
            return None if cfg.max_history is None else np.full(n, cfg.max_history, np.int64)
        lengths = cfg.length_sampling.sample(np.random.default_rng([cfg.seed, self.epoch, cfg.rank, 1]), n)
        return lengths if cfg.max_history is None else np.minimum(lengths, cfg.max_history)

    def _take_by_tokens(
        self, buffer: ShuffleBuffer, lengths: np.ndarray | None, emitted: int
    ) -> list[tuple[RowGroupArrays, int]]:
        cfg = self.cfg
        assert cfg.token_budget is not None
        candidates = buffer.peek(cfg.batch_size)
        hist = np.array([g.scalars["hist_len"][r] for g, r in candidates], dtype=np.int64)
        if lengths is not None:
            hist = np.minimum(hist, lengths[emitted : emitted + len(hist)])
        n = max(1, int(np.searchsorted(np.cumsum(hist), cfg.token_budget, side="right")))
        return buffer.take_peeked(n)


__all__ = ["EpochProducer", "LoaderConfig", "RequestLoader", "RowGroup", "petastorm_seed"]
