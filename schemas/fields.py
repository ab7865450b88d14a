"""Column groups shared by several tables: the event fields a history carries, the label tasks.

Every table that carries a history or labels builds its columns from these, so the groups are
spelled once."""

from __future__ import annotations

from .contract import INT, LONG, STRING, Column, DType, array_of

DATE = Column("date", STRING, doc="UTC day of the request or event, YYYY-MM-DD; the partition column")

# Label tasks, in the order of the label tensor's last axis.
TASKS: tuple[str, ...] = ("finish", "skip", "like", "comment", "share", "follow")

# Action bit flags of user_actions.action.
ACTION_BITS: dict[str, int] = {
    "play": 1,
    "finish": 2,
    "like": 4,
    "comment": 8,
    "share": 16,
    "follow": 32,
    "skip": 64,
}

# The per-event fields of a history: (history column suffix, source column in user_actions, type).
EVENT_FIELDS: tuple[tuple[str, str, DType], ...] = (
    ("item_id", "item_id", LONG),
    ("author_id", "author_id", LONG),
    ("action", "action", INT),
    ("ts", "event_ts", LONG),
    ("watch_ms", "watch_ms", INT),
    ("duration_ms", "duration_ms", INT),
)

HIST_PREFIX = "hist_"
# History array columns, oldest event first: hist_item_id, hist_author_id, ...
HISTORY_COLUMNS: tuple[Column, ...] = tuple(
    Column(f"{HIST_PREFIX}{suffix}", array_of(dtype), doc=f"{source} of each history event, oldest first")
    for suffix, source, dtype in EVENT_FIELDS
)
HIST_LEN = Column("hist_len", INT, doc="number of history events (length of every hist_* array)")

# Source column in user_actions of each history array column.
HISTORY_SOURCE: dict[str, str] = {f"{HIST_PREFIX}{suffix}": source for suffix, source, _ in EVENT_FIELDS}

LABEL_PREFIX = "label_"
LABEL_COLUMN_NAMES: tuple[str, ...] = tuple(f"{LABEL_PREFIX}{t}" for t in TASKS)
