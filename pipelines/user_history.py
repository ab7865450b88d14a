"""The per-user history state: events as sorted arrays, extended one day at a time.

Events are ordered by (event_ts, item_id, action): after duplicates are removed this is a total
order, so every history has one deterministic layout. Because an action's event_ts lies inside
its `date`, all of day D's events come after every event of the state as of D-1: extending the
state is a concatenation, never a re-sort of the old arrays."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from schemas import USER_HISTORY
from schemas.fields import HIST_PREFIX, HISTORY_COLUMNS, HISTORY_SOURCE

from .checks import require_columns

# Sort key of history events; the struct's first fields are compared first by array_sort.
EVENT_ORDER = ("event_ts", "item_id", "action")
_EVENTS = "_events"


def _event_struct() -> Column:
    rest = [src for src in HISTORY_SOURCE.values() if src not in EVENT_ORDER]
    return F.struct(*[F.col(c) for c in (*EVENT_ORDER, *rest)])


def _getter(field: str) -> Callable[[Column], Column]:
    # A closure, not a default argument: Spark counts a lambda's parameters to pick its form.
    return lambda e: e[field]


def _unzip(events: Column) -> list[Column]:
    """Struct array -> one array column per history field."""
    return [F.transform(events, _getter(src)).alias(name) for name, src in HISTORY_SOURCE.items()]


def sorted_events_by_user(actions: DataFrame, key: str = "user_id") -> DataFrame:
    """Valid actions (one row per event) -> one row per `key` (the user, by default) with
    `hist_*` arrays sorted in event order and `hist_len`. Grain: key."""
    require_columns(actions, [key, *HISTORY_SOURCE.values()], "sorted_events_by_user")
    return (
        actions.groupBy(key)
        .agg(F.array_sort(F.collect_list(_event_struct())).alias(_EVENTS))
        .select(key, F.size(_EVENTS).cast("int").alias("hist_len"), *_unzip(F.col(_EVENTS)))
    )


def keep_last(n: int, column: Column, length: Column) -> Column:
    """The last n elements of an array whose length is `length` (all of it when shorter)."""
    start = F.greatest(length - F.lit(n), F.lit(0)) + F.lit(1)  # slice is 1-based
    return F.slice(column, start.cast("int"), F.least(length, F.lit(n)).cast("int"))


def append_events(base_prefix: str, new_prefix: str, max_len: int) -> list[Column]:
    """Columns `hist_*` = last `max_len` of (base arrays ++ new arrays), plus `hist_len`.

    A missing side (null after an outer join) counts as empty."""
    fields = [c.name.removeprefix(HIST_PREFIX) for c in HISTORY_COLUMNS]
    combined_len = F.coalesce(F.col(f"{base_prefix}hist_len"), F.lit(0)) + F.coalesce(
        F.col(f"{new_prefix}hist_len"), F.lit(0)
    )
    out = [F.least(combined_len, F.lit(max_len)).cast("int").alias("hist_len")]
    for f in fields:
        name = f"{HIST_PREFIX}{f}"
        empty = F.array().cast(USER_HISTORY.spark_schema()[name].dataType)
        both = F.concat(
            F.coalesce(F.col(f"{base_prefix}{name}"), empty), F.coalesce(F.col(f"{new_prefix}{name}"), empty)
        )
        out.append(keep_last(max_len, both, combined_len).alias(name))
    return out


def merge_day_into_state(day_actions: DataFrame, date: str, max_len: int) -> Callable[[DataFrame], DataFrame]:
    """state as of D-1 -> the changed rows of the state as of D (only users active on D).

    `day_actions` are day D's valid actions. The result holds the contract's columns, one row
    per user with events on D, ready to MERGE on user_id; untouched users keep their rows."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")

    def transform(state: DataFrame) -> DataFrame:
        require_columns(state, USER_HISTORY.column_names, "merge_day_into_state (state)")
        day = sorted_events_by_user(day_actions)
        base = state.select("user_id", *[F.col(c).alias(f"b_{c}") for c in state.columns if c != "user_id"])
        new = day.select("user_id", *[F.col(c).alias(f"n_{c}") for c in day.columns if c != "user_id"])
        joined = new.join(base, "user_id", "left")
        return joined.select(
            "user_id", F.lit(date).alias("as_of_date"), *append_events("b_", "n_", max_len)
        ).select(*USER_HISTORY.column_names)

    return transform
