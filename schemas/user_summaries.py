"""`user_summaries` (VISTA): k quantized summary tokens per user as of a refresh time.

Written by jobs/summarize_users.py: one partition per refresh day `date`, one Delta commit per
refresh (userMetadata: date, as_of_ts, model_version, state version). A summary covers events
strictly before `as_of_ts` (the end of `date`, ms); the point-in-time join
(pipelines/summary_join.py) attaches it only to requests with request_ts > as_of_ts.

Version 2: v1 (int8 only, no `quantization` / `num_events`) was declared but never written by
any job, so it is replaced rather than kept beside v2."""

from __future__ import annotations

from .contract import BINARY, FLOAT, INT, LONG, STRING, Column, TableContract, array_of
from .fields import DATE

# Stored formats of `summary` and the numpy dtype of its row-major bytes (trainer/quantize.py).
QUANTIZATION_DTYPES: dict[str, str] = {"int8": "int8", "fp16": "float16"}

USER_SUMMARIES = TableContract(
    name="user_summaries",
    version=2,
    doc="VISTA summary tokens per user and refresh; see jobs/summarize_users.py.",
    columns=(
        Column("user_id", LONG),
        Column("as_of_ts", LONG, doc="the summary covers events strictly before this time (ms, UTC)"),
        Column("model_version", STRING, doc="the summarizer that wrote it; rankers read only their own"),
        Column(
            "quantization", STRING, doc=f"storage format of `summary`: one of {sorted(QUANTIZATION_DTYPES)}"
        ),
        Column("num_tokens", INT, doc="k"),
        Column("dim", INT, doc="d"),
        Column("summary", BINARY, doc="k x d values, row-major, in the `quantization` format"),
        Column("scale", array_of(FLOAT), doc="per-token dequantization scale, length k (1.0 for fp16)"),
        Column("num_events", INT, doc="history events the summarizer read (the most recent, <= l_max)"),
        DATE,
    ),
    partition_by=("date",),
    keys=("user_id", "as_of_ts", "model_version"),
    cluster_by=("user_id",),
)
