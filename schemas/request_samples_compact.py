"""`request_samples_compact` (VISTA): one row per request with its user's cached summary instead
of the full history.

Built by jobs/build_compact_samples.py from `request_samples` and `user_summaries` with a
point-in-time join (pipelines/summary_join.py): the latest summary with as_of_ts < request_ts,
and, under the request_samples history names, only the raw events the summary has not seen
(as_of_ts <= event_ts < request_ts), capped at the most recent N. Requests of users without a
summary keep their most recent N events and null summary columns. Targets and labels are the
request_samples row's, unchanged.

Every column comes from the `request_samples` and `user_summaries` contracts (never a second
column list): the summary columns are user_summaries' with `as_of_ts` -> `summary_as_of_ts` and
`scale` -> `summary_scale`, nullable."""

from __future__ import annotations

import dataclasses

from .contract import Column, TableContract
from .request_samples import REQUEST_SAMPLES
from .user_summaries import USER_SUMMARIES

REQUEST_KEY_COLUMNS: tuple[str, ...] = ("request_id", "user_id", "request_ts", "date")
# user_summaries column -> its name here; all nullable (requests without a summary).
SUMMARY_RENAMES: dict[str, str] = {
    "as_of_ts": "summary_as_of_ts",
    "quantization": "quantization",
    "num_tokens": "num_tokens",
    "dim": "dim",
    "summary": "summary",
    "scale": "summary_scale",
}
SUMMARY_COLUMNS: tuple[Column, ...] = tuple(
    dataclasses.replace(USER_SUMMARIES.column(src), name=dst, nullable=True)
    for src, dst in SUMMARY_RENAMES.items()
)
SOURCE_HIST_LEN = dataclasses.replace(
    REQUEST_SAMPLES.column("hist_len"), name="source_hist_len", doc="hist_len of the request_samples row"
)

REQUEST_SAMPLES_COMPACT = TableContract(
    name="request_samples_compact",
    version=1,
    doc="request_samples with the history replaced by a cached VISTA summary + the raw events since it.",
    columns=(
        *(REQUEST_SAMPLES.column(n) for n in REQUEST_KEY_COLUMNS),
        USER_SUMMARIES.column("model_version"),
        *SUMMARY_COLUMNS,
        SOURCE_HIST_LEN,
        # hist_len, hist_*: the raw suffix; num_targets, tgt_*, label_*: unchanged.
        *(c for c in REQUEST_SAMPLES.columns if c.name not in REQUEST_KEY_COLUMNS),
    ),
    partition_by=("date",),
    keys=("request_id",),
    cluster_by=("user_id", "request_ts"),
)
