"""Property test: the Spark pipelines equal the pure-Python reference on random small logs.

Random logs cover equal timestamps (a small grid of times), users without history, histories
longer than L_max (a tiny L_max), actions interleaved with requests on the same day, a second day
built on the first day's state, and every bad-row kind (nulls, out-of-date timestamps, labels
outside {0, 1}, inconsistent requests, duplicates)."""

from __future__ import annotations

import os
from collections import Counter
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
from pipelines.user_history import merge_day_into_state
from pipelines.validity import (
    REJECT_REASON,
    to_quarantine,
    valid_rows,
    with_action_reject_reason,
    with_impression_reject_reason,
)
from schemas import IMPRESSIONS, USER_ACTIONS, USER_HISTORY
from schemas.constants import DAY_MS, SECOND_MS, day_start_ms
from schemas.fields import TASKS
from tests import reference

pytestmark = pytest.mark.spark

DAYS = ["2026-03-01", "2026-03-02"]
L_MAX = 4
STATE_LEN = 5  # >= L_MAX, and small, so the state truncates too
# Each example runs up to MAX_SCENARIOS independent random logs (users and requests namespaced
# per scenario) through one set of Spark jobs: many random cases for a few Spark round trips.
MAX_EXAMPLES = int(os.environ.get("RLB_HYPOTHESIS_EXAMPLES", "4"))
MAX_SCENARIOS = 6


def _ts(day_idx: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    # a coarse grid of times so that equal timestamps are common
    return st.builds(lambda d, k: day_start_ms(DAYS[d]) + k * SECOND_MS, day_idx, st.integers(0, 6))


def _sometimes_null(draw: Any, values: list[int]) -> int | None:
    """One of `values`; about one draw in 13 may also give None (the same draws as inline)."""
    nullable = draw(st.integers(0, 12)) == 0
    return draw(st.sampled_from([*values, None] if nullable else values))


@st.composite
def actions(draw: Any) -> list[dict[str, Any]]:
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        d = draw(st.integers(0, 1))
        ts = draw(_ts(st.just(d)))
        bad_date = draw(st.integers(0, 15)) == 0
        rows.append(
            {
                "user_id": _sometimes_null(draw, [1, 2, 3]),
                "item_id": _sometimes_null(draw, [10, 11, 12, 13]),
                "author_id": 7,
                "event_ts": None if draw(st.integers(0, 20)) == 0 else ts,
                "action": draw(st.sampled_from([1, 3, 65])),
                "watch_ms": draw(st.integers(0, 3)),
                "duration_ms": 9,
                "date": DAYS[1 - d] if bad_date else DAYS[d],
            }
        )
    dupes = draw(st.lists(st.sampled_from(rows), max_size=3)) if rows else []
    return rows + [dict(r) for r in dupes]


@st.composite
def impressions(draw: Any) -> list[dict[str, Any]]:
    rows = []
    for k in range(draw(st.integers(0, 5))):
        d = draw(st.integers(0, 1))
        user = draw(st.sampled_from([1, 2, 3, 4]))  # user 4 never acts: no history
        ts = draw(_ts(st.just(d)))
        for pos in range(draw(st.integers(1, 4))):
            row: dict[str, Any] = {
                "request_id": f"r{k}",
                "user_id": user,
                "item_id": draw(st.sampled_from([10, 11, 12, 13])),
                "author_id": 7,
                "request_ts": ts,
                "position": pos,
                "duration_ms": 9,
                "watch_ms": 1,
                **{t: draw(st.integers(0, 1)) for t in TASKS},
                "date": DAYS[d],
            }
            kind = draw(st.integers(0, 30))
            if kind == 0:
                row[draw(st.sampled_from(["request_id", "user_id", "item_id", "request_ts"]))] = None
            elif kind == 1:
                row["date"] = DAYS[1 - d]
            elif kind == 2:
                row[draw(st.sampled_from(TASKS))] = 2
            elif kind == 3:
                row["user_id"] = user + 1
            elif kind == 4:
                row["request_ts"] = ts + 1
            rows.append(row)
    dupes = draw(st.lists(st.sampled_from(rows), max_size=3)) if rows else []
    return rows + [{**r, "position": r["position"] + draw(st.integers(0, 2))} for r in dupes]


Log = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # (user_actions rows, impressions rows)


def _namespaced(scenarios: list[Log]) -> Log:
    """The scenarios as one log: scenario j's users become 10 * j + user and its requests s<j>-<id>,
    so no two scenarios share a user, a request or a duplicate key (null ids stay null)."""
    acts: list[dict[str, Any]] = []
    imps: list[dict[str, Any]] = []
    for j, (scenario_acts, scenario_imps) in enumerate(scenarios):
        acts += [{**r, "user_id": _user(j, r["user_id"])} for r in scenario_acts]
        imps += [{**r, "user_id": _user(j, r["user_id"]),
                  "request_id": None if r["request_id"] is None else f"s{j}-{r['request_id']}"}
                 for r in scenario_imps]  # fmt: skip
    return acts, imps


def _user(scenario: int, user_id: int | None) -> int | None:
    return None if user_id is None else 10 * scenario + user_id  # the strategies' users are at most 5


def _frame(spark: SparkSession, rows: list[dict[str, Any]], contract: Any) -> DataFrame:
    tuples = [tuple(r[c] for c in contract.column_names) for r in rows]
    return spark.createDataFrame(tuples, contract.spark_schema())


def _merged(state: DataFrame, changed: DataFrame) -> DataFrame:
    """What the job's MERGE on user_id leaves: changed rows replace, others stay."""
    return state.join(changed.select("user_id"), "user_id", "left_anti").unionByName(changed)


@pytest.fixture(scope="module", autouse=True)
def _one_shuffle_partition(spark: SparkSession) -> Any:
    """Tiny frames: one shuffle partition keeps each example to a few short Spark jobs."""
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    yield
    spark.conf.set("spark.sql.shuffle.partitions", before)


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(actions(), impressions()), min_size=1, max_size=MAX_SCENARIOS))
def test_pipelines_match_reference(spark: SparkSession, scenarios: list[Log]) -> None:
    acts, imps = _namespaced(scenarios)
    tagged_actions = with_action_reject_reason(_frame(spark, acts, USER_ACTIONS)).cache()
    tagged_imps = with_impression_reject_reason(_frame(spark, imps, IMPRESSIONS)).cache()

    # validity: same (row, reason) multiset as the reference
    for rows, tagged, ref in (
        (acts, tagged_actions, reference.action_reasons(acts)),
        (imps, tagged_imps, reference.impression_reasons(imps)),
    ):
        cols = [c for c in tagged.columns if c != REJECT_REASON]
        got = Counter((tuple(r[c] for c in cols), r[REJECT_REASON]) for r in tagged.collect())
        want = Counter((tuple(r[c] for c in cols), why) for r, why in zip(rows, ref, strict=True))
        assert got == want

    valid_actions = valid_rows(tagged_actions)
    state: DataFrame = spark.createDataFrame([], USER_HISTORY.spark_schema())
    for day in DAYS:
        day_actions = valid_actions.where(F.col("date") == day)
        requests = requests_from_impressions(valid_rows(tagged_imps).where(F.col("date") == day))
        events = user_events_through_day(state, day_actions)
        samples = requests.transform(with_history_as_of_request(events, L_MAX))
        got_samples = {r["request_id"]: r.asDict() for r in samples.collect()}
        assert got_samples == reference.request_samples(imps, acts, day, L_MAX)

        # conservation: impressions read = targets written + impressions quarantined
        quarantined = tagged_imps.where(F.col("date") == day).transform(to_quarantine("impressions")).count()
        read = sum(1 for r in imps if r["date"] == day)
        assert read == sum(s["num_targets"] for s in got_samples.values()) + quarantined

        state = _merged(state, state.transform(merge_day_into_state(day_actions, day, STATE_LEN))).cache()
        # the state holds each valid user's last STATE_LEN events through the end of `day`
        valid = reference.valid_actions(acts)
        end = day_start_ms(day) + DAY_MS
        got_state = {
            r["user_id"]: (r["hist_ts"], r["hist_item_id"], r["hist_action"]) for r in state.collect()
        }
        want_state = {
            u: ([a["event_ts"] for a in h], [a["item_id"] for a in h], [a["action"] for a in h])
            for u in {a["user_id"] for a in valid if a["date"] <= day}
            if (h := reference.history(valid, u, end, STATE_LEN))
        }
        assert got_state == want_state
