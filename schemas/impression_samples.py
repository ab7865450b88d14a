"""`impression_samples`: the classic flat layout (history copied into every impression row).

Built only to measure what request-level batching saves."""

from __future__ import annotations

from .contract import INT, LONG, STRING, Column, TableContract
from .fields import DATE, HIST_LEN, HISTORY_COLUMNS, LABEL_COLUMN_NAMES

IMPRESSION_SAMPLES = TableContract(
    name="impression_samples",
    version=1,
    columns=(
        Column("request_id", STRING),
        Column("user_id", LONG),
        Column("request_ts", LONG),
        DATE,
        HIST_LEN,
        *HISTORY_COLUMNS,
        Column("item_id", LONG),
        Column("author_id", LONG),
        Column("position", INT),
        Column("duration_ms", INT),
        *(Column(name, INT) for name in LABEL_COLUMN_NAMES),
    ),
    partition_by=("date",),
    keys=("request_id", "item_id"),
)
