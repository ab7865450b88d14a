"""Columns and one-row frames the quality gate's GX suites test (schemas/quality.py).

GX checks columns, not array elements, so `with_row_checks` turns each per-row array rule into a
boolean column; conservation and drift are aggregates, reduced here to one-row frames. All lazy:
jobs/validate.py runs them through GX.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.checks import require_columns
from schemas.fields import HISTORY_COLUMNS, LABEL_COLUMN_NAMES, TASKS
from schemas.quality import (
    ACCOUNTED,
    DISTINCT_REQUESTS_WRITTEN,
    IMPRESSIONS_QUARANTINED,
    IMPRESSIONS_READ,
    LABEL_RATE_DELTAS,
    MAX_SLICE_LEN,
    MEAN_HIST_LEN_RATIO,
    REQUESTS_PUBLISHED,
    REQUESTS_WRITTEN,
    ROW_CHECKS,
    ROW_COUNT_RATIO,
    TARGETS_PUBLISHED,
    TARGETS_WRITTEN,
    USER_DAY_ROW_CHECKS,
    USER_DAY_TARGETS_WRITTEN,
)
from schemas.request_samples import REQUEST_SAMPLES, TARGET_COLUMNS
from schemas.user_day_samples import PER_REQUEST_COLUMNS, USER_DAY_SAMPLES

HIST_ARRAYS: tuple[str, ...] = tuple(c.name for c in HISTORY_COLUMNS)
TARGET_ARRAYS: tuple[str, ...] = (*(c.name for c in TARGET_COLUMNS), *LABEL_COLUMN_NAMES)

# Columns of a partition profile (`profile`), the drift frame's inputs.
ROWS = "rows"
TARGETS = "targets"
MEAN_HIST_LEN = "mean_hist_len"
LABEL_RATES: tuple[str, ...] = tuple(f"label_rate_{t}" for t in TASKS)


def _all(conditions: list[Column]) -> Column:
    out = conditions[0]
    for c in conditions[1:]:
        out = out & c
    # A null (null array, null element) fails the rule rather than escaping it.
    return F.coalesce(out, F.lit(False))


def with_row_checks(df: DataFrame) -> DataFrame:
    """Adds one non-null boolean column per rule of schemas/quality.ROW_CHECKS.

    Input: request_samples rows (the contract's columns). Output: the same rows, the `qc_*`
    columns appended in ROW_CHECKS order. Grain unchanged. No explode: each rule is a
    higher-order function over the row's arrays."""
    require_columns(df, REQUEST_SAMPLES.column_names, "with_row_checks")
    checks: dict[str, Column] = {
        "qc_hist_lengths_match": _all([F.size(c) == F.col("hist_len") for c in HIST_ARRAYS]),
        "qc_target_lengths_match": _all([F.size(c) == F.col("num_targets") for c in TARGET_ARRAYS]),
        "qc_no_null_elements": _all(
            [F.forall(c, lambda x: x.isNotNull()) for c in (*HIST_ARRAYS, *TARGET_ARRAYS)]
        ),
        # Each element >= its predecessor; vacuously true for 0 or 1 events.
        "qc_hist_ts_sorted": _all(
            [
                F.forall(
                    F.sequence(F.lit(1), F.greatest(F.size("hist_ts") - 1, F.lit(1))),
                    lambda i: (
                        (F.size("hist_ts") < 2)
                        | (F.element_at("hist_ts", i) <= F.element_at("hist_ts", i + 1))
                    ),
                )
            ]
        ),
        "qc_hist_before_request": _all([F.forall("hist_ts", lambda t: t < F.col("request_ts"))]),
        "qc_labels_binary": _all([F.forall(c, lambda x: x.isin(0, 1)) for c in LABEL_COLUMN_NAMES]),
    }
    missing = set(ROW_CHECKS) ^ set(checks)
    if missing:  # schemas/quality.py and this function must name the same rules
        raise KeyError(f"row checks out of sync with schemas/quality.ROW_CHECKS: {sorted(missing)}")
    return df.select("*", *[checks[name].alias(name) for name in ROW_CHECKS])


def _non_decreasing(array: str) -> Column:
    """Each element >= its predecessor; vacuously true for 0 or 1 elements."""
    return F.forall(
        F.sequence(F.lit(1), F.greatest(F.size(array) - 1, F.lit(1))),
        lambda i: (F.size(array) < 2) | (F.element_at(array, i) <= F.element_at(array, i + 1)),
    )


def _at(array: str, i: Column | int) -> Column:
    """array[i] (1-based; negative from the end), null when out of bounds: a malformed row must
    fail its rule, not the Spark job (ANSI element_at raises)."""
    return F.try_element_at(F.col(array), i if isinstance(i, Column) else F.lit(i))


def _per_request(rule: Callable[[Column], Column]) -> Column:
    """rule(i) holds for every request i (1-based) of the row."""
    return F.forall(F.sequence(F.lit(1), F.greatest(F.col("num_requests"), F.lit(1))), rule)


def with_user_day_row_checks(df: DataFrame) -> DataFrame:
    """Adds one non-null boolean column per rule of schemas/quality.USER_DAY_ROW_CHECKS, then
    MAX_SLICE_LEN (the longest hist_end - hist_start of the row, for the l_max rule).

    Input: user_day_samples rows. Output: the same rows (grain: user-day), the columns appended.
    No explode: each rule is a higher-order function over the row's arrays."""
    require_columns(df, USER_DAY_SAMPLES.column_names, "with_user_day_row_checks")
    per_request = [c.name for c in PER_REQUEST_COLUMNS]
    start, end = (lambda i: _at("hist_start", i)), (lambda i: _at("hist_end", i))
    checks: dict[str, Column] = {
        "qc_window_lengths_match": _all([F.size(c) == F.col("window_len") for c in HIST_ARRAYS]),
        "qc_request_lengths_match": _all(
            [F.col("num_requests") >= 1, *[F.size(c) == F.col("num_requests") for c in per_request]]
        ),
        "qc_target_lengths_match": _all(
            [
                F.aggregate("num_targets", F.lit(0), lambda acc, m: acc + m) == F.col("total_targets"),
                *[F.size(c) == F.col("total_targets") for c in TARGET_ARRAYS],
            ]
        ),
        "qc_no_null_elements": _all(
            [F.forall(c, lambda x: x.isNotNull()) for c in (*HIST_ARRAYS, *per_request, *TARGET_ARRAYS)]
        ),
        "qc_window_ts_sorted": _all([_non_decreasing("hist_ts")]),
        "qc_requests_sorted": _all([_non_decreasing("request_ts")]),
        "qc_offsets_in_window": _all(
            [_per_request(lambda i: (start(i) >= 0) & (start(i) <= end(i)) & (end(i) <= F.col("window_len")))]
        ),
        "qc_offsets_non_decreasing": _all([_non_decreasing("hist_start"), _non_decreasing("hist_end")]),
        "qc_window_all_read": _all(
            [
                _at("hist_start", 1) == 0,
                _at("hist_end", -1) == F.col("window_len"),
                _per_request(lambda i: (i == 1) | (start(i) <= end(F.greatest(i - 1, F.lit(1))))),
            ]
        ),
        "qc_slice_before_request": _all(
            [
                _per_request(
                    lambda i: (start(i) >= end(i))
                    | (_at("hist_ts", F.greatest(end(i), F.lit(1))) < _at("request_ts", i))
                )
            ]
        ),
        "qc_labels_binary": _all([F.forall(c, lambda x: x.isin(0, 1)) for c in LABEL_COLUMN_NAMES]),
    }
    missing = set(USER_DAY_ROW_CHECKS) ^ set(checks)
    if missing:  # schemas/quality.py and this function must name the same rules
        raise KeyError(f"row checks out of sync with schemas/quality.USER_DAY_ROW_CHECKS: {sorted(missing)}")
    longest = F.array_max(F.zip_with("hist_start", "hist_end", lambda s, e: e - s))
    return df.select(
        "*",
        *[checks[name].alias(name) for name in USER_DAY_ROW_CHECKS],
        F.coalesce(longest, F.lit(0)).cast("int").alias(MAX_SLICE_LEN),
    )


def user_day_conservation_frame(user_days: DataFrame, published: DataFrame) -> DataFrame:
    """One row: requests and targets of request_samples `published` and of `user_days` (requests
    counted with and without repeats). Pass one date of each; the gate expects them equal."""
    require_columns(user_days, ["request_id", "total_targets"], "user_day_conservation_frame(user_days)")
    require_columns(published, ["num_targets"], "user_day_conservation_frame(published)")
    want = published.agg(
        F.count("*").alias(REQUESTS_PUBLISHED),
        F.coalesce(F.sum("num_targets"), F.lit(0)).cast("long").alias(TARGETS_PUBLISHED),
    )
    got = user_days.agg(
        F.coalesce(F.sum(F.size("request_id")), F.lit(0)).cast("long").alias(REQUESTS_WRITTEN),
        F.coalesce(F.sum("total_targets"), F.lit(0)).cast("long").alias(USER_DAY_TARGETS_WRITTEN),
    )
    distinct = user_days.select(F.explode("request_id").alias("_id")).agg(
        F.countDistinct("_id").alias(DISTINCT_REQUESTS_WRITTEN)
    )
    return want.crossJoin(got).crossJoin(distinct)


def profile(df: DataFrame) -> DataFrame:
    """One row summarizing a request_samples partition: rows, targets, mean hist_len and the
    share of positive labels per task (over all targets)."""
    require_columns(df, ["hist_len", "num_targets", *LABEL_COLUMN_NAMES], "profile")
    targets = F.sum("num_targets")
    return df.agg(
        F.count("*").alias(ROWS),
        targets.alias(TARGETS),
        F.avg("hist_len").alias(MEAN_HIST_LEN),
        *[
            F.try_divide(
                F.sum(F.aggregate(label, F.lit(0).cast("long"), lambda acc, x: acc + x)), targets
            ).alias(rate)
            for label, rate in zip(LABEL_COLUMN_NAMES, LABEL_RATES, strict=True)
        ],
    )


def drift_frame(previous: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """current profile -> one row of ratios and absolute label-rate differences against
    `previous` (both one-row outputs of `profile`). A ratio over a zero is null."""

    def apply(current: DataFrame) -> DataFrame:
        for df, where in ((current, "drift_frame(current)"), (previous, "drift_frame(previous)")):
            require_columns(df, [ROWS, MEAN_HIST_LEN, *LABEL_RATES], where)
        cur = current.select(*[F.col(c).alias(f"cur_{c}") for c in (ROWS, MEAN_HIST_LEN, *LABEL_RATES)])
        prev = previous.select(*[F.col(c).alias(f"prev_{c}") for c in (ROWS, MEAN_HIST_LEN, *LABEL_RATES)])
        return cur.crossJoin(prev).select(
            F.try_divide(F.col(f"cur_{ROWS}").cast("double"), F.col(f"prev_{ROWS}")).alias(ROW_COUNT_RATIO),
            F.try_divide(F.col(f"cur_{MEAN_HIST_LEN}"), F.col(f"prev_{MEAN_HIST_LEN}")).alias(
                MEAN_HIST_LEN_RATIO
            ),
            *[
                F.abs(F.col(f"cur_{rate}") - F.col(f"prev_{rate}")).alias(delta)
                for rate, delta in zip(LABEL_RATES, LABEL_RATE_DELTAS, strict=True)
            ],
        )

    return apply


def conservation_frame(impressions: DataFrame, samples: DataFrame, quarantined: DataFrame) -> DataFrame:
    """One row: impressions read (rows of `impressions`), targets written (sum of num_targets of
    `samples`), impressions quarantined (rows of `quarantined`) and their sum `accounted`. Pass
    one date of each; the gate expects impressions_read == accounted."""
    require_columns(samples, ["num_targets"], "conservation_frame(samples)")
    read = impressions.agg(F.count("*").alias(IMPRESSIONS_READ))
    written = samples.agg(F.coalesce(F.sum("num_targets"), F.lit(0)).cast("long").alias(TARGETS_WRITTEN))
    quarantine = quarantined.agg(F.count("*").alias(IMPRESSIONS_QUARANTINED))
    return (
        read.crossJoin(written)
        .crossJoin(quarantine)
        .withColumn(ACCOUNTED, F.col(TARGETS_WRITTEN) + F.col(IMPRESSIONS_QUARANTINED))
    )
