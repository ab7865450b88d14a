"""Bytes on disk per column of a Delta snapshot, from the Parquet footers (no data read)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

import pyarrow.parquet as pq

from storage.object_store import parquet_file

from .snapshot import Snapshot


def column_chunks(snapshot: Snapshot) -> Iterator[tuple[str, pq.ColumnChunkMetaData]]:
    """(top-level column, chunk) for every column chunk of every row group of every file."""
    for path in snapshot.files:
        meta = parquet_file(path).metadata
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for c in range(group.num_columns):
                chunk = group.column(c)
                yield chunk.path_in_schema.split(".")[0], chunk


def column_bytes(snapshot: Snapshot) -> dict[str, int]:
    """Compressed bytes per top-level column, summed over every row group of every file."""
    sizes: dict[str, int] = defaultdict(int)
    for name, chunk in column_chunks(snapshot):
        sizes[name] += chunk.total_compressed_size
    return dict(sizes)


def column_encodings(snapshot: Snapshot, columns: Iterable[str]) -> dict[str, list[str]]:
    """The Parquet encodings each of `columns` uses anywhere in the snapshot (where bytes go)."""
    found: dict[str, set[str]] = {c: set() for c in columns}
    for name, chunk in column_chunks(snapshot):
        if name in found:
            found[name].update(chunk.encodings)
    return {c: sorted(e) for c, e in found.items()}


def bytes_of(sizes: dict[str, int], columns: Iterable[str]) -> int:
    return sum(sizes.get(c, 0) for c in columns)
