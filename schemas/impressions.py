"""`impressions`: one row per item shown in a request (an input table)."""

from __future__ import annotations

from .contract import INT, LONG, STRING, Column, TableContract
from .fields import DATE, TASKS

IMPRESSIONS = TableContract(
    name="impressions",
    version=1,
    doc="One row per item shown in a feed request; labels are the user's feedback on it.",
    columns=(
        Column("request_id", STRING, nullable=True),
        Column("user_id", LONG, nullable=True),
        Column("item_id", LONG, nullable=True),
        Column("author_id", LONG, nullable=True),
        Column("request_ts", LONG, nullable=True, doc="ms since epoch, UTC"),
        Column("position", INT, nullable=True, doc="slot in the feed, 0 first"),
        Column("duration_ms", INT, nullable=True),
        Column("watch_ms", INT, nullable=True),
        *(Column(t, INT, nullable=True, doc="0/1 label") for t in TASKS),
        DATE,
    ),
    partition_by=("date",),
    keys=("request_id", "item_id"),
)
