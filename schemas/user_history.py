"""`user_history`: per user, the last N events as of the end of `as_of_date` (derived state).

One row per user, updated in place by a daily Delta MERGE; a day's state is a Delta version
(recorded in the commit's userMetadata), so an older day is read by time travel rather than
by keeping a full copy per day. Not partitioned by date for that reason."""

from __future__ import annotations

from .contract import LONG, STRING, Column, TableContract
from .fields import HIST_LEN, HISTORY_COLUMNS

USER_HISTORY = TableContract(
    name="user_history",
    version=1,
    columns=(
        Column("user_id", LONG),
        Column("as_of_date", STRING, doc="last UTC day whose events are merged in"),
        HIST_LEN,
        *HISTORY_COLUMNS,
    ),
    partition_by=(),
    keys=("user_id",),
)
