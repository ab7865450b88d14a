"""Resolving a Delta snapshot outside Spark: the data files of one pinned version, from the log.

A Delta folder also holds files that are no longer part of the table (overwritten partitions not
yet vacuumed); listing the folder would read them. The file list therefore comes from the Delta
log at a fixed version, via delta-rs (no JVM)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError


class SnapshotError(FileNotFoundError):
    """The table or the requested version cannot be resolved."""


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


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else uri


def resolve_snapshot(
    table_path: str | Path,
    version: int | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
) -> Snapshot:
    """Files of `table_path` at `version` (default: latest), with date_from <= date <= date_to."""
    try:
        table = DeltaTable(str(table_path), version=version)
    except TableNotFoundError as e:
        raise SnapshotError(f"no Delta table at {table_path}: {e}") from e
    except Exception as e:  # delta-rs raises a generic error for a version that does not exist
        raise SnapshotError(f"cannot load {table_path} at version {version}: {e}") from e
    actions = table.get_add_actions(flatten=True)
    cols = {name: actions.column(name).to_pylist() for name in actions.column_names}
    part_cols = [c.removeprefix("partition.") for c in cols if c.startswith("partition.")]
    root = _local_path(table.table_uri).rstrip("/")
    files: list[DataFile] = []
    for i, rel in enumerate(cols["path"]):
        partition = {c: cols[f"partition.{c}"][i] for c in part_cols}
        date = partition.get("date")
        if date is not None and (
            (date_from is not None and date < date_from) or (date_to is not None and date > date_to)
        ):
            continue
        rel_path = unquote(rel)
        full = rel_path if "://" in rel_path or rel_path.startswith("/") else f"{root}/{rel_path}"
        num = cols.get("num_records", [None] * len(cols["path"]))[i]
        files.append(DataFile(full, int(cols["size_bytes"][i]), None if num is None else int(num), partition))
    files.sort(key=lambda f: (tuple(str(v) for v in f.partition.values()), f.path))
    return Snapshot(str(table_path), int(table.version()), tuple(files))
