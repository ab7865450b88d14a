"""The loader's errors: each names the file or field at fault and what to do."""

from __future__ import annotations


class LoaderError(RuntimeError):
    """Reading request batches failed; iteration has stopped and workers are joined."""


class DataFileError(LoaderError):
    """A data file of the snapshot is missing, unreadable or corrupt."""


class SchemaMismatchError(LoaderError):
    """A data file's columns do not match the table contract."""


class IncompleteEpochError(LoaderError):
    """The reader ended before every row of this rank's shard was read."""
