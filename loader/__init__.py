"""Petastorm-based PyTorch loader for `request_samples` (see loader/request_loader.py), and its
compact VISTA variant (loader/compact.py). Users, the trainer and the benchmarks import from here
only; the modules behind it are free to move."""

from __future__ import annotations

from .batch import HISTORY_FIELDS, TARGET_FIELDS, PackedHistory, RequestBatch
from .collate import LOADER_COLUMNS
from .compact import COMPACT_LOADER_COLUMNS, CompactBatch, CompactLoader, CompactLoaderConfig
from .delta_read import DeletionVectorError, read_delta
from .epochs import EpochLoader, batch_sizes
from .errors import DataFileError, IncompleteEpochError, LoaderError, SchemaMismatchError
from .grouped_batch import GroupedBatch, GroupedBatchError
from .label_rates import label_rates
from .lengths import LengthSampling
from .pins import DEFAULT_PIN_DAYS, active_pins, register_pin
from .request_loader import LoaderConfig, RequestLoader
from .snapshot import DataFile, DateBound, Snapshot, SnapshotError, nonempty_snapshot, resolve_snapshot
from .storage import bytes_of, column_bytes
from .user_day_loader import (
    USER_DAY_LOADER_COLUMNS,
    UserDayLoader,
    UserDayLoaderConfig,
    UserDayOffsetsError,
)

__all__ = [
    "COMPACT_LOADER_COLUMNS",
    "DEFAULT_PIN_DAYS",
    "HISTORY_FIELDS",
    "LOADER_COLUMNS",
    "TARGET_FIELDS",
    "USER_DAY_LOADER_COLUMNS",
    "CompactBatch",
    "CompactLoader",
    "CompactLoaderConfig",
    "DataFile",
    "DataFileError",
    "DateBound",
    "DeletionVectorError",
    "EpochLoader",
    "GroupedBatch",
    "GroupedBatchError",
    "IncompleteEpochError",
    "LengthSampling",
    "LoaderConfig",
    "LoaderError",
    "PackedHistory",
    "RequestBatch",
    "RequestLoader",
    "SchemaMismatchError",
    "Snapshot",
    "SnapshotError",
    "UserDayLoader",
    "UserDayLoaderConfig",
    "UserDayOffsetsError",
    "active_pins",
    "batch_sizes",
    "bytes_of",
    "column_bytes",
    "label_rates",
    "nonempty_snapshot",
    "read_delta",
    "register_pin",
    "resolve_snapshot",
]
