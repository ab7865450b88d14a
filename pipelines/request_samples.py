"""Request-level samples: one row per request, its point-in-time history once, its m targets.

Point in time (docs/design.md §3): an event is in a request's history iff same user and
event_ts < request_ts (strict), keeping the most recent L_max, oldest first. Each user's events
(state as of D-1 ++ day D) are one sorted array set; a request's history is a slice of it found
by counting the events before request_ts, so work is linear in the history elements written and
no history is ever exploded into rows."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from schemas import REQUEST_SAMPLES, USER_HISTORY
from schemas.constants import DEFAULT_L_MAX
from schemas.fields import HISTORY_COLUMNS, LABEL_COLUMN_NAMES, TASKS
from schemas.request_samples import TARGET_SOURCE

from .checks import require_columns
from .user_history import append_events, sorted_events_by_user

# A user's requests are cut into slices of this many, each joined to its own copy of the user's
# events, so a user with hundreds of requests and a 10k history spreads over many tasks instead of
# stalling one. The copies cost far less than the output they parallelize.
REQUESTS_PER_SLICE = 16
_TARGETS = "_targets"
REQUEST_COLUMNS = ("request_id", "user_id", "request_ts", "date")
TARGET_ORDER = ("tgt_position", "tgt_item_id")  # targets are ordered by position, then item


def _getter(field: str) -> Callable[[Column], Column]:
    return lambda t: t[field]


def requests_from_impressions(valid_impressions: DataFrame) -> DataFrame:
    """Valid impressions (grain: impression) -> one row per request with `num_targets` and the
    target and label arrays ordered by position (then item_id). Grain: request_id."""
    require_columns(
        valid_impressions, [*REQUEST_COLUMNS, *TARGET_SOURCE.values(), *TASKS], "requests_from_impressions"
    )
    # The sort key leads the struct, so array_sort orders targets by it.
    rest = [name for name in TARGET_SOURCE if name not in TARGET_ORDER]
    target = F.struct(
        *[F.col(TARGET_SOURCE[name]).alias(name) for name in (*TARGET_ORDER, *rest)],
        *[F.col(t).alias(label) for t, label in zip(TASKS, LABEL_COLUMN_NAMES, strict=True)],
    )
    grouped = valid_impressions.groupBy(*REQUEST_COLUMNS).agg(
        F.array_sort(F.collect_list(target)).alias(_TARGETS)
    )
    return grouped.select(
        *REQUEST_COLUMNS,
        F.size(_TARGETS).cast("int").alias("num_targets"),
        *[F.transform(_TARGETS, _getter(name)).alias(name) for name in (*TARGET_SOURCE, *LABEL_COLUMN_NAMES)],
    )


def user_events_through_day(state_before: DataFrame, day_actions: DataFrame) -> DataFrame:
    """Every retained event of each user up to the end of day D: the state as of D-1 followed by
    day D's valid actions, untruncated (a request early in D may need older state events than
    the state as of D would keep). Grain: user_id; columns user_id, hist_len, hist_*."""
    require_columns(state_before, USER_HISTORY.column_names, "user_events_through_day (state)")
    day = sorted_events_by_user(day_actions)
    hist = ["hist_len", *[c.name for c in HISTORY_COLUMNS]]
    base = state_before.select("user_id", *[F.col(c).alias(f"b_{c}") for c in hist])
    new = day.select("user_id", *[F.col(c).alias(f"n_{c}") for c in hist])
    unbounded = 2**31 - 1  # append_events truncates; here nothing may be cut
    return base.join(new, "user_id", "full_outer").select("user_id", *append_events("b_", "n_", unbounded))


def with_history_as_of_request(
    user_events: DataFrame, l_max: int = DEFAULT_L_MAX, requests_per_slice: int = REQUESTS_PER_SLICE
) -> Callable[[DataFrame], DataFrame]:
    """requests (grain: request) -> request_samples rows: each request gets the last `l_max`
    events of its user with event_ts < request_ts. Users without events get empty histories."""
    if l_max < 1 or requests_per_slice < 1:
        raise ValueError(f"l_max and requests_per_slice must be >= 1, got {l_max} and {requests_per_slice}")

    def transform(requests: DataFrame) -> DataFrame:
        require_columns(requests, [*REQUEST_COLUMNS, "num_targets"], "with_history_as_of_request")
        require_columns(
            user_events, ["user_id", "hist_len", "hist_ts"], "with_history_as_of_request (events)"
        )
        by_user = Window.partitionBy("user_id").orderBy("request_ts", "request_id")
        sliced_requests = requests.withColumn(
            "_slice", F.floor((F.row_number().over(by_user) - 1) / requests_per_slice).cast("int")
        )
        slices = sliced_requests.groupBy("user_id").agg(F.max("_slice").alias("_last_slice"))
        events = (
            user_events.join(slices, "user_id")  # also drops users without requests
            .withColumn("_slice", F.explode(F.sequence(F.lit(0), F.col("_last_slice"))))
            .select(
                "user_id",
                "_slice",
                *[F.col(c).alias(f"u_{c}") for c in user_events.columns if c != "user_id"],
            )
        )
        joined = sliced_requests.join(events, ["user_id", "_slice"], "left")
        # hist_ts is sorted ascending: the events before request_ts are a prefix of length `cut`.
        ts = F.coalesce(F.col("u_hist_ts"), F.array().cast("array<long>"))
        cut = F.aggregate(ts, F.lit(0), lambda acc, t: acc + F.when(t < F.col("request_ts"), 1).otherwise(0))
        joined = joined.withColumn("_cut", cut).withColumn(
            "_start", F.greatest(F.col("_cut") - l_max, F.lit(0))
        )
        sliced = []
        for c in HISTORY_COLUMNS:
            arr = F.coalesce(
                F.col(f"u_{c.name}"), F.array().cast(REQUEST_SAMPLES.spark_schema()[c.name].dataType)
            )
            sliced.append(F.slice(arr, F.col("_start") + 1, F.col("_cut") - F.col("_start")).alias(c.name))
        out = joined.select(
            *[c for c in requests.columns],
            (F.col("_cut") - F.col("_start")).cast("int").alias("hist_len"),
            *sliced,
        )
        return out.select(*REQUEST_SAMPLES.column_names)

    return transform


def clustered_by_user(samples: DataFrame) -> DataFrame:
    """Orders rows so a user's requests sit together (by user, then time) within each file."""
    return samples.sortWithinPartitions("user_id", "request_ts", "request_id")

