"""The build jobs on real Delta tables: multi-day state, point-in-time samples equal to the
reference, idempotent reruns, conservation, quarantine, ordering errors."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import build_impression_samples, build_request_samples, build_user_history
from jobs.build_impression_samples import Args as FlatArgs
from jobs.build_request_samples import Args as SamplesArgs
from jobs.build_user_history import Args as HistoryArgs
from jobs.delta_io import MissingTableError, latest_version, overwrite_where
from jobs.history_state import StateOrderError, state_versions
from jobs.verified_write import ConservationError, TableWrites
from schemas import IMPRESSION_SAMPLES, IMPRESSIONS, QUARANTINE, REQUEST_SAMPLES, USER_ACTIONS, USER_HISTORY
from schemas.constants import SECOND_MS, day_start_ms
from schemas.fields import TASKS
from tests import reference

pytestmark = pytest.mark.spark

DAYS = ["2026-02-01", "2026-02-02", "2026-02-03"]
L_MAX = 3
STATE_LEN = 4
# Straight into request_samples (the daily path stages, validates and publishes: tests/test_publish.py).
UNGATED = REQUEST_SAMPLES


def _ms(day: str, second: int) -> int:
    return day_start_ms(day) + second * SECOND_MS


def _logs(seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rnd = random.Random(seed)
    actions = []
    for day in DAYS:
        for _ in range(40):
            actions.append(
                {"user_id": rnd.randint(1, 4), "item_id": rnd.randint(1, 8), "author_id": 1,
                 "event_ts": _ms(day, rnd.randint(0, 30)), "action": rnd.choice([1, 3, 65]), "watch_ms": 5,
                 "duration_ms": 9, "date": day}
            )  # fmt: skip
    actions += [dict(actions[3]), dict(actions[50]), {**actions[10], "user_id": None},
                {**actions[60], "date": DAYS[0]}]  # fmt: skip
    impressions = []
    for d, day in enumerate(DAYS[1:]):
        for k in range(8):
            user, ts = rnd.randint(1, 5), _ms(day, rnd.randint(0, 30))  # user 5 has no history
            for pos in range(rnd.randint(1, 4)):
                impressions.append(
                    {"request_id": f"{d}-{k}", "user_id": user, "item_id": rnd.randint(1, 8), "author_id": 1,
                     "request_ts": ts, "position": pos, "duration_ms": 9, "watch_ms": 1,
                     **{t: rnd.randint(0, 1) for t in TASKS}, "date": day}
                )  # fmt: skip
    impressions += [
        {**impressions[0], "position": 9},  # duplicate (request_id, item_id)
        {**impressions[1], "like": 2},
        {**impressions[2], "request_id": None},
        {**impressions[3], "user_id": 99, "item_id": 77},  # inconsistent with its request
        {**impressions[4], "date": DAYS[0]},  # request_ts outside its date
    ]
    return actions, impressions


def write_logs(spark: SparkSession, warehouse: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """_logs() as the user_actions and impressions Delta tables of `warehouse`."""
    actions, impressions = _logs()
    for rows, contract in ((actions, USER_ACTIONS), (impressions, IMPRESSIONS)):
        tuples = [tuple(r[c] for c in contract.column_names) for r in rows]
        df = spark.createDataFrame(tuples, contract.spark_schema())
        overwrite_where(df, contract, contract.location(warehouse), None)
    return actions, impressions


@pytest.fixture()
def logs(logs_warehouse: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return logs_warehouse()  # a copy of write_logs' tables (conftest.py)


def _samples(spark: SparkSession, warehouse: str, day: str) -> dict[str, dict[str, Any]]:
    df = spark.read.format("delta").load(REQUEST_SAMPLES.location(warehouse)).where(F.col("date") == day)
    return {r["request_id"]: r.asDict() for r in df.collect()}


def test_multi_day_build_matches_reference_and_reruns_are_idempotent(
    spark: SparkSession, warehouse: str, logs: Any
) -> None:
    actions, impressions = logs

    def build_history(day: str) -> dict[str, Any]:
        return build_user_history.run(spark, HistoryArgs(date=day, warehouse=warehouse, state_len=STATE_LEN))

    def build_samples(day: str) -> dict[str, Any]:
        args = SamplesArgs(date=day, warehouse=warehouse, l_max=L_MAX, output=UNGATED)
        return build_request_samples.run(spark, args)

    boot = build_history(DAYS[0])
    assert boot["bootstrap"] is True
    for day in DAYS[1:]:
        summary = build_samples(day)
        want = reference.request_samples(impressions, actions, day, L_MAX)
        assert _samples(spark, warehouse, day) == want
        # conservation, and the job's own counts
        want_q = reference.quarantine_counts(impressions, reference.impression_reasons(impressions))
        read = sum(1 for r in impressions if r["date"] == day)
        assert summary["impressions_read"] == read
        assert summary["targets"] == sum(s["num_targets"] for s in want.values())
        assert summary["quarantined"] == {why: n for (d, why), n in want_q.items() if d == day}
        assert read == summary["targets"] + sum(summary["quarantined"].values())
        build_history(day)

    # the quarantine table holds every rejected row with its reason, by source and date
    q = spark.read.format("delta").load(QUARANTINE.location(warehouse))
    got_q = Counter((r["source_table"], r["date"], r["reason"]) for r in q.collect())
    want_acts = reference.quarantine_counts(actions, reference.action_reasons(actions))
    want_imps = reference.quarantine_counts(impressions, reference.impression_reasons(impressions))
    assert got_q == Counter({("user_actions", d, w): n for (d, w), n in want_acts.items()}) + Counter(
        {("impressions", d, w): n for (d, w), n in want_imps.items() if d in DAYS[1:]}
    )

    # rerun of the last day: same samples, same state, no duplicates
    def state_rows() -> list[tuple[Any, ...]]:  # read afresh each time
        state = spark.read.format("delta").load(USER_HISTORY.location(warehouse))
        return sorted(tuple(r) for r in state.collect())

    state_before = state_rows()
    samples_before = _samples(spark, warehouse, DAYS[2])
    build_samples(DAYS[2])
    build_history(DAYS[2])
    assert _samples(spark, warehouse, DAYS[2]) == samples_before
    assert spark.read.format("delta").load(REQUEST_SAMPLES.location(warehouse)).count() == sum(
        len(reference.request_samples(impressions, actions, d, L_MAX)) for d in DAYS[1:]
    )
    state_after = state_rows()
    assert state_after == state_before
    assert [v.as_of_date for v in state_versions(spark, USER_HISTORY.location(warehouse))] == [*DAYS, DAYS[2]]

    # the flat layout: one row per target, the request's history copied into each
    build_impression_samples.run(spark, FlatArgs(date=DAYS[2], warehouse=warehouse))
    flat = spark.read.format("delta").load(IMPRESSION_SAMPLES.location(warehouse)).collect()
    assert len(flat) == sum(s["num_targets"] for s in samples_before.values())
    for row in flat:
        sample = samples_before[row["request_id"]]
        i = sample["tgt_position"].index(row["position"])
        assert row["item_id"] == sample["tgt_item_id"][i] and row["label_finish"] == sample["label_finish"][i]
        assert row["hist_item_id"] == sample["hist_item_id"]


def test_days_must_be_built_in_order(spark: SparkSession, warehouse: str, logs: Any) -> None:
    def history(day: str) -> None:
        build_user_history.run(spark, HistoryArgs(date=day, warehouse=warehouse, state_len=STATE_LEN))

    history(DAYS[0])
    with pytest.raises(StateOrderError, match=f"has no state for {DAYS[1]}: build the days in between first"):
        history(DAYS[2])
    history(DAYS[1])
    with pytest.raises(StateOrderError, match=f"user_history is as of {DAYS[1]}, after {DAYS[0]}"):
        history(DAYS[0])
    with pytest.raises(StateOrderError, match=f"no user_history state as of {DAYS[2]}"):
        build_request_samples.run(spark, SamplesArgs(date="2026-02-04", warehouse=warehouse))
    # Through the command line once: main() parses --l-max and runs the same core.
    with pytest.raises(ValueError, match="--l-max 5 exceeds the state's 4 events per user"):
        build_request_samples.main(["--warehouse", warehouse, "--date", DAYS[2], "--l-max", "5"])


def test_failed_check_restores_every_table_written(spark: SparkSession, warehouse: str, logs: Any) -> None:
    """TableWrites: a check failing after writes to two tables puts both back, and says so."""
    tables = {c.name: (c, c.location(warehouse)) for c in (USER_ACTIONS, IMPRESSIONS)}

    def contents() -> dict[str, Counter[tuple[Any, ...]]]:  # rows with nulls: a multiset, not a sorted list
        return {name: Counter(map(tuple, spark.read.format("delta").load(path).collect()))
                for name, (_, path) in tables.items()}  # fmt: skip

    before = contents()
    versions = {name: latest_version(spark, path) for name, (_, path) in tables.items()}
    day = f"date = '{DAYS[1]}'"
    writes = TableWrites(spark)
    for contract, path in tables.values():  # empties day 1 of both tables
        empty = spark.createDataFrame([], contract.spark_schema())
        writes.overwrite_where(empty, contract, path, day)
    rows_left = F.count("*").alias("rows")

    def not_empty(row: Any) -> str | None:
        return f"impressions of {DAYS[1]}: {row['rows']} rows, expected > 0" if not row["rows"] else None

    restored = (
        f"impressions restored to version {versions['impressions']}, "
        f"user_actions restored to version {versions['user_actions']}"
    )
    failure = rf"^impressions of {DAYS[1]}: 0 rows, expected > 0; {restored}$"
    with pytest.raises(ConservationError, match=failure):
        writes.overwrite_verified(
            spark.createDataFrame([], IMPRESSIONS.spark_schema()),
            IMPRESSIONS,
            tables["impressions"][1],
            day,
            lambda written: written.agg(rows_left).first(),
            not_empty,
        )
    assert writes.versions_before == versions
    assert contents() == before


def test_missing_inputs_fail_with_what_to_do(spark: SparkSession, warehouse: str) -> None:
    # Through the command line: main() runs the core in the shared session.
    with pytest.raises(
        MissingTableError, match="table user_actions not found at .*check the --warehouse argument"
    ):
        build_user_history.main(["--warehouse", warehouse, "--date", DAYS[0]])


def test_bad_date_argument_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_request_samples.parse_args(["--date", "02/01/2026"])
    assert "expected a date as YYYY-MM-DD, got '02/01/2026'" in capsys.readouterr().err


def test_build_flags_map_to_args() -> None:
    """The command lines spark-submit runs give the Args the other tests pass, defaults included."""
    wh = ["--warehouse", "wh", "--date", DAYS[1]]
    history = build_user_history.parse_args([*wh, "--state-len", "4"])
    assert history == HistoryArgs(date=DAYS[1], warehouse="wh", state_len=4)
    assert build_user_history.parse_args(["--date", DAYS[1]]) == HistoryArgs(date=DAYS[1])
    backfill = build_request_samples.parse_args(
        [*wh, "--l-max", "3", "--allow-no-state", "--output", "request_samples", "--to-date", DAYS[2]]
    )
    assert backfill == SamplesArgs(
        date=DAYS[1], warehouse="wh", l_max=3, allow_no_state=True, output=REQUEST_SAMPLES, to_date=DAYS[2]
    )
    assert build_request_samples.parse_args(["--date", DAYS[1]]) == SamplesArgs(date=DAYS[1])
    assert build_impression_samples.parse_args(wh) == FlatArgs(date=DAYS[1], warehouse="wh")


def test_bootstrap_resets_a_state_table_with_an_older_schema(
    spark: SparkSession, warehouse: str, logs: Any
) -> None:
    """A state table left by an older contract (non-null array elements) must not break the
    daily MERGE: the bootstrap replaces the table with the contract's schema."""
    path = USER_HISTORY.location(warehouse)
    legacy = T.StructType(
        [
            T.StructField(f.name, T.ArrayType(f.dataType.elementType, containsNull=False), f.nullable)
            if isinstance(f.dataType, T.ArrayType)
            else f
            for f in USER_HISTORY.spark_schema().fields
        ]
    )
    spark.createDataFrame([], legacy).write.format("delta").save(path)
    for day in DAYS[:2]:
        build_user_history.run(spark, HistoryArgs(date=day, warehouse=warehouse, state_len=STATE_LEN))
    got = spark.read.format("delta").load(path).schema
    assert [(f.name, f.dataType) for f in got] == [(f.name, f.dataType) for f in USER_HISTORY.spark_schema()]
    assert {v.as_of_date for v in state_versions(spark, path)} == {DAYS[0], DAYS[1]}
