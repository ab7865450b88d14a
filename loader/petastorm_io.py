"""Petastorm underneath: its Reader schedules row groups (seeded shuffle, shard selection) over
a worker pool; this module adapts it to hand back raw Arrow row groups.

Two changes to petastorm 0.13.1's batch reader, both through its public extension points
(`Reader(worker_class=..., reader_pool=...)`):

* `ArrowRowGroupWorker` publishes each row group as a pyarrow Table and skips petastorm's
  numpy conversion, which `np.vstack`s list columns and so refuses ragged histories; the
  collate in `loader/collate.py` pads them to the batch maximum instead. Worker errors are
  re-raised with the file and row group.
* `OrderedThreadPool` fixes an end-of-epoch race in `ThreadPool.get_results`: it checks "all
  workers done" before "ventilator completed", so when the ventilator hands out the last row
  group between the two checks the epoch ends early without an error (seen as about one short
  epoch in three on a multi-file table). Checking "completed" first closes it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from petastorm.arrow_reader_worker import ArrowReaderWorker
from petastorm.cache import NullCache
from petastorm.etl import dataset_metadata
from petastorm.fs_utils import get_filesystem_and_path_or_paths
from petastorm.reader import Reader, normalize_dataset_url_or_urls
from petastorm.workers_pool import EmptyResultError
from petastorm.workers_pool.dummy_pool import DummyPool
from petastorm.workers_pool.thread_pool import ThreadPool

from .errors import DataFileError

# petastorm 0.13.1 drives pyarrow's legacy ParquetDataset API (pinned with it, DESIGN.md §6) and
# warns on every call; the warnings say nothing actionable to our users.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"loader\.petastorm_io$")

# ... and logs at INFO, per reader, that a plain Parquet table has no petastorm metadata.
logging.getLogger("petastorm").setLevel(logging.WARNING)

POOLS = ("thread", "dummy")
SOURCE_KEY = b"rlb.source"  # schema metadata key naming a published row group's file


class _RawArrowQueueReader:
    """Hands the worker's Arrow table through unchanged (petastorm would vstack list columns)."""

    @property
    def batched_output(self) -> bool:
        return True

    def read_next(self, workers_pool: Any, schema: Any, ngram: Any) -> Any:
        try:
            return workers_pool.get_results()
        except EmptyResultError:
            raise StopIteration from None


class ArrowRowGroupWorker(ArrowReaderWorker):
    """Reads one row group per task and publishes it as a pyarrow Table."""

    @staticmethod
    def new_results_queue_reader() -> _RawArrowQueueReader:
        return _RawArrowQueueReader()

    def process(self, piece_index: int, worker_predicate: Any, shuffle_row_drop_partition: Any) -> None:
        """Reads one row group and publishes it as is, columns in schema order.

        petastorm's own path builds a legacy ParquetDataset per worker, reads through a Python
        file wrapper and `take`s every row even without row shuffling (a full copy of 10k-event
        lists). Rows are mixed by the loader's buffer, so this reads the row group natively."""
        piece = self._split_pieces[piece_index]
        try:
            if worker_predicate is not None or tuple(shuffle_row_drop_partition) != (0, 1):
                raise ValueError("predicates and shuffle_row_drop_partitions are not supported by the request loader")
            table = self._parquet_file(piece.path).read_row_group(
                piece.row_group, columns=[f.name for f in self._schema.fields.values()], use_threads=False
            )
        except Exception as e:
            raise DataFileError(
                f"reading row group {piece.row_group} of {piece.path} failed: {type(e).__name__}: {e}; "
                "the file may be corrupt or removed (VACUUM) since the snapshot was resolved"
            ) from e
        # Name the source in the table itself so later errors can say which file a row came from.
        self.publish_func(table.replace_schema_metadata({SOURCE_KEY: f"{piece.path} (row group {piece.row_group})"}))

    def _parquet_file(self, path: str) -> pq.ParquetFile:
        files: dict[str, pq.ParquetFile] = self.__dict__.setdefault("_files", {})
        if path not in files:  # one footer parse per file and worker
            files[path] = pq.ParquetFile(path if "://" not in path else self._filesystem.open(path))
        return files[path]


class OrderedThreadPool(ThreadPool):
    """petastorm's ThreadPool with the end-of-epoch check in a race-free order (module doc)."""

    _get_results_worker_id: int

    def get_results(self) -> Any:
        while True:
            ventilation_done = not self._ventilator or self._ventilator.completed()
            if ventilation_done and self.all_workers_done():
                raise EmptyResultError()
            if self.current_worker_done(self._get_results_worker_id):
                self._get_results_worker_id = (self._get_results_worker_id + 1) % self.workers_count
                continue
            result = self._next_from_current_worker()
            if result is not None:
                return result

    def _next_from_current_worker(self) -> Any:
        import queue

        from petastorm.workers_pool import VentilatedItemProcessedMessage

        try:
            # Strict round robin: results come back in ventilation order, so a seed fixes the order.
            result = self._results_queues[self._get_results_worker_id].get(block=True, timeout=0.1)
        except queue.Empty:
            return None
        if isinstance(result, VentilatedItemProcessedMessage):
            self._ventilated_items_processed_by_worker[self._get_results_worker_id] += 1
            if self._ventilator:
                self._ventilator.processed_item()
            self._get_results_worker_id = (self._get_results_worker_id + 1) % self.workers_count
            return None
        if isinstance(result, Exception):
            self.stop()
            self.join()
            raise result
        return result


@dataclass(frozen=True)
class RowGroup:
    path: str
    row_group: int
    num_rows: int


def open_reader(
    files: Sequence[str],
    columns: Sequence[str],
    *,
    seed: int,
    shuffle_row_groups: bool,
    rank: int,
    world_size: int,
    workers: int,
    pool: str,
) -> tuple[Reader, list[list[RowGroup]]]:
    """A petastorm Reader over `files` for one shard, and the row groups of every rank's shard.

    `seed` must be non-zero: petastorm treats 0 like None (an unseeded, irreproducible order)."""
    if seed == 0:
        raise ValueError("petastorm seed must be non-zero (0 means unseeded in petastorm 0.13.1)")
    urls = normalize_dataset_url_or_urls([f if "://" in f else f"file://{f}" for f in files])
    filesystem, paths = get_filesystem_and_path_or_paths(urls)
    reader_pool = OrderedThreadPool(workers, results_queue_size=max(4, 2 * workers)) if pool == "thread" else DummyPool()
    sharded = world_size > 1
    reader = Reader(
        filesystem,
        paths,
        schema_fields=list(columns),
        worker_class=ArrowRowGroupWorker,
        reader_pool=reader_pool,
        seed=seed,
        shuffle_rows=False,  # rows are mixed across row groups by the loader's buffer instead
        shuffle_row_groups=shuffle_row_groups,
        num_epochs=1,
        cur_shard=rank if sharded else None,
        shard_count=world_size if sharded else None,
        cache=NullCache(),
        is_batched_reader=True,
    )
    return reader, row_groups_by_rank(reader, world_size)


def row_groups_by_rank(reader: Reader, world_size: int) -> list[list[RowGroup]]:
    """The row groups petastorm assigns to each rank (its rule: row-group index % world_size),
    from one pass over the dataset's footers."""
    shards: list[list[RowGroup]] = [[] for _ in range(world_size)]
    footers: dict[str, pq.FileMetaData] = {}
    for index, piece in enumerate(dataset_metadata.load_row_groups(reader.dataset)):
        if piece.path not in footers:
            footers[piece.path] = pq.ParquetFile(reader.dataset.fs.open(piece.path)).metadata
        num_rows = footers[piece.path].row_group(piece.row_group).num_rows
        shards[index % world_size].append(RowGroup(piece.path, piece.row_group, num_rows))
    return shards
