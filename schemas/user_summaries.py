"""`user_summaries` (VISTA): k quantized summary tokens per user as of a refresh time."""

from __future__ import annotations

from .contract import BINARY, FLOAT, INT, LONG, STRING, Column, TableContract, array_of
from .fields import DATE

USER_SUMMARIES = TableContract(
    name="user_summaries",
    version=1,
    columns=(
        Column("user_id", LONG),
        Column("as_of_ts", LONG, doc="summary covers events strictly before this time (ms, UTC)"),
        Column("model_version", STRING),
        Column("num_tokens", INT, doc="k"),
        Column("dim", INT, doc="d"),
        Column("summary", BINARY, doc="k x d int8 values, row-major"),
        Column("scale", array_of(FLOAT), doc="per-token dequantization scale, length k"),
        DATE,
    ),
    partition_by=("date",),
    keys=("user_id", "as_of_ts", "model_version"),
)
