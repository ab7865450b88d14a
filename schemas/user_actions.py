"""`user_actions`: one row per history event (an input table)."""

from __future__ import annotations

from .contract import INT, LONG, Column, TableContract
from .fields import DATE

USER_ACTIONS = TableContract(
    name="user_actions",
    version=1,
    doc="One row per user event; `action` holds the bit flags of schemas.fields.ACTION_BITS.",
    columns=(
        Column("user_id", LONG, nullable=True),
        Column("item_id", LONG, nullable=True),
        Column("author_id", LONG, nullable=True),
        Column("event_ts", LONG, nullable=True, doc="ms since epoch, UTC"),
        Column(
            "action",
            INT,
            nullable=True,
            doc="bit flags: 1 play, 2 finish, 4 like, 8 comment, 16 share, 32 follow, 64 skip",
        ),
        Column("watch_ms", INT, nullable=True),
        Column("duration_ms", INT, nullable=True),
        DATE,
    ),
    partition_by=("date",),
    keys=("user_id", "item_id", "event_ts", "action"),
)
