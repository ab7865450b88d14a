"""MIND impression logs (pipelines/mind.py): parsing with quarantine reasons, targets in listed
order with finish = clicked, clicks inside the window at their impression's time, the history
column placed strictly before the user's first request; then the real cut in tests/data imported
and run through build_user_history and build_request_samples: conservation and point in time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from jobs import build_request_samples, import_public_logs
from pipelines.mind import (
    CLICK_ACTION,
    MIND,
    MIND_CATEGORIES,
    PRE_WINDOW_SPACING_MS,
    items_from_news,
    mind_targets,
    parse_behaviors,
    pre_window_clicks,
    window_clicks,
)
from pipelines.public_logs import HASHED_GENRE_OFFSET, UNKNOWN_AUTHOR
from pipelines.validity import REJECT_REASON, valid_rows
from schemas import REQUEST_SAMPLES, USER_ACTIONS

pytestmark = pytest.mark.spark


def _lines(spark: SparkSession, lines: list[str]) -> DataFrame:
    return spark.createDataFrame([(x,) for x in lines], "line string")


def _ms(text: str) -> int:
    return int(dt.datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=dt.UTC).timestamp() * 1000)


GOOD = [
    "7\tU10\t11/12/2019 2:14:46 PM\tN1 N2 N1\tN5-0 N6-1 N7-0",
    "8\tU10\t11/11/2019 9:00:00 AM\tN1 N2 N1\tN6-0 N8-1",  # U10's earliest line
    "9\tU11\t11/12/2019 12:00:01 AM\t\tN5-1",  # empty history
]
BAD = [
    "10\tU12\t11/12/2019 2:14:46 PM\tN1",  # 4 fields
    "x1\tU12\t11/12/2019 2:14:46 PM\tN1\tN5-0",
    "11\tuser12\t11/12/2019 2:14:46 PM\tN1\tN5-0",
    "12\tU12\t2019-11-12 14:14:46\tN1\tN5-0",
    "13\tU12\t11/12/2019 2:14:46 PM\tN1 X2\tN5-0",
    "14\tU12\t11/12/2019 2:14:46 PM\tN1\tN5-2",
    "15\tU12\t11/12/2019 2:14:46 PM\tN1\t ",
]


def test_parse_behaviors_tags_every_bad_line_with_its_first_reason(spark: SparkSession) -> None:
    rows = parse_behaviors(_lines(spark, GOOD + BAD)).collect()
    assert [r[REJECT_REASON] for r in rows] == [
        None, None, None, "wrong_field_count", "unparsable_impression_id", "unparsable_user",
        "unparsable_time",
        "unparsable_history", "unparsable_impressions", "no_impressions",
    ]  # fmt: skip
    first = rows[0]
    assert (first["user_id"], first["ts_ms"], first["history_items"]) == (
        10,
        _ms("11/12/2019 2:14:46 PM"),
        [1, 2, 1],
    )
    assert [(s["item_id"], s["clicked"]) for s in first["shown"]] == [(5, 0), (6, 1), (7, 0)]
    assert rows[2]["history_items"] == []


def test_targets_keep_the_listed_order_and_finish_is_the_click(spark: SparkSession) -> None:
    valid = valid_rows(parse_behaviors(_lines(spark, GOOD)))
    targets = sorted(mind_targets()(valid).collect(), key=lambda r: (r["request_id"], r["position"]))
    by_request = {(r["request_id"], r["position"]): r for r in targets}
    assert [(r["item_id"], r["finish"]) for r in targets if r["request_id"] == "mind:7"] == [
        (5, 0),
        (6, 1),
        (7, 0),
    ]
    assert all(r["skip"] == r["like"] == 0 for r in targets)
    assert by_request[("mind:8", 1)]["request_ts"] == _ms("11/11/2019 9:00:00 AM")
    assert all(r["author_id"] == UNKNOWN_AUTHOR for r in targets)


def test_clicks_become_events_at_their_impression_time_and_history_before_the_first_request(
    spark: SparkSession,
) -> None:
    valid = valid_rows(parse_behaviors(_lines(spark, GOOD)))
    clicks = sorted(
        (r["user_id"], r["item_id"], r["event_ts"], r["action"])
        for r in window_clicks(mind_targets()(valid)).collect()
    )
    assert clicks == sorted([
        (10, 6, _ms("11/12/2019 2:14:46 PM"), CLICK_ACTION),
        (10, 8, _ms("11/11/2019 9:00:00 AM"), CLICK_ACTION),
        (11, 5, _ms("11/12/2019 12:00:01 AM"), CLICK_ACTION),
    ])  # fmt: skip
    history = sorted(pre_window_clicks()(valid).collect(), key=lambda r: r["event_ts"])
    first = _ms("11/11/2019 9:00:00 AM")  # U10's earliest line, not the first line of the file
    assert [(r["user_id"], r["item_id"], r["event_ts"]) for r in history] == [
        (10, 1, first - 3 * PRE_WINDOW_SPACING_MS),
        (10, 2, first - 2 * PRE_WINDOW_SPACING_MS),
        (10, 1, first - 1 * PRE_WINDOW_SPACING_MS),
    ]


def test_items_from_news_maps_categories_to_authors(spark: SparkSession) -> None:
    lines = ["N1\tsports\tnfl\tTitle", "N2\tsomethingnew\tx\tTitle", "bad\tnews\tx", "N4"]
    rows = items_from_news(_lines(spark, lines)).collect()
    assert rows[0]["author_id"] == MIND_CATEGORIES.index("sports") + 1
    assert rows[1]["author_id"] >= HASHED_GENRE_OFFSET
    assert [r[REJECT_REASON] for r in rows] == [None, None, "item_file_unparsable", "item_file_unparsable"]


MIND_CUT = Path(__file__).resolve().parent / "data" / "mind-small-cut"
MIND_DAYS = ("2019-11-09", "2019-11-14")


def test_mind_cut_imports_and_runs_through_the_pipeline(spark: SparkSession, warehouse: str) -> None:
    """The real cut: conservation at import and at build, the point-in-time rule on every request,
    in-window clicks visible to the user's later requests only, the history column to all."""
    behaviors = (MIND_CUT / "behaviors.tsv").read_text().splitlines()
    slots = sum(len(line.split("\t")[4].split()) for line in behaviors)
    clicks = sum(t.endswith("-1") for line in behaviors for t in line.split("\t")[4].split())
    summary = import_public_logs.run(
        spark,
        import_public_logs.Args(
            fmt=MIND, inputs=(str(MIND_CUT / "behaviors.tsv"),), items=str(MIND_CUT / "news.tsv"),
            warehouse=warehouse,
        ),
    )  # fmt: skip
    assert (summary["lines_read"], summary["requests"], summary["quarantined"]) == (44, 44, {})
    assert (summary["impressions"], summary["clicks"]) == (slots, clicks)
    assert summary["user_actions"] == clicks + summary["pre_window_events"]
    assert summary["item_rows"] == 77 and summary["targets_with_unknown_author"] < slots
    assert summary["dates"][1] == MIND_DAYS[1] and summary["dates"][0] <= MIND_DAYS[0]

    # every day from the first event's in one pass, no earlier state: all events are in the range
    built = build_request_samples.run(
        spark,
        build_request_samples.Args(
            date=summary["dates"][0], to_date=summary["dates"][1], warehouse=warehouse,
            output=REQUEST_SAMPLES, allow_no_state=True,
        ),
    )  # fmt: skip
    assert (built["impressions_read"], built["targets"], built["requests"]) == (slots, slots, 44)
    assert built["quarantined"] == {}

    samples = spark.read.format("delta").load(REQUEST_SAMPLES.location(warehouse)).collect()
    actions: dict[int, list[int]] = {}
    for a in spark.read.format("delta").load(USER_ACTIONS.location(warehouse)).collect():
        actions.setdefault(a["user_id"], []).append(a["event_ts"])
    lines = {f"mind:{line.split(chr(9))[0]}": line.split("\t") for line in behaviors}
    for r in samples:
        fields = lines[r["request_id"]]
        assert all(ts < r["request_ts"] for ts in r["hist_ts"]), r["request_id"]
        assert r["hist_len"] == sum(1 for ts in actions[r["user_id"]] if ts < r["request_ts"])
        # the history column, in listed order, opens every request's history
        listed = [int(t[1:]) for t in fields[3].split()]
        assert r["hist_item_id"][: len(listed)] == listed
        shown = [t.split("-") for t in fields[4].split()]
        assert r["tgt_item_id"] == [int(n[1:]) for n, _ in shown]
        assert r["label_finish"] == [int(c) for _, c in shown]
    # a user's earlier clicks reach their later requests
    by_user: dict[int, list[Any]] = {}
    for r in samples:
        by_user.setdefault(r["user_id"], []).append(r)
    later = [sorted(rs, key=lambda r: r["request_ts"]) for rs in by_user.values() if len(rs) > 1]
    assert later and all(rs[-1]["hist_len"] >= rs[0]["hist_len"] for rs in later)
    grew = [
        rs for rs in later
        if any(rs[i + 1]["hist_len"] > rs[i]["hist_len"] for i in range(len(rs) - 1))
    ]  # fmt: skip
    assert grew, "no multi-request user has a click in an earlier request"
