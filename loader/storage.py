"""Bytes on disk per column of a Delta snapshot, from the Parquet footers (no data read)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from storage.object_store import parquet_file

from .snapshot import Snapshot


def column_bytes(snapshot: Snapshot) -> dict[str, int]:
    """Compressed bytes per top-level column, summed over every row group of every file."""
    sizes: dict[str, int] = defaultdict(int)
    for path in snapshot.files:
        meta = parquet_file(path).metadata
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for c in range(group.num_columns):
                chunk = group.column(c)
                sizes[chunk.path_in_schema.split(".")[0]] += chunk.total_compressed_size
    return dict(sizes)


def bytes_of(sizes: dict[str, int], columns: Iterable[str]) -> int:
    return sum(sizes.get(c, 0) for c in columns)
