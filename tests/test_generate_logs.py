"""The synthetic logs: contract shape, reproducibility, realism, planted signal, bad rows, and the
job's idempotent range-scoped writes (synthetic/logs.py, jobs/generate_logs.py).

Building a generator's plan costs about 2 s of Python-to-JVM calls, so the frames are built once
per module and cached, and DataFrames are compared by a one-pass fingerprint."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import generate_logs
from jobs.delta_io import latest_version
from pipelines.checks import MissingColumnsError
from pipelines.validity import utc_date
from schemas import IMPRESSIONS, USER_ACTIONS, TableContract
from schemas.fields import ACTION_BITS, TASKS
from synthetic.logs import (
    ACTION_FAULTS,
    IMPRESSION_FAULTS,
    SyntheticConfig,
    SyntheticConfigError,
    actions_from_impressions,
    clean_impressions,
    creator_affinity,
    generate_actions,
    generate_impressions,
    warmup_actions,
    with_impression_bad_rows,
    with_user_profile,
)

pytestmark = pytest.mark.spark

TINY = SyntheticConfig(
    seed=7,
    start_date="2026-01-01",
    num_days=1,
    history_days=2,
    recent_days=1,
    num_users=50,
    num_items=1_000,
    max_events=500,
    affinity_logit=2.0,
)
# Two request days, so "outside its date" moves rows to the neighbouring date.
BAD = dataclasses.replace(TINY, num_days=2, bad_row_rate=0.08)


class Logs(NamedTuple):
    clean: DataFrame  # clean_impressions
    impressions: DataFrame  # with bad rows when the config has them
    actions: DataFrame


def _users(spark: SparkSession, cfg: SyntheticConfig) -> DataFrame:
    return spark.range(cfg.num_users).withColumnRenamed("id", "user_id")


def _logs(spark: SparkSession, cfg: SyntheticConfig) -> Logs:
    users = _users(spark, cfg)
    clean = users.transform(clean_impressions(cfg)).cache()
    impressions = clean.transform(with_impression_bad_rows(cfg)).cache()
    return Logs(clean, impressions, users.transform(generate_actions(cfg, clean)).cache())


@pytest.fixture(scope="module")
def tiny(spark: SparkSession) -> Logs:
    return _logs(spark, TINY)


@pytest.fixture(scope="module")
def bad(spark: SparkSession) -> Logs:
    return _logs(spark, BAD)


def _fingerprint(df: DataFrame) -> tuple[int, int]:
    """(rows, sum of row hashes): equal for equal multisets of rows, in one pass without a shuffle."""
    row = df.agg(F.count("*"), F.sum(F.xxhash64(*df.columns).cast("decimal(38,0)"))).first()
    assert row is not None
    return int(row[0]), int(row[1] or 0)


def _same_rows(a: DataFrame, b: DataFrame) -> bool:
    return _fingerprint(a) == _fingerprint(b)


def _interest(cfg: SyntheticConfig) -> Column:
    topic = F.col("item_id") % cfg.num_topics
    return (topic == F.col("interest_topic_1")) | (topic == F.col("interest_topic_2"))


def _schema(df: DataFrame) -> list[tuple[str, str]]:
    return [(f.name, f.dataType.simpleString()) for f in df.schema]


def _contract_schema(contract: TableContract) -> list[tuple[str, str]]:
    return [(f.name, f.dataType.simpleString()) for f in contract.spark_schema()]


def test_generate_columns_and_types_match_contracts(tiny: Logs, bad: Logs) -> None:
    for logs in (tiny, bad):
        assert _schema(logs.impressions) == _contract_schema(IMPRESSIONS)
        assert _schema(logs.actions) == _contract_schema(USER_ACTIONS)


def test_generate_same_seed_same_rows_whatever_the_partitioning(spark: SparkSession, bad: Logs) -> None:
    users = _users(spark, BAD).repartition(3)
    assert _same_rows(users.transform(generate_impressions(BAD)), bad.impressions)
    assert _same_rows(users.transform(generate_actions(BAD)), bad.actions)
    reseeded = dataclasses.replace(BAD, seed=BAD.seed + 1)
    assert not _same_rows(users.transform(generate_actions(reseeded)), bad.actions)


def test_clean_impressions_day_does_not_depend_on_the_range(spark: SparkSession, bad: Logs) -> None:
    second_day_alone = dataclasses.replace(BAD, start_date="2026-01-02", num_days=1)
    alone = _users(spark, BAD).transform(clean_impressions(second_day_alone))
    assert _same_rows(bad.clean.where("date = '2026-01-02'"), alone)


def test_item_popularity_is_heavy_tailed(tiny: Logs) -> None:
    per_item = tiny.actions.groupBy("item_id").count()
    top = per_item.orderBy(F.desc("count")).limit(TINY.num_items // 100).agg(F.sum("count")).first()
    assert top is not None
    assert top[0] / tiny.actions.count() > 0.2  # top 1% of items: 20x their share under uniform popularity


def test_warmup_history_lengths_span_orders_of_magnitude(spark: SparkSession) -> None:
    cfg = dataclasses.replace(TINY, num_users=300, min_events=20, max_events=20_000)
    lengths = _users(spark, cfg).transform(warmup_actions(cfg)).groupBy("user_id").count()
    row = lengths.agg(F.min("count"), F.max("count"), F.expr("percentile(count, 0.5)")).first()
    assert row is not None
    shortest, longest, median = row
    assert shortest < 50 and longest > 5_000 and median < 1_000


def test_actions_from_impressions_follow_their_request_on_the_same_day(tiny: Logs) -> None:
    watched = tiny.clean.where("watch_ms > 0")
    derived = actions_from_impressions(tiny.clean)
    assert derived.count() == watched.count() > 0
    # Items are distinct within a request and each request owns a disjoint time window, so every
    # action matches exactly one impression of the same user, item and day just before it.
    close = (
        derived.alias("a")
        .join(watched.alias("i"), ["user_id", "item_id", "date"])
        .where(
            (F.col("a.event_ts") > F.col("i.request_ts"))
            & (F.col("a.event_ts") <= F.col("i.request_ts") + TINY.max_event_offset_ms)
        )
    )
    assert close.count() == derived.count()
    assert derived.where(utc_date(F.col("event_ts")) != F.col("date")).isEmpty()


def test_generate_actions_hold_the_watched_targets(tiny: Logs) -> None:
    on_request_days = tiny.actions.where(F.col("date") >= TINY.start_date)
    assert _same_rows(on_request_days, actions_from_impressions(tiny.clean))


def test_requests_have_1_to_20_distinct_targets_at_positions_0_to_m_minus_1(tiny: Logs) -> None:
    per_request = tiny.clean.groupBy("request_id").agg(
        F.count("*").alias("m"),
        F.countDistinct("item_id").alias("items"),
        F.countDistinct("position").alias("positions"),
        F.min("position").alias("first"),
        F.max("position").alias("last"),
        F.countDistinct("user_id", "request_ts", "date").alias("heads"),
    )
    bad = per_request.where(
        (F.col("m") < 1)
        | (F.col("m") > 20)
        | (F.col("items") != F.col("m"))
        | (F.col("positions") != F.col("m"))
        | (F.col("first") != 0)
        | (F.col("last") != F.col("m") - 1)
        | (F.col("heads") != 1)
    )
    assert bad.isEmpty()
    assert per_request.agg(F.max("m")).first()[0] > 10  # type: ignore[index]


def test_planted_signal_interest_targets_finish_more_and_old_history_holds_interests(
    spark: SparkSession, tiny: Logs
) -> None:
    profile = _users(spark, TINY).transform(with_user_profile(TINY))
    rates = {
        r["interest"]: r["finish_rate"]
        for r in tiny.clean.join(profile, "user_id")
        .groupBy(_interest(TINY).alias("interest"))
        .agg(F.avg("finish").alias("finish_rate"))
        .collect()
    }
    assert rates[True] > rates[False] + 0.25
    warmup = tiny.actions.where(F.col("date") < TINY.start_date).join(profile, "user_id")
    shares = {
        r["old"]: r["share"]
        for r in warmup.groupBy((F.col("date") < TINY.day(-TINY.recent_days)).alias("old"))
        .agg(F.avg(_interest(TINY).cast("int")).alias("share"))
        .collect()
    }
    # 2 of 20 topics by chance is 0.1: recent events carry no interest signal, old ones do.
    assert shares[True] > 0.5 and shares[False] < 0.2


def _finish_rate_by_taste(df: DataFrame, finished: Column) -> dict[bool, float]:
    """Finish rate of rows whose author the user clearly likes (True) or dislikes (False)."""
    return {
        r["liked"]: r["rate"]
        for r in df.withColumn("affinity", creator_affinity(TINY))
        .where(F.abs("affinity") > 0.5)
        .groupBy((F.col("affinity") > 0).alias("liked"))
        .agg(F.avg(finished.cast("int")).alias("rate"))
        .collect()
    }


def test_planted_signal_creator_affinity_shows_in_targets_and_old_feedback_only(tiny: Logs) -> None:
    targets = _finish_rate_by_taste(tiny.clean, F.col("finish") == 1)
    assert targets[True] > targets[False] + 0.25
    warmup = tiny.actions.where(F.col("date") < TINY.start_date)
    finished = (F.col("action").bitwiseAND(ACTION_BITS["finish"])) > 0
    old = _finish_rate_by_taste(warmup.where(F.col("date") < TINY.day(-TINY.recent_days)), finished)
    recent = _finish_rate_by_taste(warmup.where(F.col("date") >= TINY.day(-TINY.recent_days)), finished)
    # Old feedback follows the taste; recent feedback is tasteless (only sampling noise differs).
    assert old[True] > old[False] + 0.25
    assert abs(recent[True] - recent[False]) < 0.08


def _count_where(**conditions: Column) -> list[Column]:
    return [F.count(F.when(cond, 1)).alias(name) for name, cond in conditions.items()]


def _impression_violations(df: DataFrame) -> dict[str, int]:
    """Rows (or requests) breaking each validity rule of docs/design.md, in two passes."""
    rows = df.agg(
        *_count_where(
            null_request_id=F.col("request_id").isNull(),
            null_user_id=F.col("user_id").isNull(),
            null_item_id=F.col("item_id").isNull(),
            null_request_ts=F.col("request_ts").isNull(),
            request_ts_outside_date=utc_date(F.col("request_ts")) != F.col("date"),
            label_out_of_range=F.greatest(*TASKS) > 1,
        )
    ).first()
    requests = (
        df.where(F.col("request_id").isNotNull())
        .groupBy("request_id")
        .agg(
            F.countDistinct("user_id", "request_ts").alias("heads"),
            F.count("item_id").alias("items"),
            F.countDistinct("item_id").alias("distinct_items"),
        )
        .agg(
            *_count_where(
                request_mismatch=F.col("heads") > 1,
                duplicate=F.col("items") > F.col("distinct_items"),
            )
        )
        .first()
    )
    assert rows is not None and requests is not None
    return {**rows.asDict(), **requests.asDict()}


def _action_violations(df: DataFrame) -> dict[str, int]:
    rows = df.agg(
        *_count_where(
            null_user_id=F.col("user_id").isNull(),
            null_item_id=F.col("item_id").isNull(),
            null_event_ts=F.col("event_ts").isNull(),
            event_ts_outside_date=utc_date(F.col("event_ts")) != F.col("date"),
        ),
        F.count("*").alias("rows"),
    ).first()
    assert rows is not None
    counts = rows.asDict()
    counts["duplicate"] = counts.pop("rows") - df.dropDuplicates(list(USER_ACTIONS.keys)).count()
    return counts


def test_bad_rows_every_kind_appears_and_rows_stay_in_range(bad: Logs) -> None:
    impression_violations, action_violations = (
        _impression_violations(bad.impressions),
        _action_violations(bad.actions),
    )
    assert set(impression_violations) == set(IMPRESSION_FAULTS)
    assert all(n > 0 for n in impression_violations.values()), impression_violations
    assert set(action_violations) == set(ACTION_FAULTS)
    assert all(n > 0 for n in action_violations.values()), action_violations
    # Corruption edits a few rows and adds duplicates; most good rows are still there.
    assert bad.clean.exceptAll(bad.impressions).count() < 0.1 * bad.clean.count()
    # Rows stay inside the range the job replaces.
    for df, (first, last) in ((bad.impressions, BAD.impression_dates), (bad.actions, BAD.action_dates)):
        assert df.where((F.col("date") < first) | (F.col("date") > last)).isEmpty()


def test_bad_rows_on_a_single_request_day_move_the_ts_not_the_date(spark: SparkSession) -> None:
    cfg = dataclasses.replace(TINY, bad_row_rate=0.08)
    impressions = _users(spark, cfg).transform(generate_impressions(cfg))
    assert _impression_violations(impressions)["request_ts_outside_date"] > 0
    assert {r["date"] for r in impressions.select("date").distinct().collect()} == {cfg.start_date}


def test_bad_row_rate_zero_has_no_violations(tiny: Logs) -> None:
    assert set(_impression_violations(tiny.impressions).values()) == {0}
    assert set(_action_violations(tiny.actions).values()) == {0}


def test_synthetic_config_rejects_bad_values() -> None:
    with pytest.raises(SyntheticConfigError, match=r"\['1 <= min_targets <= max_targets'\]"):
        SyntheticConfig(min_targets=5, max_targets=2)
    with pytest.raises(SyntheticConfigError, match="start_date must be YYYY-MM-DD, got '2026/01/01'"):
        SyntheticConfig(start_date="2026/01/01")


def test_generate_impressions_requires_user_id(spark: SparkSession) -> None:
    with pytest.raises(MissingColumnsError, match=r"with_user_profile: missing columns \['user_id'\]"):
        spark.range(3).transform(generate_impressions(TINY))


def _table(
    spark: SparkSession, warehouse: str, contract: TableContract, version: int | None = None
) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(contract.location(warehouse))


def _files(spark: SparkSession, warehouse: str, contract: TableContract, date: str) -> set[str]:
    table = _table(spark, warehouse, contract).where(F.col("date") == date)
    return {r[0] for r in table.select(F.input_file_name()).distinct().collect()}


def test_generate_logs_job_is_idempotent_and_writes_only_its_dates(
    spark: SparkSession, warehouse: str
) -> None:
    tables = (IMPRESSIONS, USER_ACTIONS)
    argv = [
        "--warehouse",
        warehouse,
        "--num-users",
        "10",
        "--num-items",
        "1000",
        "--max-events",
        "200",
        "--seed",
        "3",
    ]
    argv += ["--start-date", "2026-01-01", "--history-days", "2", "--recent-days", "1"]
    first = generate_logs.main([*argv, "--num-days", "2"])
    versions = {c.name: latest_version(spark, c.location(warehouse)) for c in tables}
    for c in tables:
        assert _table(spark, warehouse, c).count() == first["rows"][c.name] > 0
    untouched = {c.name: _files(spark, warehouse, c, "2026-01-02") for c in tables}

    # Rerun the first of the two request days: one commit per table that rewrites its dates with
    # the same rows (a day's rows depend on the day, not the range) and leaves 2026-01-02 alone.
    # The typed core, as the demo and benchmarks call it; parse_args maps the flags onto it.
    args = generate_logs.Args(warehouse=warehouse, config=SyntheticConfig(
        seed=3, start_date="2026-01-01", num_days=1, history_days=2, recent_days=1, num_users=10,
        num_items=1000, max_events=200,
    ))  # fmt: skip
    assert generate_logs.parse_args([*argv, "--num-days", "1"]) == args
    second = generate_logs.run(spark, args)
    assert second["impression_dates"] == ["2026-01-01", "2026-01-01"]
    assert second["action_dates"] == ["2025-12-30", "2026-01-01"]
    for c in tables:
        assert latest_version(spark, c.location(warehouse)) == versions[c.name] + 1
        assert _same_rows(_table(spark, warehouse, c), _table(spark, warehouse, c, versions[c.name]))
        assert _files(spark, warehouse, c, "2026-01-02") == untouched[c.name]
