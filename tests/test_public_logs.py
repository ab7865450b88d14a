"""Public logs (MovieLens, Tmall) through the pipeline: parsing and quarantine reasons, bursts at
the session gap, labels, Tmall years, then the real ml-100k and a hand-made Tmall file imported
and run through build_user_history and build_request_samples unchanged: conservation and the
point-in-time rule on what they write."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.public_logs import TimeSplit
from jobs import build_request_samples, build_user_history, import_public_logs
from pipelines.public_logs import (
    MOVIELENS,
    MOVIELENS_CSV,
    TMALL,
    UNKNOWN_DATE,
    items_from_movies_csv,
    items_from_u_item,
    parse_interactions,
    rejected_to_quarantine,
    with_authors,
    with_feedback,
    with_requests,
)
from pipelines.validity import REJECT_REASON
from schemas import IMPRESSIONS, QUARANTINE, REQUEST_SAMPLES, USER_ACTIONS
from schemas.constants import MINUTE_MS, SECOND_MS, day_start_ms
from schemas.fields import TASKS
from trainer.config import STCAConfig
from trainer.train import TrainConfig, train

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parent.parent
# One week of the real MovieLens 100k release, kept with its README (tests/data/ml-100k-week).
ML100K = Path(__file__).resolve().parent / "data" / "ml-100k-week"
TMALL_SAMPLE = Path(__file__).resolve().parent / "data" / "tmall_2014_sample.csv"
# The integration test imports ml-100k's busiest week (10,365 of the 100,000 ratings, 7 of 213
# days): an import writes one file per date and table, so the full file's 213 days cost more
# than this test's share of the suite. docs/benchmarks.md's numbers come from the full file.
ML100K_WEEK = ("1997-11-12", "1997-11-19")  # [first, last) UTC days
ML100K_WEEK_RATINGS = 10_365


def _lines(spark: SparkSession, lines: list[str]) -> DataFrame:
    return spark.createDataFrame([(x,) for x in lines], "line string")


# ---- parsing ----------------------------------------------------------------------------------


def test_parse_interactions_movielens_tags_each_bad_line_with_its_field(spark: SparkSession) -> None:
    lines = [
        "196\t242\t3\t881250949",
        "196\t242\t3",  # a field short
        "x\t242\t3\t881250949",
        "196\t\t3\t881250949",
        "196\t242\tfive\t881250949",
        "196\t242\t7\t881250949",
        "196\t242\t3\tyesterday",
        "196\t242\t3\t881250949000",  # milliseconds, not seconds
    ]
    rows = _lines(spark, lines).transform(parse_interactions(MOVIELENS)).collect()
    assert [r[REJECT_REASON] for r in rows] == [
        None, "wrong_field_count", "unparsable_user_id", "unparsable_item_id", "unparsable_rating",
        "rating_out_of_range", "unparsable_timestamp", "timestamp_out_of_range",
    ]  # fmt: skip
    r0 = rows[0]
    assert (r0["user_id"], r0["item_id"], r0["rating"], r0["ts_ms"]) == (196, 242, 3.0, 881250949000)


def test_parse_interactions_ratings_csv_skips_its_header_and_reads_half_stars(spark: SparkSession) -> None:
    lines = [
        "\ufeffuserId,movieId,rating,timestamp",
        "1,31,2.5,1260759144",
        "1,1029,3.0,1260759179",
        "1,x,3.0,1",
    ]
    tagged = _lines(spark, lines).transform(parse_interactions(MOVIELENS_CSV))
    rows = tagged.collect()
    assert [r[REJECT_REASON] for r in rows] == ["header", None, None, "unparsable_movieId"]
    assert [r["rating"] for r in rows[1:3]] == [2.5, 3.0]
    # headers are not data: never quarantined; the rest keep their raw line
    q = tagged.transform(rejected_to_quarantine(MOVIELENS_CSV.source_table)).collect()
    assert [(r["source_table"], r["reason"], r["row_json"], r["date"]) for r in q] == [
        ("public_logs:movielens-csv", "unparsable_movieId", '{"line":"1,x,3.0,1"}', "1970-01-01")
    ]


def test_parse_interactions_tmall_accepts_month_day_forms_and_takes_the_year(spark: SparkSession) -> None:
    lines = ["1,2,0,4月15日", "1,2,1,04-15", "1,2,2,4/15", "1,2,3,0415", "1,2,0,2013-05-01",
             "1,2,0,02-29", "1,2,0,13-01", "1,2,4,04-15", "1,2,x,04-15", "1,2,0,"]  # fmt: skip
    tagged = _lines(spark, lines).transform(parse_interactions(TMALL, year=2014))
    rows = tagged.collect()
    assert [r[REJECT_REASON] for r in rows] == [None] * 5 + [
        "unparsable_visit_datetime",  # no 29 February in 2014: the year decides
        "unparsable_visit_datetime", "unknown_type", "unparsable_type", "unparsable_visit_datetime",
    ]  # fmt: skip
    assert [r["ts_ms"] for r in rows[:5]] == [day_start_ms("2014-04-15")] * 4 + [day_start_ms("2013-05-01")]
    assert [r["type"] for r in rows[:4]] == [0, 1, 2, 3]
    q = tagged.transform(rejected_to_quarantine(TMALL.source_table)).collect()
    # dated by the parsed day where there is one; the epoch's day where the date itself is bad
    assert sorted((r["reason"], r["date"]) for r in q) == [
        ("unknown_type", "2014-04-15"), ("unparsable_type", "2014-04-15"),
        *[("unparsable_visit_datetime", UNKNOWN_DATE)] * 3,
    ]  # fmt: skip


# ---- labels, authors, bursts ------------------------------------------------------------------


def test_with_feedback_maps_ratings_and_tmall_types_to_labels_and_action_bits(spark: SparkSession) -> None:
    ml = spark.createDataFrame(
        [(r,) for r in (1.0, 2.0, 2.5, 3.0, 4.0, 4.5, 5.0)], "rating double"
    ).transform(with_feedback(MOVIELENS))
    # (finish, skip, like, comment, share, follow), action
    assert [(tuple(r[t] for t in TASKS), r["action"]) for r in ml.collect()] == [
        ((0, 1, 0, 0, 0, 0), 65), ((0, 1, 0, 0, 0, 0), 65), ((0, 0, 0, 0, 0, 0), 1), ((0, 0, 0, 0, 0, 0), 1),
        ((1, 0, 0, 0, 0, 0), 3), ((1, 0, 0, 0, 0, 0), 3), ((1, 0, 1, 0, 0, 0), 7),
    ]  # fmt: skip
    tm = spark.createDataFrame([(k,) for k in (0, 1, 2, 3)], "type int").transform(with_feedback(TMALL))
    assert [(tuple(r[t] for t in TASKS), r["action"]) for r in tm.collect()] == [
        ((0, 0, 0, 0, 0, 0), 1), ((1, 0, 0, 0, 0, 0), 3), ((0, 0, 1, 0, 0, 0), 5), ((0, 0, 0, 0, 0, 1), 33),
    ]


def _events(spark: SparkSession, rows: list[tuple[int, int, int, float]]) -> DataFrame:
    """(user, item, ts_ms, rating) -> valid interactions with labels and authors."""
    df = spark.createDataFrame(rows, "user_id long, item_id long, ts_ms long, rating double")
    return df.transform(with_feedback(MOVIELENS)).transform(with_authors(None))


def test_with_requests_cuts_bursts_where_the_gap_exceeds_the_session_gap(spark: SparkSession) -> None:
    gap = 30 * MINUTE_MS
    t0 = 1_000_000_000
    events = _events(spark, [
        (1, 10, t0, 4.0), (1, 11, t0, 2.0),  # same second: ordered by item_id
        (1, 12, t0 + gap, 5.0),  # exactly the gap: same burst
        (1, 10, t0 + gap + 5, 5.0),  # a repeat in the burst folds into the first target
        (1, 13, t0 + 2 * gap + 6, 3.0),  # gap + 1 ms: a new burst
        (2, 10, t0 + 1, 1.0),
    ])  # fmt: skip
    rows = events.transform(with_requests(gap)).orderBy("user_id", "request_ts", "position").collect()
    got = [(r["user_id"], r["request_ts"], r["position"], r["item_id"], r["event_ts"], r["folded"],
            r["finish"], r["like"], r["skip"])
           for r in rows]  # fmt: skip
    assert got == [
        (1, t0, 0, 10, t0, 2, 1, 1, 0),  # folded: finish from 4.0, like from the repeat's 5.0
        (1, t0, 1, 11, t0, 1, 0, 0, 1),
        (1, t0, 2, 12, t0 + gap, 1, 1, 1, 0),
        (1, t0 + 2 * gap + 6, 0, 13, t0 + 2 * gap + 6, 1, 0, 0, 0),
        (2, t0 + 1, 0, 10, t0 + 1, 1, 0, 0, 1),
    ]
    assert all(r["event_ts"] >= r["request_ts"] for r in rows)
    # pages of at most 2 targets: a request per page, starting at its first item's time
    paged = (
        events.transform(with_requests(gap, max_targets=2))
        .where("user_id = 1")
        .orderBy("request_ts", "page", "position")
        .collect()
    )
    assert [(r["page"], r["position"], r["item_id"], r["request_ts"]) for r in paged] == [
        (0, 0, 10, t0), (0, 1, 11, t0), (1, 0, 12, t0 + gap), (0, 0, 13, t0 + 2 * gap + 6)
    ]


def test_item_files_give_the_first_genre_as_author(spark: SparkSession) -> None:
    flags = ["0"] * 19
    u_item = [
        "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(["0", "0", "0", "1", "1", *flags[5:]]),
        "2|No genre|01-Jan-1995||http://x|" + "|".join(flags),
        "3|Broken|01-Jan-1995||http://x|0|1",
    ]
    got = _lines(spark, u_item).transform(items_from_u_item).collect()
    assert [(r["item_id"], r["author_id"], r[REJECT_REASON]) for r in got] == [
        (1, 3, None), (2, 0, None), (3, 0, "item_file_unparsable")
    ]  # Animation is genre 3 of u.genre
    movies = spark.createDataFrame(
        [("1", "Toy Story (1995)", "Adventure|Animation"), ("2", "Jumanji", "Children|Fantasy"),
         ("3", "X", "(no genres listed)"), ("4", "Y", "Mockumentary"), ("z", "Bad", "Drama")],
        "movieId string, title string, genres string",
    ).withColumn("line", F.concat_ws(",", "movieId", "title", "genres"))  # fmt: skip
    by_line = {
        r["line"]: (r["item_id"], r["author_id"], r[REJECT_REASON])
        for r in movies.transform(items_from_movies_csv).collect()
    }
    assert by_line["1,Toy Story (1995),Adventure|Animation"] == (1, 2, None)
    # ml-latest "Children" = ml-100k "Children's"
    assert by_line["2,Jumanji,Children|Fantasy"] == (2, 4, None)
    assert by_line["3,X,(no genres listed)"] == (3, 0, None)
    assert 1000 <= by_line["4,Y,Mockumentary"][1] < 1_001_000
    assert by_line["z,Bad,Drama"] == (None, 8, "item_file_unparsable")  # Drama = 8; the row is quarantined


def test_parse_args_rejects_options_of_the_other_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        import_public_logs.parse_args(
            ["--format", "movielens", "--input", str(TMALL_SAMPLE), "--year", "2015"]
        )
    assert "--year applies to --format tmall only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        import_public_logs.parse_args(["--format", "tmall", "--input", "/nonexistent/log.csv"])
    assert "input '/nonexistent/log.csv' does not exist" in capsys.readouterr().err


# ---- integration: import, then the normal jobs ------------------------------------------------


def _run_days(spark: SparkSession, warehouse: str, days: list[str]) -> list[dict[str, Any]]:
    """Bootstrap the state as of the day before days[0], then samples and state day by day."""

    def history(date: str) -> dict[str, Any]:
        return build_user_history.run(spark, build_user_history.Args(date=date, warehouse=warehouse))

    before = (dt.date.fromisoformat(days[0]) - dt.timedelta(days=1)).isoformat()
    boot = history(before)
    assert boot["bootstrap"] is True and boot["quarantined"] == {}
    out = []
    for day in days:
        samples = build_request_samples.Args(date=day, warehouse=warehouse)
        out.append(build_request_samples.run(spark, samples))
        assert history(day)["quarantined"] == {}
    return out


def _samples_path(warehouse: str, summaries: list[dict[str, Any]]) -> str:
    """build_request_samples names the table it wrote (the product, or the quality gate's staging table)."""
    tables = {str(s.get("table", REQUEST_SAMPLES.name)) for s in summaries}
    assert len(tables) == 1
    return REQUEST_SAMPLES.location(warehouse).rsplit("/", 1)[0] + "/" + tables.pop()


def _check_samples(
    spark: SparkSession, warehouse: str, days: list[str], summaries: list[dict[str, Any]]
) -> list[Any]:
    """Conservation per day and the point-in-time rule against the imported user_actions."""
    imps = spark.read.format("delta").load(IMPRESSIONS.location(warehouse))
    for day, s in zip(days, summaries, strict=True):
        read = imps.where(F.col("date") == day).count()
        assert s["impressions_read"] == read == s["targets"] + sum(s["quarantined"].values())
        assert s["quarantined"] == {}  # the import writes only valid rows
    samples = (
        spark.read.format("delta")
        .load(_samples_path(warehouse, summaries))
        .where(F.col("date").isin(days))
        .collect()
    )
    users = sorted({r["user_id"] for r in samples})
    actions: dict[int, list[int]] = {}
    user_actions = spark.read.format("delta").load(USER_ACTIONS.location(warehouse))
    for a in user_actions.where(F.col("user_id").isin(users)).collect():
        actions.setdefault(a["user_id"], []).append(a["event_ts"])
    for r in samples:
        assert all(ts < r["request_ts"] for ts in r["hist_ts"]), r["request_id"]
        assert r["hist_ts"] == sorted(r["hist_ts"])
        assert r["hist_len"] == sum(1 for ts in actions[r["user_id"]] if ts < r["request_ts"])
        assert r["tgt_position"] == list(range(r["num_targets"]))
    return samples


def test_ml100k_imports_and_runs_through_the_pipeline(
    spark: SparkSession, warehouse: str, tmp_path: Path
) -> None:
    subset = ML100K
    first, last = (day_start_ms(d) // SECOND_MS for d in ML100K_WEEK)
    with (ML100K / "u.data").open() as src:
        kept = [line for line in src if first <= int(line.split("\t")[3]) < last]
    args = import_public_logs.Args(
        fmt=MOVIELENS, inputs=(str(subset / "u.data"),), warehouse=warehouse, items=str(ML100K / "u.item")
    )
    summary = import_public_logs.run(spark, args)
    assert (
        summary["lines_read"]
        == len(kept)
        == summary["impressions"]
        == summary["user_actions"]
        == ML100K_WEEK_RATINGS
    )
    assert summary["quarantined"] == {} and summary["folded_repeats"] == 0
    assert summary["item_rows"] == 1682 and summary["item_rows_quarantined"] == 0

    # the busiest day after the first (so there is a history to bootstrap)
    imps = spark.read.format("delta").load(IMPRESSIONS.location(warehouse))
    per_day = Counter({r["date"]: r["count"] for r in imps.groupBy("date").count().collect()})
    day = max(sorted(per_day)[1:], key=lambda d: (per_day[d], d))
    summaries = _run_days(spark, warehouse, [day])
    samples = _check_samples(spark, warehouse, [day], summaries)
    assert samples and any(r["hist_len"] > 0 for r in samples)

    # the trainer reads the imported requests unchanged: a short STCA run trains and evaluates
    table = _samples_path(warehouse, summaries)
    run = train(TrainConfig(table=table, out=str(tmp_path / "run"), eval_date=day,
                            steps=3, batch_size=8, warmup=1, length_min=8, length_max=512, length_mean=64.0,
                            eval_lengths=(16, 512), checkpoint_every=10**9, device="cpu",
                            model_config=STCAConfig(d=16, heads=2, layers=1, id_dim=8,
                                                    head_hidden=16)))  # fmt: skip
    assert run["train"]["steps"] == 3 and math.isfinite(run["train"]["loss_last_10"])
    assert 0.0 <= run["eval"]["512"]["finish"]["auc"] <= 1.0


def test_tmall_sample_imports_with_quarantine_and_runs_through_the_pipeline(
    spark: SparkSession, warehouse: str
) -> None:
    """Built day by day and in one --to-date pass (how benchmarks.public_logs builds ml-100k's 215
    days), the samples are the same rows; a row's date is its request_ts's UTC day, so the
    benchmark's split by date keeps every evaluation request out of training."""
    args = import_public_logs.Args(fmt=TMALL, inputs=(str(TMALL_SAMPLE),), warehouse=warehouse)
    argv = ["--warehouse", warehouse, "--format", "tmall", "--input", str(TMALL_SAMPLE)]
    assert import_public_logs.parse_args(argv) == args  # the CLI maps onto the typed core
    summary = import_public_logs.run(spark, args)
    assert summary["lines_read"] == 28 and summary["header_lines"] == 1
    assert summary["quarantined"] == {
        "unknown_type": 1, "unparsable_brand_id": 1, "unparsable_user_id": 1, "unparsable_visit_datetime": 2,
        "wrong_field_count": 1,
    }  # fmt: skip
    # 21 parsed lines -> 16 targets (5 repeats of a brand in a user-day folded) in 10 user-day requests
    assert (
        summary["interactions"],
        summary["impressions"],
        summary["folded_repeats"],
        summary["requests"],
    ) == (21, 16, 5, 10)
    assert summary["dates"] == ["2014-04-15", "2014-04-17"] and summary["year"] == 2014
    q = (
        spark.read.format("delta")
        .load(QUARANTINE.location(warehouse))
        .where(F.col("source_table") == "public_logs:tmall")
    )
    assert q.count() == 6

    days = ["2014-04-16", "2014-04-17"]
    checked = _check_samples(spark, warehouse, days, _run_days(spark, warehouse, days))
    samples = {r["request_id"]: r for r in checked}
    day = day_start_ms("2014-04-17")
    s = samples[f"tmall:101:{day}:0"]
    # user 101's earlier days, oldest first, ties by item_id; cart + buy of 2002 folded into one event
    assert s["hist_item_id"] == [2001, 2002, 2001, 2003]
    assert s["hist_action"] == [1, 1 + 2 + 32, 1 + 4, 1]
    assert (s["tgt_item_id"], s["label_finish"]) == ([2004, 2005], [0, 1])

    backfill = build_request_samples.Args(
        date="2014-04-15", to_date="2014-04-17", warehouse=warehouse, allow_no_state=True,
        output=REQUEST_SAMPLES,
    )  # fmt: skip
    ranged = build_request_samples.run(spark, backfill)
    counts = (ranged["impressions_read"], ranged["targets"], ranged["requests"], ranged["quarantined"])
    assert counts == (16, 16, 10, {})
    built = spark.read.format("delta").load(REQUEST_SAMPLES.location(warehouse)).collect()
    rows = {r["request_id"]: r.asDict() for r in built}
    in_days = {k: r for k, r in rows.items() if r["date"] in days}
    assert len(rows) == 10 and in_days == {k: r.asDict() for k, r in samples.items()}
    split = TimeSplit.at("2014-04-17", "2014-04-15", "2014-04-17")
    assert (split.train_to, split.eval_from, split.eval_to) == ("2014-04-16", "2014-04-17", "2014-04-17")
    for r in rows.values():
        assert r["date"] == import_public_logs.utc_day(r["request_ts"])
        assert (r["date"] <= split.train_to) == (r["request_ts"] < day_start_ms(split.eval_from))
    with pytest.raises(ValueError, match="must be after the first day"):
        TimeSplit.at("2014-04-15", "2014-04-15", "2014-04-17")
