"""`request_samples`: the product. One row per request: the history once, its m targets beside it."""

from __future__ import annotations

import dataclasses

from .contract import INT, LONG, STRING, Column, TableContract, array_of
from .fields import DATE, HIST_LEN, HISTORY_COLUMNS, LABEL_COLUMN_NAMES

# Target columns, ordered by position, with the impressions column each comes from.
TARGET_SOURCE: dict[str, str] = {
    "tgt_item_id": "item_id",
    "tgt_author_id": "author_id",
    "tgt_position": "position",
    "tgt_duration_ms": "duration_ms",
}
TARGET_COLUMNS: tuple[Column, ...] = (
    Column("tgt_item_id", array_of(LONG)),
    Column("tgt_author_id", array_of(LONG)),
    Column("tgt_position", array_of(INT)),
    Column("tgt_duration_ms", array_of(INT)),
)
NUM_TARGETS = Column("num_targets", INT, doc="m: number of targets (length of every tgt_*/label_* array)")
LABEL_ARRAY_COLUMNS: tuple[Column, ...] = tuple(
    Column(name, array_of(INT), doc="0/1 per target") for name in LABEL_COLUMN_NAMES
)

REQUEST_SAMPLES = TableContract(
    name="request_samples",
    version=1,
    doc="Request-level batching (RLB) samples; a user's requests are clustered together.",
    columns=(
        Column("request_id", STRING),
        Column("user_id", LONG),
        Column("request_ts", LONG),
        DATE,
        HIST_LEN,
        *HISTORY_COLUMNS,
        NUM_TARGETS,
        *TARGET_COLUMNS,
        *LABEL_ARRAY_COLUMNS,
    ),
    partition_by=("date",),
    keys=("request_id",),
    cluster_by=("user_id", "request_ts"),
)

# The daily build writes here; the quality gate (jobs/validate.py) validates a partition here and
# jobs/publish.py copies it into `request_samples` only if the gate passed for exactly that staging
# version. Same columns as REQUEST_SAMPLES by construction (never a second column list); training
# never reads this table.
REQUEST_SAMPLES_STAGING = dataclasses.replace(
    REQUEST_SAMPLES,
    name="request_samples_staging",
    doc=(
        "Unpublished request_samples partitions awaiting the quality gate "
        "(jobs/validate.py, jobs/publish.py)."
    ),
)
