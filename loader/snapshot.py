"""Resolving a Delta snapshot outside Spark: the data files of one pinned version, from the log.

A Delta folder also holds files that are no longer part of the table (overwritten partitions not
yet vacuumed); listing the folder would read them. The file list therefore comes from the Delta
log at a fixed version, via delta-rs (no JVM)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from schemas.constants import iso_date
from storage.object_store import (
    ObjectStoreError,
    check_access,
    is_remote,
    local_path,
    storage_options_for,
    to_arrow_uri,
)

from .errors import LoaderError

DateBound = str | dt.date | None  # "YYYY-MM-DD" or a date; None: unbounded


class SnapshotError(LoaderError, FileNotFoundError):
    """The table or the requested version cannot be resolved (a LoaderError, so one `except`
    catches every loader failure; a FileNotFoundError, as a missing table is one)."""


@dataclass(frozen=True)
class DataFile:
    path: str  # absolute local path, or a URI for remote stores
    size_bytes: int
    num_records: int | None
    partition: dict[str, str | None]


@dataclass(frozen=True)
class Snapshot:
    """The data files of one table version, optionally limited to a range of dates."""

    table_path: str
    version: int
    data_files: tuple[DataFile, ...]

    @property
    def files(self) -> list[str]:
        return [f.path for f in self.data_files]

    @property
    def num_records(self) -> int | None:
        counts = [f.num_records for f in self.data_files]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)

    def between(self, date_from: DateBound = None, date_to: DateBound = None) -> Snapshot:
        """The files with date_from <= date <= date_to (files without a date partition stay): one
        resolved snapshot serves every date range of a run without reading the Delta log again."""
        lo, hi = date_range(date_from, date_to)
        if lo is None and hi is None:
            return self
        kept = tuple(f for f in self.data_files if _in_range(f.partition.get("date"), lo, hi))
        return replace(self, data_files=kept)


def _in_range(date: str | None, lo: str | None, hi: str | None) -> bool:
    return date is None or ((lo is None or date >= lo) and (hi is None or date <= hi))


def date_range(date_from: DateBound, date_to: DateBound) -> tuple[str | None, str | None]:
    """Both bounds as YYYY-MM-DD (or None), in order: a ValueError naming the argument otherwise."""
    lo, hi = iso_date(date_from, "date_from"), iso_date(date_to, "date_to")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"date_from {lo} is after date_to {hi}: the range selects no date")
    return lo, hi


def _open_table(table_path: str | Path, version: int | None = None) -> DeltaTable:
    """delta-rs's view of a local table or an `s3://` / `s3a://` one (keys from the AWS variables)."""
    uri = to_arrow_uri(str(table_path))
    return DeltaTable(uri, version=version, storage_options=storage_options_for(uri))


def _latest_hint(table_path: str | Path) -> str:
    try:
        latest = _open_table(table_path).version()
    except Exception:
        return "the table cannot be read at any version"
    return f"the latest version is {latest} (older versions can also be gone after a log cleanup)"


def resolve_snapshot(
    table_path: str | Path,
    version: int | None = None,
    date_from: DateBound = None,
    date_to: DateBound = None,
) -> Snapshot:
    """Files of `table_path` at `version` (default: latest), with date_from <= date <= date_to."""
    date_range(date_from, date_to)  # a bad bound fails before the table is read
    if version is not None and version < 0:
        raise ValueError(f"version must be >= 0, got {version}")
    local = local_path(str(table_path))
    if "://" not in local and Path(local).exists() and not (Path(local) / "_delta_log").is_dir():
        raise SnapshotError(
            f"no Delta table at {table_path}: it has no _delta_log folder; pass the table's own "
            "folder, e.g. warehouse/request_samples"
        )
    try:
        if is_remote(str(table_path)):  # one request: wrong keys or a dead endpoint fail in seconds
            check_access(str(table_path))
        table = _open_table(table_path, version)
    except ObjectStoreError as e:
        raise SnapshotError(str(e)) from None
    except TableNotFoundError as e:
        raise SnapshotError(f"no Delta table at {table_path}: {e}") from e
    except Exception as e:  # delta-rs raises a generic error for a version that does not exist
        raise SnapshotError(
            f"cannot load {table_path} at version {version}; {_latest_hint(table_path)} ({e})"
        ) from e
    actions = table.get_add_actions(flatten=True)
    cols = {name: actions.column(name).to_pylist() for name in actions.column_names}
    part_cols = [c.removeprefix("partition.") for c in cols if c.startswith("partition.")]
    root = local_path(table.table_uri).rstrip("/")
    files: list[DataFile] = []
    for i, rel in enumerate(cols["path"]):
        partition = {c: cols[f"partition.{c}"][i] for c in part_cols}
        rel_path = unquote(rel)
        full = rel_path if "://" in rel_path or rel_path.startswith("/") else f"{root}/{rel_path}"
        num = cols.get("num_records", [None] * len(cols["path"]))[i]
        records = None if num is None else int(num)
        files.append(DataFile(full, int(cols["size_bytes"][i]), records, partition))
    files.sort(key=lambda f: (tuple(str(v) for v in f.partition.values()), f.path))
    return Snapshot(str(table_path), int(table.version()), tuple(files)).between(date_from, date_to)


def nonempty_snapshot(
    source: str | Path | Snapshot,
    version: int | None,
    date_from: DateBound,
    date_to: DateBound,
    hint: str,
) -> Snapshot:
    """The snapshot to read: `source` narrowed to the dates when it is resolved already, else
    resolved; a LoaderError (ending with `hint`) when it selects no data file."""
    if isinstance(source, Snapshot):
        if version is not None and version != source.version:
            raise ValueError(
                f"the snapshot given is version {source.version} of {source.table_path}, not {version}"
            )
        snapshot = source.between(date_from, date_to)
    else:
        snapshot = resolve_snapshot(source, version, date_from, date_to)
    if not snapshot.data_files:
        lo, hi = date_range(date_from, date_to)
        raise LoaderError(
            f"{snapshot.table_path} version {snapshot.version} has no data files for dates "
            f"{lo or '-inf'} .. {hi or '+inf'}; {hint}"
        )
    return snapshot
