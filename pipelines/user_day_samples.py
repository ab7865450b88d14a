"""request_samples rows of a day -> `user_day_samples` rows (schemas/user_day_samples.py), and back.

A day's request histories of one user are slices [s_j, e_j) of one event sequence (the user's
events through the day, sorted; docs/design.md §3): e_j counts the events before request_ts_j and
s_j = max(e_j - L_max, 0), both non-decreasing in request order. So request j adds to the window
exactly the events of its history with event_ts >= request_ts of request j-1 (a suffix of its
sorted history, k_j events), and the rest of its history is a suffix of request j-1's. The window
is the concatenation of those suffixes; request j's slice ends at k_1 + ... + k_j and starts
hist_len_j before that. When more than L_max events separate two requests, the events no request
reads are not stored (the window is the union of the day's histories, never larger).

That derivation holds for every table the build job writes; the pipeline does not trust it: each
user-day is rebuilt from its window and compared with its source rows, column by column, and a
user-day that differs is tagged with `INCONSISTENT_HISTORIES` (the job quarantines its requests)
instead of being written wrong. Higher-order functions on arrays only: no history is exploded."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from schemas import REQUEST_SAMPLES, USER_DAY_SAMPLES
from schemas.fields import HISTORY_COLUMNS
from schemas.user_day_samples import FLAT_TARGET_COLUMNS

from .checks import require_columns
from .validity import REJECT_REASON

INCONSISTENT_HISTORIES = "inconsistent_user_day_histories"
REQUESTS = "_requests"  # the user-day's request_samples rows, sorted by (request_ts, request_id)
HIST_ARRAYS: tuple[str, ...] = tuple(c.name for c in HISTORY_COLUMNS)
FLAT_ARRAYS: tuple[str, ...] = tuple(c.name for c in FLAT_TARGET_COLUMNS)
# Struct field order: array_sort orders the requests by the leading fields.
_REQUEST_FIELDS: tuple[str, ...] = (
    "request_ts",
    "request_id",
    *[c for c in REQUEST_SAMPLES.column_names if c not in ("request_ts", "request_id")],
)
_GROUP = ("user_id", "date")


def _field(name: str) -> Callable[[Column], Column]:
    # A closure, not a default argument: Spark counts a lambda's parameters to pick its form.
    return lambda r: r[name]


def _request(i: Column) -> Column:
    """The i-th (1-based) request struct of the row."""
    return F.element_at(REQUESTS, i)


def _indexes() -> Column:
    """1..num_requests (every user-day has at least one request)."""
    return F.sequence(F.lit(1), F.size(REQUESTS))


def _new_suffix(column: str) -> Callable[[Column], Column]:
    """i -> the last k_i elements of request i's `column` (k in the `_k` array column)."""

    def suffix(i: Column) -> Column:
        k = F.element_at("_k", i)
        return F.slice(_request(i)[column], _request(i)["hist_len"] - k + 1, k)

    return suffix


def _prefix_sums(values: Column, inclusive: bool) -> Column:
    """[sum(values[1..i]) for i] (inclusive) or [sum(values[1..i-1]) for i] (exclusive), as ints.
    Quadratic in the number of requests, which is tens a day, never the history length."""
    shift = 0 if inclusive else 1
    return F.transform(
        F.sequence(F.lit(1), F.size(values)),
        lambda i: F.aggregate(F.slice(values, F.lit(1), i - shift), F.lit(0), lambda acc, x: acc + x),
    )


def with_user_day_window(samples: DataFrame) -> DataFrame:
    """request_samples rows (one or more dates) -> one row per (user_id, date): the
    user_day_samples columns, `reject_reason` (null, or INCONSISTENT_HISTORIES when the window
    does not rebuild every source row exactly) and `_requests` (the source rows, for quarantine)."""
    require_columns(samples, REQUEST_SAMPLES.column_names, "with_user_day_window")
    grouped = samples.groupBy(*_GROUP).agg(
        F.array_sort(F.collect_list(F.struct(*[F.col(c) for c in _REQUEST_FIELDS]))).alias(REQUESTS)
    )
    # k_j: events of request j at or after request j-1's request_ts, the new suffix of its history.
    new_events = F.transform(
        _indexes(),
        lambda i: F.when(i == 1, _request(i)["hist_len"]).otherwise(
            F.size(F.filter(_request(i)["hist_ts"], lambda t: t >= _request(i - 1)["request_ts"]))
        ),
    )
    with_k = grouped.withColumn("_k", new_events)
    window = {c: F.flatten(F.transform(_indexes(), _new_suffix(c))) for c in HIST_ARRAYS}
    per_request = with_k.select(
        *_GROUP,
        REQUESTS,
        *[window[c].alias(c) for c in HIST_ARRAYS],
        _prefix_sums(F.col("_k"), inclusive=True).alias("hist_end"),
    ).withColumn(
        "hist_start",
        F.transform(_indexes(), lambda i: F.element_at("hist_end", i) - _request(i)["hist_len"]),
    )
    return per_request.select(
        *_GROUP,
        F.size("hist_ts").cast("int").alias("window_len"),
        *HIST_ARRAYS,
        F.size(REQUESTS).cast("int").alias("num_requests"),
        F.transform(REQUESTS, _field("request_id")).alias("request_id"),
        F.transform(REQUESTS, _field("request_ts")).alias("request_ts"),
        F.col("hist_start").cast("array<int>").alias("hist_start"),
        F.col("hist_end").cast("array<int>").alias("hist_end"),
        F.transform(REQUESTS, _field("num_targets")).alias("num_targets"),
        F.aggregate(REQUESTS, F.lit(0), lambda acc, r: acc + r["num_targets"])
        .cast("int")
        .alias("total_targets"),
        *[F.flatten(F.transform(REQUESTS, _field(c))).alias(c) for c in FLAT_ARRAYS],
        F.when(_rebuilds_every_request(), F.lit(None).cast("string"))
        .otherwise(F.lit(INCONSISTENT_HISTORIES))
        .alias(REJECT_REASON),
        REQUESTS,
    )


def _rebuilds_every_request() -> Column:
    """True when every request's [hist_start, hist_end) slice of the window equals its source
    history in every hist_* column, and starts are >= 0 and non-decreasing (over the columns of
    the frame built in with_user_day_window, before its final select)."""

    def same(i: Column) -> Column:
        start, length = F.element_at("hist_start", i), _request(i)["hist_len"]
        slices = [F.slice(c, F.greatest(start, F.lit(0)) + 1, length) == _request(i)[c] for c in HIST_ARRAYS]
        ordered = (i == 1) | (start >= F.element_at("hist_start", F.greatest(i - 1, F.lit(1))))
        out = (start >= 0) & ordered & (length <= F.size("hist_ts") - start)
        for s in slices:
            out = out & s
        return out

    return F.coalesce(F.forall(_indexes(), same), F.lit(False))


def user_day_rows(tagged: DataFrame) -> DataFrame:
    """The valid rows of with_user_day_window's output, as user_day_samples columns."""
    require_columns(tagged, [REJECT_REASON, *USER_DAY_SAMPLES.column_names], "user_day_rows")
    return tagged.where(F.col(REJECT_REASON).isNull()).select(*USER_DAY_SAMPLES.column_names)


def rejected_requests(tagged: DataFrame) -> DataFrame:
    """The source request_samples rows of every rejected user-day, with `reject_reason`, ready for
    pipelines.validity.to_quarantine. Explodes requests of rejected user-days only (none when the
    source is a table build_request_samples wrote)."""
    require_columns(tagged, [REJECT_REASON, REQUESTS], "rejected_requests")
    rows = tagged.where(F.col(REJECT_REASON).isNotNull()).select(
        REJECT_REASON, F.explode(REQUESTS).alias("_r")
    )
    return rows.select(*[F.col("_r")[c].alias(c) for c in REQUEST_SAMPLES.column_names], REJECT_REASON)


def to_request_samples(user_days: DataFrame) -> DataFrame:
    """user_day_samples rows -> the request_samples rows they imply (one per request; columns and
    types of REQUEST_SAMPLES): request j's history is window[hist_start_j : hist_end_j] and its
    targets the j-th run of num_targets_j flat values. One row per request is exploded; the
    histories are sliced, not exploded. The inverse of with_user_day_window for the tests and
    the gate's conservation check."""
    require_columns(user_days, USER_DAY_SAMPLES.column_names, "to_request_samples")
    with_offsets = user_days.withColumn("_tgt_offset", _prefix_sums(F.col("num_targets"), inclusive=False))
    per_request = F.arrays_zip(
        F.col("request_id").alias("request_id"),
        F.col("request_ts").alias("request_ts"),
        F.col("hist_start").alias("hist_start"),
        F.col("hist_end").alias("hist_end"),
        F.col("num_targets").alias("num_targets"),
        F.col("_tgt_offset").alias("tgt_offset"),
    )
    exploded = with_offsets.select("*", F.explode(per_request).alias("_q"))
    q = F.col("_q")
    length = q["hist_end"] - q["hist_start"]
    columns: dict[str, Column] = {
        "request_id": q["request_id"],
        "user_id": F.col("user_id"),
        "request_ts": q["request_ts"],
        "date": F.col("date"),
        "hist_len": length.cast("int"),
        **{c: F.slice(c, q["hist_start"] + 1, length) for c in HIST_ARRAYS},
        "num_targets": q["num_targets"],
        **{c: F.slice(c, q["tgt_offset"] + 1, q["num_targets"]) for c in FLAT_ARRAYS},
    }
    return exploded.select(*[columns[c].alias(c) for c in REQUEST_SAMPLES.column_names])
