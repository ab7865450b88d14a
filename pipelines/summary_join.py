"""Point-in-time join of cached VISTA summaries onto requests (docs/design.md §2, §3).

request_samples rows + user_summaries rows -> request_samples_compact rows (grain: request):

* the summary: for each request, the user's summary of the given model_version with the latest
  as_of_ts strictly before request_ts (a summary covers events before its as_of_ts, so every
  summarized event precedes the request; a summary from the request's own refresh or later is
  never attached). None: null summary columns.
* the raw suffix: the request's history events the summary has not seen,
  as_of_ts <= event_ts < request_ts (all of its history when there is no summary), capped at the
  most recent `max_recent`, under the request_samples history column names; `source_hist_len`
  keeps the request_samples hist_len.
* request keys, targets and labels: the request_samples row's, unchanged.

The nearest earlier summary is found on (user_id, as_of_ts) alone, then the one chosen summary
per request is joined by key, so the k x d blobs are shuffled once per request, not once per
candidate refresh."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from schemas import REQUEST_SAMPLES, REQUEST_SAMPLES_COMPACT, USER_SUMMARIES
from schemas.fields import HISTORY_COLUMNS
from schemas.request_samples_compact import SUMMARY_RENAMES

from .checks import require_columns

_AS_OF = SUMMARY_RENAMES["as_of_ts"]  # summary_as_of_ts


def join_latest_summary(
    summaries: DataFrame, model_version: str, max_recent: int
) -> Callable[[DataFrame], DataFrame]:
    """request_samples rows -> request_samples_compact rows; see the module docstring.

    `summaries`: user_summaries rows (any dates; only `model_version`'s are used). Grain in and
    out: one row per request."""
    if max_recent < 0:
        raise ValueError(f"max_recent must be >= 0, got {max_recent}")
    if not model_version:
        raise ValueError("model_version must be a non-empty string")

    def transform(requests: DataFrame) -> DataFrame:
        require_columns(requests, REQUEST_SAMPLES.column_names, "join_latest_summary (requests)")
        require_columns(
            summaries,
            [c for c in USER_SUMMARIES.column_names if c != "date"],
            "join_latest_summary (summaries)",
        )
        mine = summaries.where(F.col("model_version") == model_version).select(
            "user_id", *[F.col(src).alias(dst) for src, dst in SUMMARY_RENAMES.items()]
        )
        keys = requests.select("request_id", "user_id", "request_ts")
        refreshes = mine.select("user_id", F.col(_AS_OF).alias("_as_of")).distinct()
        newest_first = Window.partitionBy("request_id").orderBy(F.col("_as_of").desc())
        chosen = (
            keys.join(refreshes, (keys.user_id == refreshes.user_id) & (refreshes._as_of < keys.request_ts))
            .select("request_id", keys.user_id, "_as_of")
            .withColumn("_rank", F.row_number().over(newest_first))
            .where(F.col("_rank") == 1)
            .select("request_id", "user_id", F.col("_as_of").alias(_AS_OF))
        )
        # (user_id, as_of_ts, model_version) is the contract's key: at most one summary matches.
        attached = chosen.join(mine, ["user_id", _AS_OF]).drop("user_id")
        joined = requests.join(attached, "request_id", "left")
        # hist_ts is ascending: the events before as_of_ts are a prefix of length `seen`.
        seen = F.when(F.col(_AS_OF).isNull(), F.lit(0)).otherwise(
            F.aggregate("hist_ts", F.lit(0), lambda acc, t: acc + F.when(t < F.col(_AS_OF), 1).otherwise(0))
        )
        start = F.greatest(seen, F.col("hist_len") - F.lit(max_recent))
        joined = joined.withColumn("_start", start)
        suffix = [
            F.slice(c.name, F.col("_start") + 1, F.col("hist_len") - F.col("_start")).alias(c.name)
            for c in HISTORY_COLUMNS
        ]
        out = joined.select(
            *[c for c in requests.columns if c not in {h.name for h in HISTORY_COLUMNS} | {"hist_len"}],
            *[F.col(dst) for dst in SUMMARY_RENAMES.values()],
            F.lit(model_version).alias("model_version"),
            F.col("hist_len").alias("source_hist_len"),
            (F.col("hist_len") - F.col("_start")).cast("int").alias("hist_len"),
            *suffix,
        )
        return out.select(*REQUEST_SAMPLES_COMPACT.column_names)

    return transform
