"""Public interaction logs (MovieLens, Tmall 2014) -> the project's `impressions` and `user_actions`.

A public log has no feed requests, only (user, item, feedback, time) rows, so the mapping has to
invent the request. It does so the same way for every format:

* **Parse** (`parse_interactions`): each text line -> user_id, item_id, ts_ms and the raw feedback
  (`rating` or `type`), tagged with the first reason it cannot be used (`reject_reason`; null when
  it parses). Reasons name the file's own field: `wrong_field_count`, `unparsable_<field>`,
  `rating_out_of_range`, `unknown_type`, `timestamp_out_of_range`; a header line is tagged
  `header` (not data, never quarantined). Nothing is dropped here.
* **Feedback** (`with_feedback`): labels and action bits (tables below).
* **Bursts** (`with_requests`): a request is a burst of one user's interactions, cut where the
  gap to the user's previous interaction exceeds `session_gap_ms` (30 min by default: on ml-100k
  the log10 histogram of a user's inter-event gaps has its valley between 10^3 and 10^4 s, 95%
  of gaps are <= 169 s and only 1.9% exceed 30 min). Optionally a burst is cut into pages of at
  most `max_targets` items, in time order (a feed shows pages, not 700 items at once).
  request_ts = the first interaction of the request (burst or page), so every interaction of
  the request is at or after request_ts and none is in its own history (history: event_ts <
  request_ts, strict). Repeats of an item in one request fold into one target (labels OR'ed,
  the first time kept): the validity rules would otherwise quarantine them as duplicates.
* **Tables** (`to_impressions`, `to_user_actions`): one impression per target and one action per
  target at the item's (first) time in the request; `date` is the UTC day of request_ts /
  event_ts. duration_ms and watch_ms are 0 (unknown: neither log records them).

Labels (impressions) and action bits (user_actions, docs/design.md §3) from the feedback:

| format | finish (bit 2) | like (bit 4) | skip (bit 64) | follow (bit 32) | comment, share |
|---|---|---|---|---|---|
| MovieLens (rating 0.5..5) | rating >= 4 | rating == 5 | rating <= 2 | 0 | 0 |
| Tmall (type 0 click, 1 buy, 2 collect, 3 cart) | buy | collect | 0 | cart | 0 |

Every action also has the play bit (1): a rating or a click means the user saw the item. A
MovieLens rating of 2.5..3.5 is neutral (all labels 0). Tmall's cart has no short-video
counterpart; it takes the `follow` slot (a commitment to come back, otherwise unused), so it
stays a separate task instead of being mixed into finish. Tmall has no negative feedback: skip 0.

Authors: MovieLens items carry the first genre of the item file as `author_id` (ml-100k genre
index 0..18 from u.genre; ml-latest genres map to the same indices, IMAX 19, others hashed);
0 when there is no item file or the item is not in it. Tmall: 0 (no brand metadata; the brand
already is the item).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from pipelines.checks import require_columns
from pipelines.validity import REJECT_REASON, first_failing, utc_date
from schemas import IMPRESSIONS, QUARANTINE, USER_ACTIONS
from schemas.constants import MINUTE_MS, SECOND_MS
from schemas.fields import ACTION_BITS, TASKS

Transform = Callable[[DataFrame], DataFrame]

DEFAULT_SESSION_GAP_MS = 30 * MINUTE_MS
DEFAULT_TMALL_YEAR = 2014  # the Tmall Recommendation Prize 2014 log covers Apr 15 - Aug 15, 2014
# Quarantine rows whose time did not parse have no day; they are filed under the epoch's day.
UNKNOWN_DATE = "1970-01-01"
UNKNOWN_AUTHOR = 0
# Seconds since the epoch accepted from MovieLens: 1970 .. 2100 (a larger value is likely ms).
MAX_UNIX_SECONDS = 4_102_444_800

LINE = "line"  # the raw text line
SOURCE_FILE = "source_file"  # optional: the file a line came from (kept in the quarantine JSON)
HEADER = "header"
WRONG_FIELD_COUNT = "wrong_field_count"
RATING_OUT_OF_RANGE = "rating_out_of_range"
UNKNOWN_TYPE = "unknown_type"
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
ITEM_FILE_UNPARSABLE = "item_file_unparsable"

# Intermediate columns of the parsed interactions.
TS = "ts_ms"
RATING = "rating"
TMALL_TYPE = "type"
FOLDED = "folded"  # interactions folded into the target (1 = no repeat)
PAGE = "page"  # page of the burst a target is on (0 without max_targets)

MIN_RATING, MAX_RATING = 0.5, 5.0
FINISH_MIN_RATING, LIKE_RATING, SKIP_MAX_RATING = 4.0, 5.0, 2.0
TMALL_CLICK, TMALL_BUY, TMALL_COLLECT, TMALL_CART = 0, 1, 2, 3

# ml-100k's u.genre, in the order of u.item's 19 genre flags; ml-latest spellings map onto it.
ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
ML_LATEST_GENRE_IDS: dict[str, int] = {
    **{g: i for i, g in enumerate(ML100K_GENRES)},
    "Children": ML100K_GENRES.index("Children's"),
    "IMAX": len(ML100K_GENRES),
    "(no genres listed)": 0,
}
# Genres outside the list get 1000 + a hash, so they never collide with the fixed ids.
HASHED_GENRE_OFFSET, HASHED_GENRE_BUCKETS = 1000, 1_000_000


class PublicLogError(ValueError):
    """A public-log option or input does not fit the format."""


@dataclass(frozen=True)
class LogFormat:
    """One public log layout: how a line splits and what its fields are called in the file."""

    name: str
    sep: str
    fields: tuple[str, str, str, str]  # user, item, feedback, time: the file's own names
    header: str | None  # the header line, if the format has one
    doc: str

    @property
    def source_table(self) -> str:
        """The quarantine `source_table` of this format's rejected lines."""
        return f"public_logs:{self.name}"


MOVIELENS = LogFormat(
    "movielens", "\t", ("user_id", "item_id", "rating", "timestamp"), None,
    "ml-100k u.data: user id <tab> item id <tab> rating 1..5 <tab> unix seconds",
)  # fmt: skip
MOVIELENS_CSV = LogFormat(
    "movielens-csv", ",", ("userId", "movieId", "rating", "timestamp"), "userId,movieId,rating,timestamp",
    "ml-latest ratings.csv: header userId,movieId,rating,timestamp; ratings 0.5..5; unix seconds",
)  # fmt: skip
TMALL = LogFormat(
    "tmall", ",", ("user_id", "brand_id", "type", "visit_datetime"), "user_id,brand_id,type,visit_datetime",
    "Tmall 2014: user_id,brand_id,type (0 click, 1 buy, 2 collect, 3 cart),visit_datetime (month and day)",
)  # fmt: skip
FORMATS: dict[str, LogFormat] = {f.name: f for f in (MOVIELENS, MOVIELENS_CSV, TMALL)}

# Tmall visit_datetime forms accepted (month and day only; the year comes from the caller):
# "4月15日" (the competition's file, GBK: decode it to UTF-8 first), "04-15", "4/15", "0415".
# A full "2014-04-15" is accepted too and keeps its own year.
TMALL_MONTH_DAY_PATTERNS: tuple[str, ...] = (
    r"^(\d{1,2})月(\d{1,2})日$",
    r"^(\d{1,2})-(\d{1,2})$",
    r"^(\d{1,2})/(\d{1,2})$",
    r"^(\d{2})(\d{2})$",
)
ISO_DAY_PATTERN = r"^(\d{4})-(\d{1,2})-(\d{1,2})$"


def unparsable(field: str) -> str:
    return f"unparsable_{field}"


def _is_header(fmt: LogFormat) -> Column:
    if fmt.header is None:
        return F.lit(False)
    # A UTF-8 byte-order mark may lead the first line.
    return F.lower(F.trim(F.regexp_replace(F.col(LINE), "^\ufeff", ""))) == fmt.header.lower()


def _tmall_day(year: int) -> Column:
    """`visit_datetime` (trimmed) -> 'yyyy-M-d' text, or null when no accepted form matches."""
    raw = F.trim(F.col("_f3"))
    text: Column = F.lit(None).cast("string")
    for pattern in reversed(TMALL_MONTH_DAY_PATTERNS):
        month_day = F.concat_ws(
            "-", F.lit(str(year)), F.regexp_extract(raw, pattern, 1), F.regexp_extract(raw, pattern, 2)
        )
        text = F.when(raw.rlike(pattern), month_day).otherwise(text)
    return F.when(raw.rlike(ISO_DAY_PATTERN), raw).otherwise(text)


def parse_interactions(fmt: LogFormat, year: int = DEFAULT_TMALL_YEAR) -> Transform:
    """Lines (`line`, optional `source_file`) -> + `user_id`, `item_id`, `ts_ms` (ms, UTC), the
    feedback (`rating` double for MovieLens, `type` int for Tmall) and `reject_reason` (null when
    the line parses, `header` for a header line). Grain: one row per line, none dropped.

    Tmall dates have no year: `year` supplies it and the time is 00:00 UTC of that day."""
    if not 1970 <= year <= 9999:
        raise PublicLogError(f"year must be in 1970..9999, got {year}")

    def _parse(lines: DataFrame) -> DataFrame:
        require_columns(lines, [LINE], "parse_interactions")
        user_f, item_f, feedback_f, time_f = fmt.fields
        # Neither separator (tab, comma) is a regex metacharacter. try_element_at: ANSI mode
        # raises on an index past the end, and a short line is a reason, not an error.
        split = lines.withColumn("_parts", F.split(F.col(LINE), fmt.sep)).withColumns(
            {f"_f{i}": F.trim(F.try_element_at("_parts", F.lit(i + 1))) for i in range(4)}
        )
        if fmt is TMALL:
            feedback = F.col("_f2").try_cast("int")
            day = F.try_to_timestamp(_tmall_day(year), F.lit("yyyy-M-d"))
            ts = (F.unix_millis(day)).cast("long")
            rules = [
                (feedback.isNull(), unparsable(feedback_f)),
                (~feedback.isin(TMALL_CLICK, TMALL_BUY, TMALL_COLLECT, TMALL_CART), UNKNOWN_TYPE),
                (ts.isNull(), unparsable(time_f)),
            ]
            feedback_col = TMALL_TYPE
        else:
            feedback = F.col("_f2").try_cast("double")
            seconds = F.col("_f3").try_cast("long")
            in_range = (seconds >= 0) & (seconds <= MAX_UNIX_SECONDS)
            ts = F.when(in_range, seconds * SECOND_MS)  # guarded: ANSI mode raises on overflow
            rules = [
                (feedback.isNull() | F.isnan(feedback), unparsable(feedback_f)),
                ((feedback < MIN_RATING) | (feedback > MAX_RATING), RATING_OUT_OF_RANGE),
                (seconds.isNull(), unparsable(time_f)),
                (~in_range, TIMESTAMP_OUT_OF_RANGE),
            ]
            feedback_col = RATING
        user, item = F.col("_f0").try_cast("long"), F.col("_f1").try_cast("long")
        all_rules = [
            (_is_header(fmt), HEADER),
            (F.size("_parts") != len(fmt.fields), WRONG_FIELD_COUNT),
            (user.isNull(), unparsable(user_f)),
            (item.isNull(), unparsable(item_f)),
            *rules,
        ]
        return split.withColumns(
            {
                "user_id": user,
                "item_id": item,
                TS: ts,
                feedback_col: feedback,
                REJECT_REASON: first_failing(all_rules),
            }
        ).drop("_parts", *[f"_f{i}" for i in range(4)])

    return _parse


def _flag(cond: Column) -> Column:
    return F.when(cond, 1).otherwise(0).cast("int")


def with_feedback(fmt: LogFormat) -> Transform:
    """Parsed interactions -> + the label columns of TASKS (0/1) and `action` (bit flags), from
    `rating` (MovieLens) or `type` (Tmall); see the module docstring. Grain unchanged."""

    def _labels(df: DataFrame) -> DataFrame:
        if fmt is TMALL:
            require_columns(df, [TMALL_TYPE], "with_feedback")
            kind = F.col(TMALL_TYPE)
            labels = {
                "finish": kind == TMALL_BUY,
                "like": kind == TMALL_COLLECT,
                "follow": kind == TMALL_CART,
            }
        else:
            require_columns(df, [RATING], "with_feedback")
            rating = F.col(RATING)
            labels = {
                "finish": rating >= FINISH_MIN_RATING,
                "like": rating >= LIKE_RATING,
                "skip": rating <= SKIP_MAX_RATING,
            }
        out = df.withColumns({t: _flag(labels[t]) if t in labels else F.lit(0) for t in TASKS})
        bits = F.lit(ACTION_BITS["play"])
        for t in TASKS:
            bits = bits + F.col(t) * ACTION_BITS[t]
        return out.withColumn("action", bits.cast("int"))

    return _labels


def with_authors(items: DataFrame | None) -> Transform:
    """Interactions -> + `author_id` from `items` (item_id, author_id: one row per item);
    UNKNOWN_AUTHOR when there is no item frame or the item is not in it. Grain unchanged."""

    def _authors(df: DataFrame) -> DataFrame:
        require_columns(df, ["item_id"], "with_authors")
        if items is None:
            return df.withColumn("author_id", F.lit(UNKNOWN_AUTHOR).cast("long"))
        require_columns(items, ["item_id", "author_id"], "with_authors (items)")
        joined = df.join(
            F.broadcast(items.select("item_id", F.col("author_id").alias("_author"))), "item_id", "left"
        )
        return joined.withColumn(
            "author_id", F.coalesce("_author", F.lit(UNKNOWN_AUTHOR)).cast("long")
        ).drop("_author")

    return _authors


def with_requests(session_gap_ms: int = DEFAULT_SESSION_GAP_MS, max_targets: int = 0) -> Transform:
    """Valid interactions (user_id, item_id, ts_ms, author_id, labels, action) -> one row per
    target: + `request_ts`, `position` (0 first, by time then item_id), `event_ts` (the item's
    first time in the request), `folded` (interactions folded into it), `page`. Grain: (user, request,
    item). A new burst starts where the gap to the user's previous interaction is
    > session_gap_ms; with max_targets > 0 a burst is cut into pages of at most that many items."""
    if session_gap_ms < 0:
        raise PublicLogError(f"session gap must be >= 0 ms, got {session_gap_ms}")
    if max_targets < 0:
        raise PublicLogError(f"max_targets must be >= 0 (0: no limit), got {max_targets}")

    def _requests(df: DataFrame) -> DataFrame:
        require_columns(df, ["user_id", "item_id", TS, "author_id", "action", *TASKS], "with_requests")
        by_time = Window.partitionBy("user_id").orderBy(TS, "item_id")
        new_burst = F.coalesce(F.col(TS) - F.lag(TS).over(by_time) > session_gap_ms, F.lit(True))
        bursts = df.withColumn("_burst", F.sum(new_burst.cast("int")).over(by_time))
        targets = bursts.groupBy("user_id", "_burst", "item_id").agg(
            F.min(TS).alias("event_ts"),
            # One item has one author; max is a deterministic pick if an item file disagreed.
            F.max("author_id").alias("author_id"),
            F.bit_or("action").alias("action"),
            F.count("*").cast("int").alias(FOLDED),
            *[F.max(t).alias(t) for t in TASKS],
        )
        in_burst = Window.partitionBy("user_id", "_burst").orderBy("event_ts", "item_id")
        rank = F.row_number().over(in_burst) - 1
        page = F.floor(rank / max_targets) if max_targets else F.lit(0)
        paged = targets.withColumn("_rank", rank).withColumn("_page", page.cast("long"))
        request = Window.partitionBy("user_id", "_burst", "_page")
        return (
            paged.withColumn("request_ts", F.min("event_ts").over(request))
            .withColumn(
                "position",
                (
                    F.col("_rank") - F.col("_page") * max_targets if max_targets else F.col("_rank")
                ).cast("int"),
            )
            .withColumnRenamed("_page", PAGE)
            .drop("_burst", "_rank")
        )

    return _requests


def impression_rows(df: DataFrame) -> DataFrame:
    """Targets that carry `request_id` -> `impressions` rows: duration and watch time unknown (0,
    no public log records them), `date` the UTC day of request_ts."""
    needed = ["request_id", "user_id", "item_id", "author_id", "request_ts", "position", *TASKS]
    require_columns(df, needed, "impression_rows")
    out = df.withColumns(
        {
            "duration_ms": F.lit(0).cast("int"),
            "watch_ms": F.lit(0).cast("int"),
            "date": utc_date(F.col("request_ts")),
        }
    )
    return out.select(*[F.col(f.name).cast(f.dataType) for f in IMPRESSIONS.spark_schema()])


def to_impressions(fmt: LogFormat) -> Transform:
    """Targets (with_requests) -> `impressions` rows. request_id is
    `<format>:<user_id>:<request_ts>:<page>`: deterministic, unique per request."""

    def _impressions(df: DataFrame) -> DataFrame:
        require_columns(df, ["user_id", "request_ts", PAGE], "to_impressions")
        request_id = F.concat_ws(":", F.lit(fmt.name), F.col("user_id"), F.col("request_ts"), F.col(PAGE))
        return impression_rows(df.withColumn("request_id", request_id))

    return _impressions


def to_user_actions(df: DataFrame) -> DataFrame:
    """Targets (with_requests) -> `user_actions` rows: one per target at its event_ts (>= its
    request_ts, so never in its own request's history)."""
    require_columns(df, ["user_id", "item_id", "author_id", "event_ts", "action"], "to_user_actions")
    out = df.withColumns(
        {
            "watch_ms": F.lit(0).cast("int"),
            "duration_ms": F.lit(0).cast("int"),
            "date": utc_date(F.col("event_ts")),
        }
    )
    return out.select(*[F.col(f.name).cast(f.dataType) for f in USER_ACTIONS.spark_schema()])


def rejected_to_quarantine(source_table: str) -> Transform:
    """Tagged lines -> `quarantine` rows for every reason but `header`: the raw line (and its file)
    as JSON, dated by the parsed time when there is one, else UNKNOWN_DATE."""

    def _quarantine(df: DataFrame) -> DataFrame:
        require_columns(df, [LINE, REJECT_REASON], "rejected_to_quarantine")
        raw = [c for c in (SOURCE_FILE, LINE) if c in df.columns]
        # A line with the wrong number of fields has no trustworthy time, even if one parsed.
        parsed_day = F.when(F.col(REJECT_REASON) != WRONG_FIELD_COUNT, utc_date(F.col(TS)))
        day = F.coalesce(parsed_day, F.lit(UNKNOWN_DATE)) if TS in df.columns else F.lit(UNKNOWN_DATE)
        return df.where(F.col(REJECT_REASON).isNotNull() & (F.col(REJECT_REASON) != HEADER)).select(
            F.lit(source_table).alias("source_table"),
            F.col(REJECT_REASON).alias("reason"),
            F.to_json(F.struct(*raw)).alias("row_json"),
            day.alias("date"),
        ).select(*QUARANTINE.column_names)

    return _quarantine


# ---- item files (author_id stand-in) ------------------------------------------------------------


def items_from_u_item(lines: DataFrame) -> DataFrame:
    """ml-100k u.item lines (`line`: id|title|release|video release|url|19 genre flags) -> item_id,
    author_id (index of the first genre flag set; UNKNOWN_AUTHOR if none), reject_reason
    (ITEM_FILE_UNPARSABLE for a line without an integer id and 19 0/1 flags). Grain: line."""
    require_columns(lines, [LINE], "items_from_u_item")
    n_genres = len(ML100K_GENRES)
    parts = F.split(F.col(LINE), r"\|")
    flags = F.slice(parts, -n_genres, n_genres)
    item = F.trim(parts[0]).try_cast("long")
    first_set = F.array_position(flags, "1")  # 1-based, 0 when absent
    bad = (F.size(parts) < 5 + n_genres) | item.isNull() | ~F.forall(flags, lambda f: f.isin("0", "1"))
    return lines.select(
        *[c for c in lines.columns],
        item.alias("item_id"),
        F.when(first_set > 0, first_set - 1).otherwise(UNKNOWN_AUTHOR).cast("long").alias("author_id"),
        F.when(bad, F.lit(ITEM_FILE_UNPARSABLE)).alias(REJECT_REASON),
    )


def named_author(name: Column, ids: Mapping[str, int]) -> Column:
    """author_id of a category-like name: its fixed id in `ids`, else 1000 + a stable hash (so a
    name outside the list never collides with a fixed id)."""
    mapping = F.create_map(*[x for key, i in ids.items() for x in (F.lit(key), F.lit(i))])
    hashed = F.lit(HASHED_GENRE_OFFSET) + F.pmod(F.xxhash64(name), F.lit(HASHED_GENRE_BUCKETS))
    return F.coalesce(mapping[name].cast("long"), hashed.cast("long"))


def genre_author(genre: Column) -> Column:
    """author_id of a ml-latest genre name: the ml-100k genre index, else 1000 + a stable hash."""
    return named_author(genre, ML_LATEST_GENRE_IDS)


def items_from_movies_csv(movies: DataFrame) -> DataFrame:
    """ml-latest movies.csv rows (movieId, title, genres "A|B", read with a CSV reader, plus
    `line`: the row as text) -> item_id, author_id (first genre, `genre_author`), reject_reason
    (ITEM_FILE_UNPARSABLE without an integer movieId). Grain: row."""
    require_columns(movies, ["movieId", "genres", LINE], "items_from_movies_csv")
    item = F.trim(F.col("movieId")).try_cast("long")
    first = F.trim(F.split(F.coalesce(F.col("genres"), F.lit("")), r"\|")[0])
    return movies.select(
        F.col(LINE),
        item.alias("item_id"),
        F.when(first == "", F.lit(UNKNOWN_AUTHOR))
        .otherwise(genre_author(first))
        .cast("long")
        .alias("author_id"),
        F.when(item.isNull(), F.lit(ITEM_FILE_UNPARSABLE)).alias(REJECT_REASON),
    )
