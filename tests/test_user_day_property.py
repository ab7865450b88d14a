"""Property test: on random logs, every request rebuilt from `user_day_samples` equals the
pure-Python reference (tests/reference.py) exactly, histories and targets, and no request's slice
of the window holds an event at or after its request_ts.

The logs are tests/test_request_samples_property.py's (equal timestamps, users without history,
histories longer than a tiny L_max, actions between a user's requests, bad rows of every kind,
a second day on the first day's state); the user-days are built from the request_samples rows of
each day, as the job does. `RLB_HYPOTHESIS_EXAMPLES` raises the number of examples."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipelines.request_samples import (
    requests_from_impressions,
    user_events_through_day,
    with_history_as_of_request,
)
from pipelines.user_day_samples import to_request_samples, user_day_rows, with_user_day_window
from pipelines.user_history import merge_day_into_state
from pipelines.validity import (
    REJECT_REASON,
    valid_rows,
    with_action_reject_reason,
    with_impression_reject_reason,
)
from schemas import IMPRESSIONS, REQUEST_SAMPLES, USER_ACTIONS, USER_HISTORY
from schemas.fields import HISTORY_COLUMNS
from schemas.user_day_samples import FLAT_TARGET_COLUMNS
from tests import reference
from tests.test_request_samples_property import (
    DAYS,
    L_MAX,
    MAX_EXAMPLES,
    MAX_SCENARIOS,
    STATE_LEN,
    Log,
    _frame,
    _merged,
    _namespaced,
    actions,
    impressions,
)

pytestmark = pytest.mark.spark

Row = dict[str, Any]


def requests_of(user_day: Row) -> dict[str, Row]:
    """A user_day_samples row -> its request_samples rows by request_id, plainly in Python: request
    j's history is window[hist_start_j : hist_end_j], its targets the j-th run of num_targets."""
    out: dict[str, Row] = {}
    offset = 0
    for j, request_id in enumerate(user_day["request_id"]):
        start, end, m = user_day["hist_start"][j], user_day["hist_end"][j], user_day["num_targets"][j]
        row: Row = {
            "request_id": request_id,
            "user_id": user_day["user_id"],
            "request_ts": user_day["request_ts"][j],
            "date": user_day["date"],
            "hist_len": end - start,
            **{c.name: user_day[c.name][start:end] for c in HISTORY_COLUMNS},
            "num_targets": m,
            **{c.name: user_day[c.name][offset : offset + m] for c in FLAT_TARGET_COLUMNS},
        }
        out[request_id] = {c: row[c] for c in REQUEST_SAMPLES.column_names}
        offset += m
    assert offset == user_day["total_targets"]
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_shuffle_partition(spark: SparkSession) -> Any:
    """Tiny frames: one shuffle partition keeps each example to a few short Spark jobs."""
    before = str(spark.conf.get("spark.sql.shuffle.partitions"))
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    yield
    spark.conf.set("spark.sql.shuffle.partitions", before)


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(actions(), impressions()), min_size=1, max_size=MAX_SCENARIOS))
def test_requests_rebuilt_from_user_days_equal_the_reference(
    spark: SparkSession, scenarios: list[Log]
) -> None:
    acts, imps = _namespaced(scenarios)
    valid_actions = valid_rows(with_action_reject_reason(_frame(spark, acts, USER_ACTIONS))).cache()
    valid_imps = valid_rows(with_impression_reject_reason(_frame(spark, imps, IMPRESSIONS))).cache()
    state: DataFrame = spark.createDataFrame([], USER_HISTORY.spark_schema())
    for day in DAYS:
        day_actions = valid_actions.where(F.col("date") == day)
        requests = requests_from_impressions(valid_imps.where(F.col("date") == day))
        samples = requests.transform(
            with_history_as_of_request(user_events_through_day(state, day_actions), L_MAX)
        )
        tagged = with_user_day_window(samples).cache()
        assert tagged.where(F.col(REJECT_REASON).isNotNull()).count() == 0
        user_days = [r.asDict() for r in tagged.transform(user_day_rows).collect()]

        rebuilt: dict[str, Row] = {}
        for user_day in user_days:
            assert user_day["hist_ts"] == sorted(user_day["hist_ts"])  # one sorted window
            got = requests_of(user_day)
            assert not set(got) & set(rebuilt)  # each request in exactly one user-day
            rebuilt.update(got)
            for r in got.values():  # no slice reaches its own request_ts
                assert all(t < r["request_ts"] for t in r["hist_ts"]) and r["hist_len"] <= L_MAX
        assert rebuilt == reference.request_samples(imps, acts, day, L_MAX)
        # the Spark inverse (the gate's) says the same
        assert {
            r["request_id"]: r.asDict() for r in to_request_samples(tagged.transform(user_day_rows)).collect()
        } == rebuilt
        tagged.unpersist()
        state = _merged(state, state.transform(merge_day_into_state(day_actions, day, STATE_LEN))).cache()
