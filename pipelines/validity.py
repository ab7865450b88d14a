"""Validity rules of docs/design.md §3: tag each input row with the first rule it breaks.

Rows are never dropped here: `with_*_reject_reason` adds a `reject_reason` column (null when the
row is valid), the job splits on it, and `to_quarantine` renders the rejected rows for the
`quarantine` table. Every rule has a stable reason string, so counts can be compared per reason.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from schemas import IMPRESSIONS, QUARANTINE, USER_ACTIONS
from schemas.fields import TASKS

from .checks import require_columns

REJECT_REASON = "reject_reason"

# Reasons, in the order rules are checked: a row is tagged with the first one it breaks.
# Row-level rules first (nulls the samples cannot carry, bad dates, bad labels), then request
# consistency, then duplicates among the rows still valid.
IMPRESSION_REQUIRED = (
    "request_id",
    "user_id",
    "item_id",
    "request_ts",
    "author_id",
    "position",
    "duration_ms",
)
ACTION_REQUIRED = ("user_id", "item_id", "event_ts", "author_id", "action", "watch_ms", "duration_ms")
OUTSIDE_DATE = "ts_outside_date"
LABEL_NOT_BINARY = "label_not_binary"
INCONSISTENT_REQUEST = "inconsistent_request"
DUPLICATE = "duplicate"


def null_reason(column: str) -> str:
    return f"null_{column}"


def utc_date(ts_ms: Column) -> Column:
    """The UTC day (YYYY-MM-DD) of a millisecond timestamp; the session time zone is UTC."""
    return F.date_format(F.timestamp_millis(ts_ms), "yyyy-MM-dd")


def first_failing(rules: list[tuple[Column, str]]) -> Column:
    """The reason of the first rule whose condition holds, in list order; null when none does."""
    expr: Column = F.lit(None).cast("string")
    for failed, reason in reversed(rules):
        expr = F.when(failed, F.lit(reason)).otherwise(expr)
    return expr


def with_impression_reject_reason(df: DataFrame) -> DataFrame:
    """Adds `reject_reason` to impressions (grain: one row per impression, unchanged).

    A request's canonical (user_id, request_ts) is the one most of its rows carry (ties: the
    one of the lowest position); rows that differ are `inconsistent_request`. Of repeated
    (request_id, item_id) the lowest position is kept, the rest are `duplicate`."""
    require_columns(df, IMPRESSIONS.column_names, "with_impression_reject_reason")
    row_rules = [(F.col(c).isNull(), null_reason(c)) for c in IMPRESSION_REQUIRED]
    row_rules.append((utc_date(F.col("request_ts")) != F.col("date"), OUTSIDE_DATE))
    row_rules.append((_any_label_bad(), LABEL_NOT_BINARY))
    tagged = df.withColumn(REJECT_REASON, first_failing(row_rules))

    # Canonical (user_id, request_ts) per request among row-valid rows.
    ok = F.col(REJECT_REASON).isNull()
    per_key = Window.partitionBy("request_id", "user_id", "request_ts")
    by_request = Window.partitionBy("request_id").orderBy(
        F.col("_key_rows").desc(), F.col("_key_min_pos").asc(), F.col("user_id"), F.col("request_ts")
    )
    tagged = (
        tagged.withColumn("_key_rows", F.sum(ok.cast("int")).over(per_key))
        .withColumn("_key_min_pos", F.min(F.when(ok, F.col("position"))).over(per_key))
        .withColumn("_canon", F.first(F.when(ok, F.struct("user_id", "request_ts")), ignorenulls=True).over(
            by_request.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        ))
        .withColumn(
            REJECT_REASON,
            F.when(
                ok
                & (
                    (F.col("_canon.user_id") != F.col("user_id"))
                    | (F.col("_canon.request_ts") != F.col("request_ts"))
                ),
                F.lit(INCONSISTENT_REQUEST),
            ).otherwise(F.col(REJECT_REASON)),
        )
        .drop("_key_rows", "_key_min_pos", "_canon")
    )
    # Duplicates among the rows still valid: keep the lowest position (then a total order).
    ok = F.col(REJECT_REASON).isNull()
    dup_window = Window.partitionBy("request_id", "item_id", ok).orderBy(
        *_total_order(IMPRESSIONS.column_names, first="position")
    )
    return tagged.withColumn(
        REJECT_REASON,
        F.when(ok & (F.row_number().over(dup_window) > 1), F.lit(DUPLICATE)).otherwise(F.col(REJECT_REASON)),
    )


def _any_label_bad() -> Column:
    bad: Column = F.lit(False)
    for t in TASKS:
        bad = bad | F.col(t).isNull() | ~F.col(t).isin(0, 1)
    return bad


def with_action_reject_reason(df: DataFrame) -> DataFrame:
    """Adds `reject_reason` to user_actions (grain: one row per action, unchanged).

    An exact repeat of (user_id, item_id, event_ts, action) is a `duplicate`; one copy is kept."""
    require_columns(df, USER_ACTIONS.column_names, "with_action_reject_reason")
    rules = [(F.col(c).isNull(), null_reason(c)) for c in ACTION_REQUIRED]
    rules.append((utc_date(F.col("event_ts")) != F.col("date"), OUTSIDE_DATE))
    tagged = df.withColumn(REJECT_REASON, first_failing(rules))
    ok = F.col(REJECT_REASON).isNull()
    dup_window = Window.partitionBy(*USER_ACTIONS.keys, ok).orderBy(*_total_order(USER_ACTIONS.column_names))
    return tagged.withColumn(
        REJECT_REASON,
        F.when(ok & (F.row_number().over(dup_window) > 1), F.lit(DUPLICATE)).otherwise(F.col(REJECT_REASON)),
    )


def _total_order(columns: list[str], first: str | None = None) -> list[Column]:
    """A deterministic order over all columns, so which duplicate is kept never depends on layout."""
    ordered = ([first] if first else []) + [c for c in columns if c != first]
    return [F.col(c).asc_nulls_last() for c in ordered]


def valid_rows(df: DataFrame) -> DataFrame:
    """The rows without a reject reason, without the reason column."""
    require_columns(df, [REJECT_REASON], "valid_rows")
    return df.where(F.col(REJECT_REASON).isNull()).drop(REJECT_REASON)


def to_quarantine(source_table: str) -> Callable[[DataFrame], DataFrame]:
    """Renders rejected rows as `quarantine` rows (source_table, reason, row as JSON, date)."""

    def transform(df: DataFrame) -> DataFrame:
        require_columns(df, [REJECT_REASON, "date"], "to_quarantine")
        row_cols = [c for c in df.columns if c != REJECT_REASON]
        return (
            df.where(F.col(REJECT_REASON).isNotNull())
            .select(
                F.lit(source_table).alias("source_table"),
                F.col(REJECT_REASON).alias("reason"),
                F.to_json(F.struct(*row_cols), {"ignoreNullFields": "false"}).alias("row_json"),
                F.col("date"),
            )
            .select(*QUARANTINE.column_names)
        )

    return transform
