"""Petastorm underneath: its Reader schedules row groups (seeded shuffle, shard selection) over
a worker pool; this module adapts it to hand back raw Arrow row groups.

Two changes to petastorm 0.13.1's batch reader, both through its public extension points
(`Reader(worker_class=..., reader_pool=...)`):

* `ArrowRowGroupWorker` publishes each row group as a pyarrow Table and skips petastorm's
  numpy conversion, which `np.vstack`s list columns and so refuses ragged histories; the
  collate in `loader/collate.py` pads them to the batch maximum instead. It decodes local files
  into the loader's host memory pool (`collate.host_memory_pool`). Worker errors are re-raised
  with the file and row group.
* `OrderedThreadPool` fixes an end-of-epoch race in `ThreadPool.get_results`: it checks "all
  workers done" before "ventilator completed", so when the ventilator hands out the last row
  group between the two checks the epoch ends early without an error (seen as about one short
  epoch in three on a multi-file table). Checking "completed" first closes it. It also reads
  results strictly in ventilation order, which petastorm does only when the ventilator keeps
  ahead (`get_results`). Its workers block on their queues instead of polling them every
  millisecond (petastorm's `IO_TIMEOUT_INTERVAL_S`): an idle worker woke 1,000 times a second
  and took the GIL each time from the thread that collates batches; `stop()` wakes them with a
  sentinel instead.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.filesystem as legacyfs
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from petastorm.arrow_reader_worker import ArrowReaderWorker
from petastorm.cache import NullCache
from petastorm.etl import dataset_metadata
from petastorm.fs_utils import get_filesystem_and_path_or_paths
from petastorm.reader import Reader, normalize_dataset_url_or_urls
from petastorm.workers_pool import EmptyResultError, VentilatedItemProcessedMessage
from petastorm.workers_pool.dummy_pool import DummyPool
from petastorm.workers_pool.thread_pool import ThreadPool, WorkerTerminationRequested, WorkerThread

from storage.object_store import S3Settings, arrow_path, is_remote

from .collate import host_memory_pool
from .errors import DataFileError

if TYPE_CHECKING:
    from .snapshot import Snapshot

# petastorm 0.13.1 drives pyarrow's legacy ParquetDataset API (pinned with it, docs/design.md §6) and
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
    """Reads one row group per task and publishes it as a pyarrow Table, or as what `convert`
    makes of it (`open_reader`)."""

    # (table, source) -> what the reader yields; run on the worker thread (_converting_worker).
    convert: Callable[[pa.Table, str], Any] | None = None

    @staticmethod
    def new_results_queue_reader() -> _RawArrowQueueReader:
        return _RawArrowQueueReader()

    def process(self, piece_index: int, worker_predicate: Any, shuffle_row_drop_partition: Any) -> None:
        """Reads one row group and publishes it as is, columns in schema order.

        petastorm's own path builds a legacy ParquetDataset per worker, reads through a Python
        file wrapper and `take`s every row even without row shuffling (a full copy of 10k-event
        lists). Rows are mixed by the loader's buffer, so this reads the row group natively.

        Columns are decoded in parallel on Arrow's CPU pool (`use_threads=True`), as `read_table`
        does: with one column per task the decode also spreads over the cores when a table has
        few row groups, and it took about 6% less CPU than a serial decode per worker thread
        (fewer Python threads holding decoded row groups and contending for the GIL)."""
        piece = self._split_pieces[piece_index]
        try:
            if worker_predicate is not None or tuple(shuffle_row_drop_partition) != (0, 1):
                raise ValueError(
                    "predicates and shuffle_row_drop_partitions are not supported by the request loader"
                )
            table = self._parquet_file(piece.path).read_row_group(
                piece.row_group, columns=[f.name for f in self._schema.fields.values()], use_threads=True
            )
        except Exception as e:
            raise DataFileError(
                f"reading row group {piece.row_group} of {piece.path} failed: {type(e).__name__}: {e}; "
                "the file may be corrupt or removed (VACUUM) since the snapshot was resolved"
            ) from e
        source = f"{piece.path} (row group {piece.row_group})"
        if self.convert is not None:
            self.publish_func(self.convert(table, source))
        else:  # name the source in the table itself, so later errors can say which file a row came from
            self.publish_func(table.replace_schema_metadata({SOURCE_KEY: source}))

    def _parquet_file(self, path: str) -> _LocalParquetFile | pq.ParquetFile:
        files: dict[str, _LocalParquetFile | pq.ParquetFile] = self.__dict__.setdefault("_files", {})
        if path not in files:  # one footer parse per file and worker
            fs = self._filesystem
            files[path] = (
                # pre_buffer: a row group's column chunks in a few coalesced, concurrent range
                # requests instead of one GET per chunk (half the read time through s3proxy).
                pq.ParquetFile(fs.arrow.open_input_file(path), pre_buffer=True)
                if isinstance(fs, ArrowLegacyFileSystem)
                else _LocalParquetFile(path)
                if "://" not in path
                else pq.ParquetFile(fs.open(path))
            )
        return files[path]


@functools.cache
def _converting_worker(convert: Callable[[pa.Table, str], Any]) -> type[ArrowRowGroupWorker]:
    """ArrowRowGroupWorker publishing convert(table, source): petastorm builds the workers itself,
    from a class."""
    return type(
        f"ArrowRowGroupWorker[{convert.__qualname__}]",
        (ArrowRowGroupWorker,),
        {"convert": staticmethod(convert)},
    )


class _LocalParquetFile:
    """`ParquetFile.read_row_group` decoding into the loader's host memory pool (collate.py):
    pyarrow 14's ParquetFile takes no pool, its Dataset API does."""

    def __init__(self, path: str) -> None:
        self._fragment = ds.ParquetFileFormat().make_fragment(path, pafs.LocalFileSystem())

    def read_row_group(self, i: int, columns: list[str], use_threads: bool = True) -> pa.Table:
        row_group = self._fragment.subset(row_group_ids=[i])
        # One record batch per row group (batch_size caps rows per batch), so columns stay one chunk.
        return row_group.to_table(
            columns=columns, use_threads=use_threads, memory_pool=host_memory_pool(), batch_size=2**31 - 1
        )


class ArrowLegacyFileSystem(legacyfs.DaskFileSystem):
    """A pyarrow.fs filesystem (S3) in the legacy `pyarrow.filesystem` API petastorm 0.13.1 drives:
    without s3fs (not a dependency) petastorm cannot open `s3://` itself, and pyarrow 14's legacy
    ParquetDataset takes only a legacy filesystem. Object paths are `bucket/key`."""

    def __init__(self, arrow: pafs.FileSystem) -> None:
        from fsspec.implementations.arrow import ArrowFSWrapper

        with warnings.catch_warnings():  # the wrapper class is deprecated, and still what petastorm needs
            warnings.simplefilter("ignore", FutureWarning)
            super().__init__(ArrowFSWrapper(arrow))
        self.arrow = arrow

    def isdir(self, path: str) -> bool:
        return bool(self.fs.isdir(path))

    def isfile(self, path: str) -> bool:
        return bool(self.fs.isfile(path))

    def walk(self, path: str) -> Any:
        return self.fs.walk(path)


@functools.cache
def _remote_filesystem() -> ArrowLegacyFileSystem:
    """One S3 filesystem per process, from the AWS variables (storage/object_store.py)."""
    return ArrowLegacyFileSystem(S3Settings.from_env().arrow_filesystem())


def read_footer(path: str) -> pq.FileMetaData:
    """The Parquet footer of a local file or an `s3://` object."""
    if is_remote(path):
        with _remote_filesystem().arrow.open_input_file(arrow_path(path)) as f:
            return pq.read_metadata(f)
    return pq.read_metadata(path)


def read_footers(
    snapshot: Snapshot, check_schema: Callable[[pa.Schema, str], None]
) -> dict[str, pq.FileMetaData]:
    """Every data file's footer, each file's schema checked by `check_schema(schema, path)`; a
    missing or unreadable file raises DataFileError naming it (the loaders' start-up check)."""
    footers: dict[str, pq.FileMetaData] = {}
    for f in snapshot.data_files:
        try:
            footers[f.path] = footer = read_footer(f.path)
            schema = footer.schema.to_arrow_schema()
        except FileNotFoundError as e:
            raise DataFileError(
                f"data file {f.path} of {snapshot.table_path} version {snapshot.version} is missing: "
                "it was deleted outside Delta (or vacuumed while this version was still in use)"
            ) from e
        except Exception as e:
            raise DataFileError(
                f"data file {f.path} cannot be read as Parquet: {type(e).__name__}: {e}"
            ) from e
        check_schema(schema, f.path)
    return footers


_PUT_POLL_S = 0.05  # a worker blocked on a full results queue re-checks the stop event this often
_WAIT_VENTILATION_S = 0.001  # the reader waiting for the ventilator to hand out the next row group


class _BlockingWorkerThread(WorkerThread):
    """petastorm's WorkerThread, waiting on its queue without a timeout (None: stop)."""

    def run(self) -> None:
        while not self._stop_event.is_set():
            item = self._ventilator_queue.get()
            if item is None or self._stop_event.is_set():
                return
            args, kwargs = item
            try:
                self._worker_impl.process(*args, **kwargs)
                self._worker_impl.publish_func(VentilatedItemProcessedMessage())
            except WorkerTerminationRequested:
                return
            except Exception as e:
                # Handed to the reader, which raises it (ArrowRowGroupWorker names the file).
                with contextlib.suppress(WorkerTerminationRequested):
                    self._worker_impl.publish_func(e)
                return


class OrderedThreadPool(ThreadPool):
    """petastorm's ThreadPool with a race-free end-of-epoch check, results in ventilation order
    and workers that block instead of polling (module doc)."""

    _get_results_worker_id: int
    _ventilator_queues: list[queue.Queue[Any]]
    _results_queues: list[queue.Queue[Any]]

    def start(self, worker_class: Any, worker_args: Any = None, ventilator: Any = None) -> None:
        """As ThreadPool.start, with _BlockingWorkerThread workers."""
        if self._stop_event.is_set():
            raise RuntimeError("OrderedThreadPool cannot be reused after stop()")
        self._ventilator_queues = [queue.Queue() for _ in range(self.workers_count)]
        size = max(5, self._results_queue_size // self.workers_count)
        self._results_queues = [queue.Queue(size) for _ in range(self.workers_count)]
        self._workers = []
        for worker_id in range(self.workers_count):
            worker = worker_class(worker_id, functools.partial(self._stop_aware_put, worker_id), worker_args)
            thread = _BlockingWorkerThread(
                worker, self._stop_event, self._ventilator_queues[worker_id], self._results_queues[worker_id]
            )
            thread.daemon = True
            self._workers.append(thread)
        for thread in self._workers:
            thread.start()
        if ventilator:
            self._ventilator = ventilator
            self._ventilator.start()

    def stop(self) -> None:
        super().stop()
        for q in self._ventilator_queues:
            q.put(None)  # wakes a worker blocked on its queue

    def _stop_aware_put(self, worker_id: int, data: Any) -> None:
        while True:
            try:
                self._results_queues[worker_id].put(data, timeout=_PUT_POLL_S)
                return
            except queue.Full:
                if self._stop_event.is_set():
                    raise WorkerTerminationRequested() from None

    def get_results(self) -> Any:
        """The next result in ventilation order: item k goes to worker k % n, and the current
        worker advances once per finished item. petastorm's version moves on from a worker with
        nothing outstanding, so an item ventilated to the next worker a moment earlier could be
        read first: the same seed gave another row-group order now and then."""
        while True:
            worker = self._get_results_worker_id
            ventilation_done = not self._ventilator or self._ventilator.completed()  # read before the counts
            if self._ventilated_items_by_worker[worker] == self._ventilated_items_processed_by_worker[worker]:
                if ventilation_done:  # the next item would go to this worker: there is none
                    raise EmptyResultError()
                time.sleep(_WAIT_VENTILATION_S)
                continue
            result = self._next_from_current_worker()
            if result is not None:
                return result

    def _next_from_current_worker(self) -> Any:
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
    footers: Mapping[str, pq.FileMetaData] | None = None,
    convert: Callable[[pa.Table, str], Any] | None = None,
) -> tuple[Reader, list[list[RowGroup]]]:
    """A petastorm Reader over `files` for one shard, and the row groups of every rank's shard
    (from `footers`, path -> Parquet footer, where given).

    The reader yields each row group as a Table naming its source in the schema metadata
    (SOURCE_KEY), or as `convert(table, source)`, run on the worker thread that decoded it: the
    loaders build their numpy views there, beside the decoding, instead of on the thread that
    collates (whose time is the epoch's); a conversion error reaches the reader's caller as is.

    `seed` must be non-zero: petastorm treats 0 like None (an unseeded, irreproducible order)."""
    if seed == 0:
        raise ValueError("petastorm seed must be non-zero (0 means unseeded in petastorm 0.13.1)")
    filesystem: Any
    if files and all(is_remote(f) for f in files):
        filesystem = _remote_filesystem()
        footers = {arrow_path(k): v for k, v in (footers or {}).items()}
        paths: Any = [arrow_path(f) for f in files]
    else:
        urls = normalize_dataset_url_or_urls([f if "://" in f else f"file://{f}" for f in files])
        filesystem, paths = get_filesystem_and_path_or_paths(urls)
    reader_pool = (
        OrderedThreadPool(workers, results_queue_size=max(4, 2 * workers))
        if pool == "thread"
        else DummyPool()
    )
    sharded = world_size > 1
    reader = Reader(
        filesystem,
        paths,
        schema_fields=list(columns),
        worker_class=ArrowRowGroupWorker if convert is None else _converting_worker(convert),
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
    return reader, row_groups_by_rank(reader, world_size, footers)


def row_groups_by_rank(
    reader: Reader, world_size: int, known: Mapping[str, pq.FileMetaData] | None = None
) -> list[list[RowGroup]]:
    """The row groups petastorm assigns to each rank (its rule: row-group index % world_size over
    `dataset_metadata.load_row_groups`' order), reading each footer not `known` once."""
    dataset = reader.dataset
    footers = dict(known or {})

    def footer(path: str) -> pq.FileMetaData:
        if path not in footers:
            footers[path] = pq.ParquetFile(dataset.fs.open(path)).metadata
        return footers[path]

    if dataset.metadata or dataset.common_metadata:  # petastorm reads row groups from summary files
        pieces = [(p.path, p.row_group) for p in dataset_metadata.load_row_groups(dataset)]
    else:  # its order without them (a Delta file list): each file's row groups, files in dataset order
        pieces = [(p.path, i) for p in dataset.pieces for i in range(footer(p.path).num_row_groups)]
    shards: list[list[RowGroup]] = [[] for _ in range(world_size)]
    for index, (path, row_group) in enumerate(pieces):
        shards[index % world_size].append(
            RowGroup(path, row_group, footer(path).row_group(row_group).num_rows)
        )
    return shards
