"""MIND impression logs (Microsoft News) -> the project's `impressions` and `user_actions`.

Unlike the interaction logs of pipelines/public_logs.py, MIND records real feed requests: each
line of `behaviors.tsv` is one impression (a request) with the items shown in it and which were
clicked, so no request has to be invented:

* **Request**: one valid behaviors line. request_id `mind:<impression id>`, user_id the number of
  `U<n>`, request_ts the line's time (`M/D/YYYY h:mm:ss AM|PM`, taken as UTC: the release states
  no zone, and the UTC day is the partition key everywhere else).
* **Targets**: the line's `NEWSID-LABEL` tokens in their listed order (position 0, 1, ...);
  finish = LABEL (1 clicked, 0 shown and not clicked); the other tasks are 0 (MIND records only
  clicks). item_id is the number of `N<n>`. A news id listed twice in one line stays two
  impressions: the validity rules quarantine the repeat as a duplicate, counted, not dropped here.
* **Authors**: the news `category` of `news.tsv` (the only author-like field), as a fixed id per
  known MIND category (`MIND_CATEGORIES`, 1-based) or 1000 + a stable hash for another one;
  UNKNOWN_AUTHOR (0) for a news id without a row in the news file.
* **Events inside the window**: every clicked target is an event (play + finish) at its
  impression's request_ts. History is strict (`event_ts < request_ts`), so a click is never in
  its own request's history and is in the history of every later request of the user.
* **Events before the window**: the history column lists the user's clicks before the data
  window, oldest first, without times. They are taken from the user's earliest line (by
  request_ts, then impression id; MIND repeats the same list on every line of a user) and placed
  one second apart, ending one second before that earliest request:
  `event_ts_i = first_request_ts - (n - i) * 1000` for the i-th of n (i = 0 oldest). Every one is
  therefore strictly before every request of the user, and their order is the listed order. The
  real times are unknown; the spacing only keeps the order and the time-delta feature of these
  events is "just before the first request" (documented in docs/public-logs.md).

Lines that do not parse are tagged with the first reason (`wrong_field_count`,
`unparsable_impression_id`, `unparsable_user`, `unparsable_time`, `unparsable_history`,
`unparsable_impressions`, `no_impressions`) and go to `quarantine` through
`public_logs.rejected_to_quarantine`; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.checks import require_columns
from pipelines.public_logs import (
    ITEM_FILE_UNPARSABLE,
    LINE,
    TS,
    UNKNOWN_AUTHOR,
    WRONG_FIELD_COUNT,
    LogFormat,
    named_author,
    unparsable,
    with_authors,
)
from pipelines.validity import REJECT_REASON, first_failing
from schemas.constants import SECOND_MS
from schemas.fields import ACTION_BITS, TASKS

MIND = LogFormat(
    "mind", "\t", ("impression_id", "user", "time", "history"), None,
    "MIND behaviors.tsv: impression id <tab> U<user> <tab> M/D/YYYY h:mm:ss AM|PM <tab> history <tab> "
    "N<id>-0|1 ...",
)  # fmt: skip
BEHAVIORS_FIELDS = 5
TIME_PATTERN = "M/d/yyyy h:mm:ss a"
PRE_WINDOW_SPACING_MS = SECOND_MS
NO_IMPRESSIONS = "no_impressions"
UNPARSABLE_IMPRESSIONS = "unparsable_impressions"
UNPARSABLE_HISTORY = "unparsable_history"
CLICK_ACTION = ACTION_BITS["play"] | ACTION_BITS["finish"]

# The 18 categories of the MIND release (news.tsv's second field), in the release's own order of
# first appearance in MIND-small; ids 1..18. Others get HASHED_GENRE_OFFSET + a stable hash.
MIND_CATEGORIES: tuple[str, ...] = (
    "lifestyle", "health", "news", "sports", "weather", "entertainment", "autos", "travel",
    "foodanddrink", "tv", "finance", "movies", "video", "music", "kids", "middleeast",
    "northamerica", "games",
)  # fmt: skip

MIND_CATEGORY_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(MIND_CATEGORIES)}

# Intermediate columns of parsed behaviors lines.
IMPRESSION_ID = "impression_id"
HISTORY = "history_items"  # array<long>, oldest first
SHOWN = "shown"  # array<struct<item_id: long, clicked: int>>, listed order

_USER_RE, _ITEM_RE, _SHOWN_RE = r"^U(\d+)$", r"^N(\d+)$", r"^N(\d+)-([01])$"


def _tokens(text: Column) -> Column:
    """Space-separated tokens of a field; an empty field gives an empty array."""
    trimmed = F.trim(text)
    return F.when(trimmed == "", F.array().cast("array<string>")).otherwise(F.split(trimmed, r"\s+"))


def parse_behaviors(lines: DataFrame) -> DataFrame:
    """behaviors.tsv lines (`line`, optional `source_file`) -> + `impression_id`, `user_id`,
    `ts_ms` (request time, ms UTC), `history_items`, `shown` and `reject_reason` (null when the
    line parses). Grain: one row per line, none dropped."""
    require_columns(lines, [LINE], "parse_behaviors")
    parts = F.split(F.col(LINE), "\t")
    field = {i: F.trim(F.try_element_at(parts, F.lit(i + 1))) for i in range(BEHAVIORS_FIELDS)}
    user = F.regexp_extract(field[1], _USER_RE, 1)
    ts = F.unix_millis(F.try_to_timestamp(field[2], F.lit(TIME_PATTERN)))
    history = _tokens(F.coalesce(field[3], F.lit("")))
    shown = _tokens(F.coalesce(field[4], F.lit("")))
    parsed = lines.withColumns(
        {
            IMPRESSION_ID: field[0],
            "user_id": F.when(user != "", user).try_cast("long"),
            TS: ts,
            "_history_raw": history,
            "_shown_raw": shown,
        }
    )
    rules = [
        (F.size(parts) != BEHAVIORS_FIELDS, WRONG_FIELD_COUNT),
        (~F.col(IMPRESSION_ID).rlike(r"^\d+$"), unparsable(IMPRESSION_ID)),
        (F.col("user_id").isNull(), unparsable("user")),
        (F.col(TS).isNull(), unparsable("time")),
        (~F.forall("_history_raw", lambda t: t.rlike(_ITEM_RE)), UNPARSABLE_HISTORY),
        (~F.forall("_shown_raw", lambda t: t.rlike(_SHOWN_RE)), UNPARSABLE_IMPRESSIONS),
        (F.size("_shown_raw") == 0, NO_IMPRESSIONS),
    ]
    item_of = lambda t: F.regexp_extract(t, _ITEM_RE, 1).cast("long")  # noqa: E731
    shown_struct = lambda t: F.struct(  # noqa: E731
        F.regexp_extract(t, _SHOWN_RE, 1).cast("long").alias("item_id"),
        F.regexp_extract(t, _SHOWN_RE, 2).cast("int").alias("clicked"),
    )
    tagged = parsed.withColumn(REJECT_REASON, first_failing(rules))
    ok = F.col(REJECT_REASON).isNull()
    return tagged.withColumns(
        {
            HISTORY: F.when(ok, F.transform("_history_raw", item_of)),
            SHOWN: F.when(ok, F.transform("_shown_raw", shown_struct)),
        }
    ).drop("_history_raw", "_shown_raw")


def category_author(category: Column) -> Column:
    """author_id of a MIND category: its 1-based index in MIND_CATEGORIES, else 1000 + a hash."""
    return named_author(category, MIND_CATEGORY_IDS)


def items_from_news(lines: DataFrame) -> DataFrame:
    """news.tsv lines (`line`: id, category, subcategory, title, ...) -> item_id, author_id (the
    category, `category_author`), reject_reason (ITEM_FILE_UNPARSABLE without an `N<n>` id or a
    category). Grain: line."""
    require_columns(lines, [LINE], "items_from_news")
    parts = F.split(F.col(LINE), "\t")
    item = F.regexp_extract(F.trim(parts[0]), _ITEM_RE, 1)
    category = F.lower(F.trim(F.try_element_at(parts, F.lit(2))))
    bad = (item == "") | category.isNull() | (category == "")
    return lines.select(
        *lines.columns,
        F.when(~bad, item.cast("long")).alias("item_id"),
        F.when(~bad, category_author(category))
        .otherwise(F.lit(UNKNOWN_AUTHOR))
        .cast("long")
        .alias("author_id"),
        F.when(bad, F.lit(ITEM_FILE_UNPARSABLE)).alias(REJECT_REASON),
    )


def mind_targets(items: DataFrame | None = None) -> Callable[[DataFrame], DataFrame]:
    """Valid parsed lines -> one row per shown item: request_id, user_id, request_ts, item_id,
    author_id, position (listed order), the TASKS labels (finish = clicked). Grain: (line, slot)."""

    def _targets(valid: DataFrame) -> DataFrame:
        require_columns(valid, [IMPRESSION_ID, "user_id", TS, SHOWN], "mind_targets")
        slots = valid.select(
            F.concat(F.lit(f"{MIND.name}:"), F.col(IMPRESSION_ID)).alias("request_id"),
            "user_id",
            F.col(TS).alias("request_ts"),
            F.posexplode(SHOWN).alias("position", "_shown"),
        )
        labels = {t: (F.col("_shown.clicked") if t == "finish" else F.lit(0)).cast("int") for t in TASKS}
        out = slots.withColumns({"item_id": F.col("_shown.item_id"), **labels}).drop("_shown")
        return out.transform(with_authors(items)).withColumn("position", F.col("position").cast("int"))

    return _targets


def window_clicks(targets: DataFrame) -> DataFrame:
    """mind_targets rows -> one event per clicked target at its request_ts: user_id, item_id,
    author_id, event_ts, action (play + finish). Grain: clicked (line, slot)."""
    require_columns(targets, ["user_id", "item_id", "author_id", "request_ts", "finish"], "window_clicks")
    return targets.where(F.col("finish") == 1).select(
        "user_id",
        "item_id",
        "author_id",
        F.col("request_ts").alias("event_ts"),
        F.lit(CLICK_ACTION).alias("action"),
    )


def pre_window_clicks(items: DataFrame | None = None) -> Callable[[DataFrame], DataFrame]:
    """Valid parsed lines -> the history column of each user's earliest line as events before it
    (see the module docstring for the timestamps). Grain: (user, listed history slot)."""

    def _history(valid: DataFrame) -> DataFrame:
        require_columns(valid, ["user_id", TS, IMPRESSION_ID, HISTORY], "pre_window_clicks")
        earliest = Window.partitionBy("user_id").orderBy(TS, F.col(IMPRESSION_ID).cast("long"))
        first = valid.withColumn("_rank", F.row_number().over(earliest)).where(F.col("_rank") == 1)
        slots = first.select(
            "user_id",
            F.col(TS).alias("_first_ts"),
            F.size(HISTORY).alias("_n"),
            F.posexplode(HISTORY).alias("_i", "item_id"),
        )
        spacing = F.lit(PRE_WINDOW_SPACING_MS).cast("long")
        events = slots.select(
            "user_id",
            "item_id",
            (F.col("_first_ts") - (F.col("_n") - F.col("_i")).cast("long") * spacing).alias("event_ts"),
            F.lit(CLICK_ACTION).alias("action"),
        )
        return events.transform(with_authors(items))

    return _history
