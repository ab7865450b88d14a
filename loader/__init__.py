"""Petastorm-based PyTorch loader for `request_samples` (see loader/request_loader.py)."""

from __future__ import annotations

from .batch import PackedHistory, RequestBatch
from .errors import DataFileError, IncompleteEpochError, LoaderError, SchemaMismatchError
from .label_rates import label_rates
from .lengths import LengthSampling
from .request_loader import LoaderConfig, RequestLoader
from .snapshot import Snapshot, SnapshotError, resolve_snapshot

__all__ = [
    "DataFileError",
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
    "label_rates",
    "resolve_snapshot",
]
