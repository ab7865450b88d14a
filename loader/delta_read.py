"""Reading a Delta table into Arrow without Spark, with the pinned pyarrow 14 / deltalake 1.x.

`deltalake.DeltaTable(p).to_pyarrow_table()` does not work with these pins: its schema
conversion calls a pyarrow >= 15 API (`TypeError: field() takes at least 2 positional
arguments`), and it refuses tables with deletion vectors (`DeltaProtocolError`). `read_delta`
takes the snapshot's file list from the Delta log (loader/snapshot.py, as the loader does),
reads the files with pyarrow and adds the partition columns (as strings: every partition column
of the contracts is one). A file with a deletion vector still holds its deleted rows, and the
file list from delta-rs does not say which files have one, so the log is replayed here to find
them and such a table is refused: `python -m jobs.maintain_tables --optimize` purges them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from storage.object_store import filesystem_for, read_parquet

from .errors import LoaderError
from .snapshot import DateBound, Snapshot, resolve_snapshot


class DeletionVectorError(LoaderError):
    """The snapshot has files with deletion vectors: reading them as Parquet would return
    deleted rows."""


def _log_files(names: list[str], version: int) -> tuple[str | None, list[str]]:
    """Of the `_delta_log` entry names, the newest classic checkpoint at or before `version`
    (single- or multi-part, as a name prefix) and the JSON commits after it up to `version`."""
    versions = (int(n.split(".")[0]) for n in names if ".checkpoint" in n and n.endswith(".parquet"))
    checkpoints = sorted(v for v in versions if v <= version)
    start = checkpoints[-1] if checkpoints else -1
    commits = [f"{v:020d}.json" for v in range(start + 1, version + 1)]
    return (f"{start:020d}" if checkpoints else None), commits


def files_with_deletion_vectors(snapshot: Snapshot) -> list[str]:
    """Relative paths of the snapshot's files whose add action carries a deletion vector, from
    the Delta log on local disk or an object store (storage/object_store.py)."""
    fs, root = filesystem_for(snapshot.table_path)
    log = f"{root.rstrip('/')}/_delta_log"
    entries = fs.get_file_info(pafs.FileSelector(log, allow_not_found=True))
    if not entries:
        return []
    checkpoint, commits = _log_files([e.base_name for e in entries], snapshot.version)
    with_dv: dict[str, bool] = {}
    if checkpoint is not None:
        parts = sorted(e.path for e in entries if e.base_name.startswith(f"{checkpoint}.checkpoint"))
        for part in parts:
            table = pq.read_table(part, columns=["add"], filesystem=fs)
            for add in table.column("add").to_pylist():
                if add:
                    with_dv[unquote(add["path"])] = bool(add.get("deletionVector"))
    for commit in commits:
        with fs.open_input_stream(f"{log}/{commit}") as f:
            lines = bytes(f.read()).decode().splitlines()
        actions = [json.loads(line) for line in lines if line.strip()]
        # Within one commit an add wins over a remove of the same path (a DELETE removes a file
        # and adds it back with its deletion vector): removes first, then adds.
        for action in actions:
            if "remove" in action:
                with_dv.pop(unquote(action["remove"]["path"]), None)
        for action in actions:
            if "add" in action:
                with_dv[unquote(action["add"]["path"])] = bool(action["add"].get("deletionVector"))
    return sorted(p for p, dv in with_dv.items() if dv)


def read_delta(
    table_path: str | Path,
    version: int | None = None,
    columns: Sequence[str] | None = None,
    date_from: DateBound = None,
    date_to: DateBound = None,
) -> pa.Table:
    """The rows of `table_path` at `version` (default: latest), dates date_from..date_to
    inclusive, as one Arrow table (partition columns last, as strings). Raises SnapshotError for
    a missing table or version, DeletionVectorError for a table with deletion vectors."""
    snapshot = resolve_snapshot(table_path, version, date_from, date_to)
    with_dv = files_with_deletion_vectors(snapshot)
    if with_dv:
        raise DeletionVectorError(
            f"{table_path} version {snapshot.version} has {len(with_dv)} file(s) with deletion vectors "
            f"(e.g. {with_dv[0]}); reading them as Parquet would return deleted rows. Purge them first: "
            "python -m jobs.maintain_tables --warehouse <root> --optimize (REORG ... APPLY (PURGE)), "
            "then read the new version"
        )
    parts: list[pa.Table] = []
    for f in snapshot.data_files:
        partition = f.partition
        wanted = None if columns is None else [c for c in columns if c not in partition]
        table = read_parquet(f.path, columns=wanted)
        for name, value in partition.items():
            if columns is None or name in columns:
                table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
        parts.append(table)
    if not parts:
        raise LoaderError(f"{table_path} version {snapshot.version} has no data files for these dates")
    out = pa.concat_tables(parts, promote_options="default")
    return out if columns is None else out.select(list(columns))
