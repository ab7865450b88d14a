"""user_day_samples: the window layout on the documented example, the exact inverse
(to_request_samples gives back every published request_samples row, every column), quarantine of a
user-day whose histories do not share one window, and the build job on real Delta tables."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import build_request_samples, build_user_day_samples, build_user_history, publish, validate
from jobs.build_request_samples import Args as SamplesArgs
from jobs.build_user_day_samples import Args
from jobs.build_user_history import Args as HistoryArgs
from jobs.delta_io import MissingTableError, latest_version, overwrite_where
from pipelines.quality import with_user_day_row_checks
from pipelines.user_day_samples import (
    HIST_ARRAYS,
    INCONSISTENT_HISTORIES,
    rejected_requests,
    to_request_samples,
    user_day_rows,
    with_user_day_window,
)
from pipelines.validity import REJECT_REASON
from schemas import QUARANTINE, REQUEST_SAMPLES, USER_DAY_SAMPLES, USER_DAY_SAMPLES_STAGING
from schemas.fields import HISTORY_COLUMNS
from schemas.quality import GateThresholds
from tests.test_build_jobs import DAYS, L_MAX, STATE_LEN

pytestmark = pytest.mark.spark

DAY = "2026-02-02"


def request_row(
    request_id: str, user_id: int, request_ts: int, hist_ts: list[int], items: list[int]
) -> dict[str, Any]:
    """A request_samples row whose history events are `hist_ts` (item = 100 + ts) and whose
    targets are `items` (labels alternate)."""
    m = len(items)
    row: dict[str, Any] = {
        "request_id": request_id,
        "user_id": user_id,
        "request_ts": request_ts,
        "date": DAY,
    }
    row["hist_len"] = len(hist_ts)
    for c in HISTORY_COLUMNS:
        row[c.name] = hist_ts if c.name == "hist_ts" else [100 + t for t in hist_ts]
    row["num_targets"] = m
    for name in ("tgt_item_id", "tgt_author_id", "tgt_position", "tgt_duration_ms"):
        row[name] = items if name != "tgt_position" else list(range(m))
    for name in REQUEST_SAMPLES.column_names:
        if name.startswith("label_"):
            row[name] = [k % 2 for k in range(m)]
    return row


def frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    return spark.createDataFrame(
        [tuple(r[c] for c in REQUEST_SAMPLES.column_names) for r in rows], REQUEST_SAMPLES.spark_schema()
    )


# docs/user-day-samples.md's example, L_max = 3: user 1's events at 10, 20, ..., 60; requests at 25
# (history 10 20), 45 twice (20 30 40) and 100 (40 50 60). User 2: 9 events, requests at 25 and 95,
# more than L_max events apart (the unread 30..60 are not stored). User 3: a cold start.
EXAMPLE = [
    request_row("a", 1, 25, [10, 20], [7, 8]),
    request_row("b", 1, 45, [20, 30, 40], [9]),
    request_row("c", 1, 45, [20, 30, 40], [5, 6, 7]),
    request_row("d", 1, 100, [40, 50, 60], [1]),
    request_row("e", 2, 95, [70, 80, 90], [3]),
    request_row("f", 2, 25, [10, 20], [4]),
    request_row("g", 3, 5, [], [2, 2]),
]


def test_window_layout_matches_the_documented_example(spark: SparkSession) -> None:
    tagged = with_user_day_window(frame(spark, EXAMPLE))
    got = {r["user_id"]: r.asDict() for r in tagged.transform(user_day_rows).collect()}
    assert list(got[1]) == USER_DAY_SAMPLES.column_names
    one = got[1]
    assert (one["window_len"], one["hist_ts"]) == (6, [10, 20, 30, 40, 50, 60])
    assert one["hist_item_id"] == [110, 120, 130, 140, 150, 160]
    assert one["request_id"] == ["a", "b", "c", "d"]
    assert (one["hist_start"], one["hist_end"]) == ([0, 1, 1, 3], [2, 4, 4, 6])
    assert (one["num_targets"], one["total_targets"]) == ([2, 1, 3, 1], 7)
    assert one["tgt_item_id"] == [7, 8, 9, 5, 6, 7, 1]
    assert one["label_finish"] == [0, 1, 0, 0, 1, 0, 0]
    two = got[2]
    assert (two["request_id"], two["hist_ts"]) == (["f", "e"], [10, 20, 70, 80, 90])
    assert (two["hist_start"], two["hist_end"]) == ([0, 2], [2, 5])
    three = got[3]
    assert (three["window_len"], three["hist_ts"], three["hist_start"], three["hist_end"]) == (
        0,
        [],
        [0],
        [0],
    )
    assert tagged.where(F.col(REJECT_REASON).isNotNull()).count() == 0


def test_to_request_samples_is_the_exact_inverse(spark: SparkSession) -> None:
    user_days = with_user_day_window(frame(spark, EXAMPLE)).transform(user_day_rows)
    back = to_request_samples(user_days)
    assert back.schema.simpleString() == REQUEST_SAMPLES.spark_schema().simpleString()
    assert {r["request_id"]: r.asDict() for r in back.collect()} == {r["request_id"]: r for r in EXAMPLE}


def test_histories_without_one_shared_window_are_rejected_not_written(spark: SparkSession) -> None:
    """A later request whose history is not the earlier one's extended (an event of the past
    inserted, an event changed) cannot be a slice of one window: the user-day is rejected whole
    and every one of its requests comes back for quarantine, unchanged."""
    bad = [
        request_row("x1", 4, 25, [10, 20], [1]),
        request_row("x2", 4, 45, [15, 20, 30], [2]),  # 15 < 25 was not in x1's history
        request_row("y1", 5, 25, [10, 20], [1]),
        {**request_row("y2", 5, 45, [10, 20, 30], [2]), "hist_item_id": [110, 999, 130]},
    ]
    tagged = with_user_day_window(frame(spark, [*bad, *EXAMPLE]))
    reasons = {r["user_id"]: r[REJECT_REASON] for r in tagged.collect()}
    assert reasons == {1: None, 2: None, 3: None, 4: INCONSISTENT_HISTORIES, 5: INCONSISTENT_HISTORIES}
    back = {r["request_id"]: r.asDict() for r in rejected_requests(tagged).collect()}
    assert back == {r["request_id"]: {**r, REJECT_REASON: INCONSISTENT_HISTORIES} for r in bad}
    assert sorted(r["user_id"] for r in tagged.transform(user_day_rows).collect()) == [1, 2, 3]


def _published(spark: SparkSession, warehouse: str, day: str) -> dict[str, dict[str, Any]]:
    df = spark.read.format("delta").load(REQUEST_SAMPLES.location(warehouse)).where(F.col("date") == day)
    return {r["request_id"]: r.asDict() for r in df.collect()}


def _implied(spark: SparkSession, warehouse: str, contract: Any, day: str) -> dict[str, dict[str, Any]]:
    df = spark.read.format("delta").load(contract.location(warehouse)).where(F.col("date") == day)
    return {r["request_id"]: r.asDict() for r in to_request_samples(df).collect()}


def test_build_job_implies_exactly_the_published_request_samples(
    spark: SparkSession, warehouse: str, logs_warehouse: Any
) -> None:
    logs_warehouse()
    day = DAYS[1]  # one day of request_samples (on the state of DAYS[0]) keeps the test short
    build_user_history.run(spark, HistoryArgs(date=DAYS[0], warehouse=warehouse, state_len=STATE_LEN))
    build_request_samples.run(
        spark, SamplesArgs(date=day, warehouse=warehouse, l_max=L_MAX, output=REQUEST_SAMPLES)
    )
    summary = build_user_day_samples.run(spark, Args(date=day, warehouse=warehouse))
    published = _published(spark, warehouse, day)
    assert _implied(spark, warehouse, USER_DAY_SAMPLES_STAGING, day) == published
    assert summary["table"] == USER_DAY_SAMPLES_STAGING.name
    assert summary["requests"] == len(published) and summary["quarantined_requests"] == 0
    assert summary["targets"] == sum(r["num_targets"] for r in published.values())
    assert summary["request_history_events"] == sum(r["hist_len"] for r in published.values())
    assert summary["window_events"] <= summary["request_history_events"]
    staged = spark.read.format("delta").load(USER_DAY_SAMPLES_STAGING.location(warehouse))
    assert staged.count() == staged.select("user_id", "date").distinct().count() == summary["user_days"]
    # The table's writer settings (jobs/delta_io.PARQUET_WRITER_CONF): hist_ts delta-encoded, the
    # other window columns dictionary-encoded; the session's settings are left as they were.
    for file in staged.inputFiles():
        chunks = pq.ParquetFile(urlparse(file).path).metadata.row_group(0)
        encodings = {
            chunks.column(i).path_in_schema: chunks.column(i).encodings for i in range(chunks.num_columns)
        }
        assert set(encodings["hist_ts.list.element"]) <= {"DELTA_BINARY_PACKED", "RLE"}, file
        assert "RLE_DICTIONARY" in encodings["hist_item_id.list.element"], file
    assert spark.conf.get("parquet.writer.version", None) is None

    # A tampered published partition: the inconsistent user-day is quarantined, the rest written,
    # requests and targets still add up (and the gate's conservation rule then fails the day).
    rows = list(published.values())
    victim = next(r for r in sorted(rows, key=lambda r: r["request_id"]) if r["hist_len"] > 0)
    # a request at the same time as another must read the same history; this one's items differ
    rows.append({**victim, "request_id": "zz-tampered", "hist_item_id": [-1] * victim["hist_len"]})
    overwrite_where(
        frame(spark, rows), REQUEST_SAMPLES, REQUEST_SAMPLES.location(warehouse), f"date = '{day}'"
    )
    # the rerun replaces the partition (idempotent): the good user-days again, none twice
    summary = build_user_day_samples.run(spark, Args(date=day, warehouse=warehouse))
    q = (
        spark.read.format("delta")
        .load(QUARANTINE.location(warehouse))
        .where((F.col("source_table") == REQUEST_SAMPLES.name) & (F.col("date") == day))
    )
    same_user = [r for r in rows if r["user_id"] == victim["user_id"]]
    assert summary["quarantined_requests"] == q.count() == len(same_user)
    assert {r["reason"] for r in q.collect()} == {INCONSISTENT_HISTORIES}
    assert summary["requests"] + len(same_user) == len(rows)
    implied = _implied(spark, warehouse, USER_DAY_SAMPLES_STAGING, day)
    assert implied == {r["request_id"]: r for r in rows if r["user_id"] != victim["user_id"]}


def test_build_job_needs_the_published_day(spark: SparkSession, warehouse: str) -> None:
    with pytest.raises(MissingTableError, match="table request_samples not found at .*--warehouse"):
        build_user_day_samples.run(spark, Args(date=DAY, warehouse=warehouse))
    overwrite_where(frame(spark, EXAMPLE), REQUEST_SAMPLES, REQUEST_SAMPLES.location(warehouse), None)
    with pytest.raises(MissingTableError, match="no rows for date 2026-02-03 .* publish request_samples"):
        build_user_day_samples.run(spark, Args(date="2026-02-03", warehouse=warehouse))


def test_build_flags_map_to_args() -> None:
    assert build_user_day_samples.parse_args(["--date", DAY]) == Args(date=DAY)
    ungated = build_user_day_samples.parse_args(
        ["--warehouse", "wh", "--date", DAY, "--output", "user_day_samples"]
    )
    assert ungated == Args(date=DAY, warehouse="wh", output=USER_DAY_SAMPLES)


def test_gate_passes_then_publishes_and_fails_bad_rows_naming_rule_and_row(
    spark: SparkSession, warehouse: str
) -> None:
    """build -> validate --table user_day_samples -> publish --table user_day_samples on the example;
    then a staged partition with offsets out of order, a slice that reaches its request_ts and a
    window longer than l_max + the day's events (events no request reads) fails the gate with each
    rule and a sample row, and publish refuses it: user_day_samples keeps the passing version."""
    overwrite_where(frame(spark, EXAMPLE), REQUEST_SAMPLES, REQUEST_SAMPLES.location(warehouse), None)
    build_user_day_samples.run(spark, Args(date=DAY, warehouse=warehouse))
    gate = GateThresholds(l_max=3)
    verdict = validate.run(
        spark, validate.Args(date=DAY, warehouse=warehouse, thresholds=gate, table="user_day_samples")
    )
    assert verdict["success"] and verdict["rows"] == 3
    published = publish.run(spark, publish.Args(date=DAY, warehouse=warehouse, table="user_day_samples"))
    assert published["rows"] == 3 and published["table"] == "user_day_samples"
    assert _implied(spark, warehouse, USER_DAY_SAMPLES, DAY) == {r["request_id"]: r for r in EXAMPLE}
    version = published["version"]

    staging = USER_DAY_SAMPLES_STAGING.location(warehouse)
    rows = {r["user_id"]: r.asDict() for r in spark.read.format("delta").load(staging).collect()}
    # User 4: user 2's day with l_max + 1 older events before its first request's history, which no
    # request reads: a window longer than l_max + the day's events, every offset shifted past them.
    two, extra = rows[2], gate.l_max + 1
    rows[4] = {**two, "user_id": 4, "window_len": two["window_len"] + extra,
               **{c: [1 + k for k in range(extra)] + two[c] for c in HIST_ARRAYS},
               "hist_start": [s + extra for s in two["hist_start"]],
               "hist_end": [e + extra for e in two["hist_end"]]}  # fmt: skip
    rows[1]["hist_start"] = [0, 1, 0, 3]  # offsets out of order
    rows[2]["hist_end"] = [2, 6]  # past the window (5 events)
    rows[3] = {**rows[3], "window_len": 1, "hist_ts": [7], **{c: [1] for c in HIST_ARRAYS if c != "hist_ts"},
               "hist_start": [0], "hist_end": [1]}  # fmt: skip  # event at 7 >= request_ts 5
    bad = spark.createDataFrame(
        [tuple(r[c] for c in USER_DAY_SAMPLES.column_names) for r in rows.values()],
        USER_DAY_SAMPLES_STAGING.spark_schema(),
    )
    overwrite_where(bad, USER_DAY_SAMPLES_STAGING, staging, f"date = '{DAY}'")
    with pytest.raises(validate.QualityGateError) as failed:
        validate.run(
            spark, validate.Args(date=DAY, warehouse=warehouse, thresholds=gate, table="user_day_samples")
        )
    message = str(failed.value)
    for rule in ("qc_offsets_non_decreasing", "qc_offsets_in_window", "qc_slice_before_request"):
        assert re.search(rf"{rule} broken, e.g. by user_id=[123], date='{DAY}'", message), rule
    assert re.search(rf"qc_window_all_read broken, e.g. by user_id=[24], date='{DAY}'", message)
    assert "max_slice_len <= l_max broken" in message  # user 2's last slice is 4 > l_max 3
    checks = {r["user_id"]: r for r in bad.transform(with_user_day_row_checks).collect()}
    assert [checks[u]["qc_offsets_non_decreasing"] for u in (1, 2, 3)] == [False, True, True]
    assert [checks[u]["qc_offsets_in_window"] for u in (1, 2, 3)] == [True, False, True]
    assert [checks[u]["qc_slice_before_request"] for u in (1, 2, 3)] == [True, False, False]
    assert [checks[u]["qc_window_all_read"] for u in (1, 2, 3, 4)] == [True, False, True, False]
    broken = {rule for rule, ok in checks[4].asDict().items() if rule.startswith("qc_") and ok is False}
    assert broken == {"qc_window_all_read"}  # user 4 breaks that rule alone
    with pytest.raises(
        publish.PublishRefusedError, match="the quality gate failed for user_day_samples_staging"
    ):
        publish.run(spark, publish.Args(date=DAY, warehouse=warehouse, table="user_day_samples"))
    assert latest_version(spark, USER_DAY_SAMPLES.location(warehouse)) == version
