"""Synthetic `impressions` and `user_actions` with a planted long-range signal (docs/design.md §1, §3).

Why synthetic: the project needs input logs whose value keeps growing with history length, that
hit every validity rule, at any size, without real data. Why hashes: every random number is
`xxhash64(seed, row keys, salt)` mapped to [0, 1), never `F.rand`, so a row's content depends only
on the seed and its keys, not on partitioning, cluster size or execution order. Request-day rows
are keyed by the day itself, so a day generated alone equals the same day generated in a range.

The world:
* items: `item_id` is the popularity rank (0 = most popular, Zipf-like draws); topic is
  `item_id % num_topics`; `author_id = floor(sqrt(item_id))` (authors power-law too); the
  duration is a function of the item.
* users: two interest topics and an activity level, hashed from `user_id` (`with_user_profile`),
  and a hidden taste for each author (creator affinity, hashed from `user_id` and `author_id`,
  in [-1, 1); its effect is `affinity_logit`, 0 by default). The topics show in *what* a user
  watched (a bag of topics, which a mean of the history reads); the affinity only in *how* the
  user reacted to that author's videos (finished or skipped), so reading it takes finding the
  target's author among thousands of events and looking at the feedback there: what target
  attention does and a mean cannot.
* warm-up (`history_days` before `start_date`): only actions, a heavy-tailed count per user.
  Events older than `recent_days` before `start_date` lean towards the user's interest topics
  and their feedback follows the user's tastes (topics and affinity); recent ones are pure
  popularity with tasteless feedback, so a model reading only the newest few hundred events of a
  heavy user cannot see the interests, and one reading 10k can. (Caveat: the watched targets of
  the request days, 30% from interest topics by default, enter the history too, so the recent
  signal grows back over the request days; keep num_days short next to history_days.)
* request days: k requests per user-day, m distinct targets each, labels from a logistic model
  with a strong interest effect (and the affinity effect when it is on). Watched targets become
  actions strictly after their `request_ts`, on the same UTC day.
* bad rows (`bad_row_rate` > 0): every validity violation of docs/design.md §3, picked by hash.

Composition (quinn style, the job owns caching and writing):

    clean = users.transform(clean_impressions(cfg)).persist()   # users: one `user_id` column
    impressions = clean.transform(with_impression_bad_rows(cfg))
    actions = users.transform(generate_actions(cfg, clean))     # warm-up + watched targets

`generate_impressions(cfg)` and `generate_actions(cfg)` (without `clean`) are the one-call forms;
the latter recomputes the clean impressions, which gives the same rows because they are hashed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.checks import require_columns
from pipelines.validity import utc_date
from schemas import IMPRESSIONS, USER_ACTIONS, TableContract
from schemas.constants import DAY_MS, MINUTE_MS, SECOND_MS, day_start_ms
from schemas.fields import ACTION_BITS, TASKS

Transform = Callable[[DataFrame], DataFrame]

# Requests stop this long before midnight, so every action they cause stays on the same UTC day.
REQUEST_CUTOFF_MS = 15 * MINUTE_MS
# Time a user spends scrolling past one feed slot before the next item plays.
POSITION_GAP_MS = 5 * SECOND_MS
MIN_DURATION_MS = 5 * SECOND_MS
MAX_DURATION_MS = 2 * MINUTE_MS
# Durations are skewed short: duration = MIN + (MAX - MIN) * u ** DURATION_SKEW.
DURATION_SKEW = 2.0
# A double holds 53 bits of mantissa: the top 53 bits of a 64-bit hash map exactly to [0, 1).
MANTISSA_BITS = 53

# Label model (logits). Finish: base + interest effect (config) + popularity + duration effects.
FINISH_BASE_LOGIT = -0.8
POPULARITY_LOGIT = 1.0  # times (0.5 - log-rank share): head items +0.5, tail items -0.5
DURATION_LOGIT = 1.0  # times duration / MAX_DURATION_MS: long videos are finished less often
SKIP_IF_UNFINISHED = 0.8  # P(skip | not finished)
UNWATCHED_SKIP_SHARE = 0.3  # share of skips swiped away before playback (watch_ms = 0)
SKIP_MAX_WATCH_SHARE = 0.2  # a skip watches at most this share of the video
PARTIAL_WATCH_MIN, PARTIAL_WATCH_SPAN = 0.2, 0.75  # unfinished, unskipped: watch 20%..95%
MIN_WATCH_MS = 300  # a watched item plays at least this long
# Engagement tasks: (base, interest, finish) logits; rarer than finish and correlated with it.
ENGAGEMENT_LOGITS: dict[str, tuple[float, float, float]] = {
    "like": (-4.5, 1.5, 2.0),
    "comment": (-5.5, 1.0, 1.5),
    "share": (-5.5, 1.0, 1.5),
    "follow": (-6.0, 1.5, 1.5),
}
# Spread of per-user request volume: requests = pareto draw * (ACTIVITY_FLOOR + activity).
ACTIVITY_FLOOR = 0.5

# Validity violations injected by `with_*_bad_rows`, each at bad_row_rate / len(kinds). All but
# the last are edits of a row in place; "duplicate" adds a copy of a clean row (the original
# stays, so the good row still exists).
IMPRESSION_FAULTS: tuple[str, ...] = (
    "null_request_id",
    "null_user_id",
    "null_item_id",
    "null_request_ts",
    "request_ts_outside_date",
    "label_out_of_range",
    "request_mismatch",
    "duplicate",
)
ACTION_FAULTS: tuple[str, ...] = (
    "null_user_id",
    "null_item_id",
    "null_event_ts",
    "event_ts_outside_date",
    "duplicate",
)
BAD_LABEL = 2  # the value "label_out_of_range" writes; valid labels are 0 and 1
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class SyntheticConfigError(ValueError):
    """A SyntheticConfig value is out of range."""


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Same config -> same rows, whatever the cluster."""

    seed: int = 0  # every random draw hashes this with the row's keys
    start_date: str = "2026-01-01"  # YYYY-MM-DD, first UTC day with requests
    num_days: int = 1  # days with requests: start_date .. start_date + num_days - 1
    history_days: int = 30  # warm-up days before start_date with actions only (0 = none)
    recent_days: int = 2  # last warm-up days whose events carry no interest signal (all if >= history_days)
    num_users: int = 1_000  # user_ids 0..num_users-1 (the job builds the users frame from it)
    num_items: int = 100_000  # item_ids 0..num_items-1; the id is the popularity rank
    num_topics: int = 20  # topic = item_id % num_topics
    min_events: int = 20  # warm-up events of the least active user
    max_events: int = 15_000  # warm-up events of the most active user
    events_tail: float = 0.5  # Pareto exponent of events per user; smaller = heavier, 0 = log-uniform
    max_requests_per_day: int = 200  # requests per user-day are 1..this, Pareto tail
    requests_tail: float = 1.0  # Pareto exponent of requests per user-day (1.0: mean about 5)
    min_targets: int = 1  # targets drawn per request (fewer if a draw repeats an item)
    max_targets: int = 20  # most targets per request (a feed page)
    old_interest_prob: float = 0.6  # P(an old warm-up event is from an interest topic)
    target_interest_prob: float = 0.3  # P(a target is drawn from an interest topic)
    interest_logit: float = 2.0  # finish-logit boost of an interest-topic item: the planted signal
    # Finish-logit scale of a user's hidden taste for each author, in [-1, 1). Off by default (the
    # demo's and tests' data predate it); tests/test_long_range_quality.py turns it on at 3.0 with
    # the topic effect off: STCA reads it within 400 CPU steps, mean pooling cannot.
    affinity_logit: float = 0.0
    bad_row_rate: float = 0.0  # share of rows made invalid, spread evenly over the fault kinds

    def __post_init__(self) -> None:
        # Dates are compared as strings downstream, so only the extended form is accepted.
        if not ISO_DATE.fullmatch(self.start_date):
            raise SyntheticConfigError(f"start_date must be YYYY-MM-DD, got {self.start_date!r}")
        try:
            date.fromisoformat(self.start_date)
        except ValueError as e:
            raise SyntheticConfigError(f"start_date must be a real day, got {self.start_date!r}: {e}") from e
        checks = {
            "num_days >= 1": self.num_days >= 1,
            "history_days >= 0": self.history_days >= 0,
            "recent_days >= 0": self.recent_days >= 0,
            "num_users >= 1": self.num_users >= 1,
            "2 <= num_topics <= num_items": 2 <= self.num_topics <= self.num_items,
            "1 <= min_events <= max_events": 1 <= self.min_events <= self.max_events,
            # A user's warm-up events get distinct milliseconds (one stratum each).
            "max_events <= DAY_MS": self.max_events <= DAY_MS,
            "events_tail >= 0": self.events_tail >= 0,
            "requests_tail >= 0": self.requests_tail >= 0,
            "1 <= min_targets <= max_targets": 1 <= self.min_targets <= self.max_targets,
            "max_requests_per_day >= 1": self.max_requests_per_day >= 1,
            # Each request owns a disjoint time window long enough for all of its actions.
            "max_requests_per_day * max_event_offset_ms < day without cutoff": self.max_requests_per_day
            * self.max_event_offset_ms
            < DAY_MS - REQUEST_CUTOFF_MS,
            "probabilities in [0, 1]": all(
                0.0 <= p <= 1.0
                for p in (self.old_interest_prob, self.target_interest_prob, self.bad_row_rate)
            ),
        }
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise SyntheticConfigError(f"invalid SyntheticConfig: {failed} do not hold for {self}")

    @property
    def max_event_offset_ms(self) -> int:
        """Latest an action can follow its request: last slot's scroll delay plus a full watch."""
        return 1 + (self.max_targets - 1) * POSITION_GAP_MS + MAX_DURATION_MS

    def day(self, offset: int) -> str:
        """start_date + offset days, YYYY-MM-DD."""
        return (date.fromisoformat(self.start_date) + timedelta(days=offset)).isoformat()

    @property
    def impression_dates(self) -> tuple[str, str]:
        """First and last date (inclusive) of the impressions this config writes."""
        return self.start_date, self.day(self.num_days - 1)

    @property
    def action_dates(self) -> tuple[str, str]:
        """First and last date (inclusive) of the actions: warm-up start to the last request day."""
        return self.day(-self.history_days), self.day(self.num_days - 1)


# ---- random draws -------------------------------------------------------------------------


def uniform(seed: int, salt: str, *keys: Column) -> Column:
    """A [0, 1) double that is a pure function of (seed, keys, salt): reproducible anywhere."""
    h = F.xxhash64(F.lit(seed), *keys, F.lit(salt))
    return F.shiftrightunsigned(h, 64 - MANTISSA_BITS).cast("double") / float(1 << MANTISSA_BITS)


def bounded_pareto(u: Column, low: float, high: float, alpha: float) -> Column:
    """Inverse CDF of a Pareto(alpha) truncated to [low, high); alpha = 0 is log-uniform."""
    if alpha == 0:
        return F.lit(low) * F.exp(u * math.log(high / low))
    ratio = (low / high) ** alpha
    return F.lit(low) * F.pow(1.0 - u * (1.0 - ratio), -1.0 / alpha)


def zipf_rank(u: Column, n: int) -> Column:
    """A popularity rank in [0, n): P(r) ~ ln((r + 2) / (r + 1)), about 1 / (r + 1) (Zipf, s = 1)."""
    rank = F.floor(F.exp(u * math.log(n + 1))) - 1
    return F.least(F.greatest(rank, F.lit(0)), F.lit(n - 1)).cast("long")


def item_of_topic(rank: Column, topic: Column, num_topics: int, num_items: int) -> Column:
    """The item of `topic` in the block of K ranks holding `rank` (`r - r % K + topic`), moved
    down one block if that passes the last item: about as popular as `rank`, on topic."""
    item = rank - F.pmod(rank, F.lit(num_topics)) + topic
    return F.when(item >= num_items, item - num_topics).otherwise(item).cast("long")


def author_of(item_id: Column) -> Column:
    """Author `a` owns items a^2 .. (a+1)^2 - 1: head authors own the head items."""
    return F.floor(F.sqrt(item_id)).cast("long")


def duration_of(seed: int, item_id: Column) -> Column:
    """Video length in ms, a property of the item (the same in every log row)."""
    u = uniform(seed, "duration", item_id)
    return (
        F.lit(MIN_DURATION_MS) + F.floor(F.pow(u, DURATION_SKEW) * (MAX_DURATION_MS - MIN_DURATION_MS))
    ).cast("int")


def _item_attributes(cfg: SyntheticConfig) -> dict[str, Column]:
    """`author_id` and `duration_ms` of the row's `item_id`."""
    item = F.col("item_id")
    return {"author_id": author_of(item), "duration_ms": duration_of(cfg.seed, item)}


def _sigmoid(x: Column) -> Column:
    return 1.0 / (1.0 + F.exp(-x))


def _flag(cond: Column) -> Column:
    return F.when(cond, 1).otherwise(0).cast("int")


# ---- users and feedback ---------------------------------------------------------------------


def with_user_profile(cfg: SyntheticConfig) -> Transform:
    """users (`user_id`) -> + `interest_topic_1`, `interest_topic_2` (distinct ints), `activity`.

    `activity` in [0, 1) ranks users by volume: it draws both history length and requests."""

    def _profile(users: DataFrame) -> DataFrame:
        require_columns(users, ["user_id"], "with_user_profile")
        uid = F.col("user_id").cast("long")
        first = F.floor(uniform(cfg.seed, "topic1", uid) * cfg.num_topics)
        offset = 1 + F.floor(uniform(cfg.seed, "topic2", uid) * (cfg.num_topics - 1))
        return users.withColumns(
            {
                "user_id": uid,
                "interest_topic_1": first.cast("int"),
                "interest_topic_2": F.pmod(first + offset, F.lit(cfg.num_topics)).cast("int"),
                "activity": uniform(cfg.seed, "activity", uid),
            }
        )

    return _profile


def _is_interest_topic(cfg: SyntheticConfig) -> Column:
    topic = F.pmod(F.col("item_id"), F.lit(cfg.num_topics))
    return (topic == F.col("interest_topic_1")) | (topic == F.col("interest_topic_2"))


def _draw_item(cfg: SyntheticConfig, interest_prob: Column | float, *keys: Column) -> Column:
    """An item: from one of the user's interest topics with `interest_prob`, else by popularity."""
    rank = zipf_rank(uniform(cfg.seed, "rank", *keys), cfg.num_items)
    topic = F.when(uniform(cfg.seed, "which_topic", *keys) < 0.5, F.col("interest_topic_1")).otherwise(
        F.col("interest_topic_2")
    )
    from_interest = uniform(cfg.seed, "from_interest", *keys) < interest_prob
    return F.when(from_interest, item_of_topic(rank, topic, cfg.num_topics, cfg.num_items)).otherwise(rank)


def creator_affinity(cfg: SyntheticConfig) -> Column:
    """A user's hidden taste for the row's author, in [-1, 1): a pure function of the pair."""
    return 2.0 * uniform(cfg.seed, "affinity", F.col("user_id").cast("long"), F.col("author_id")) - 1.0


def _with_feedback(
    cfg: SyntheticConfig, tastes: Column, allow_unwatched: bool, *keys: Column
) -> Transform:
    """Rows with `user_id`, interest topics, `item_id`, `author_id`, `duration_ms` -> + `watch_ms`
    and the 0/1 label columns of TASKS.

    `tastes` switches on the user's tastes (interest topics and creator affinity) for the row;
    `allow_unwatched` lets skips have watch_ms = 0 (impressions only: an action is always a play).
    Built in stages that name their results, so each expression stays small (cheap to build from
    Python and to compile)."""

    def u(salt: str) -> Column:
        return uniform(cfg.seed, salt, *keys)

    def _feedback(df: DataFrame) -> DataFrame:
        interest, affinity, duration = F.col("_interest"), F.col("_affinity"), F.col("duration_ms")
        finished, skipped = F.col("finish") == 1, F.col("skip") == 1
        log_rank_share = F.log(F.col("item_id") + 1.0) / math.log(cfg.num_items + 1.0)
        finish_logit = (
            FINISH_BASE_LOGIT
            + cfg.interest_logit * interest
            + cfg.affinity_logit * affinity
            + POPULARITY_LOGIT * (0.5 - log_rank_share)
            - DURATION_LOGIT * duration / MAX_DURATION_MS
        )
        unwatched = skipped & (u("unwatched") < UNWATCHED_SKIP_SHARE) if allow_unwatched else F.lit(False)
        watch = (
            F.when(finished, duration)
            .when(unwatched, 0)
            .when(
                skipped,
                F.greatest(F.lit(MIN_WATCH_MS), F.floor(duration * u("watch") * SKIP_MAX_WATCH_SHARE)),
            )
            .otherwise(F.floor(duration * (PARTIAL_WATCH_MIN + PARTIAL_WATCH_SPAN * u("watch"))))
        )
        engagement = {
            task: _flag(
                (F.col("watch_ms") > 0)
                & (u(task) < _sigmoid(base + w_interest * interest + w_finish * F.col("finish")))
            )
            for task, (base, w_interest, w_finish) in ENGAGEMENT_LOGITS.items()
        }
        return (
            df.withColumns(
                {
                    "_interest": (tastes & _is_interest_topic(cfg)).cast("double"),
                    "_affinity": F.when(tastes, creator_affinity(cfg)).otherwise(0.0),
                }
            )
            .withColumn("finish", _flag(u("finish") < _sigmoid(finish_logit)))
            .withColumn("skip", _flag(~finished & (u("skip") < SKIP_IF_UNFINISHED)))
            .withColumn("watch_ms", watch.cast("int"))
            .withColumns(engagement)
            .drop("_interest", "_affinity")
        )

    return _feedback


def _action_bits() -> Column:
    """`action` from the label columns: play always, plus one bit per positive label."""
    bits = F.lit(ACTION_BITS["play"])
    for task in TASKS:
        bits = bits + F.col(task) * ACTION_BITS[task]
    return bits.cast("int")


def _conform(df: DataFrame, contract: TableContract) -> DataFrame:
    """Contract columns, in contract order, cast to contract types."""
    return df.select(*[F.col(f.name).cast(f.dataType.simpleString()) for f in contract.spark_schema()])


# ---- warm-up actions ------------------------------------------------------------------------


def warmup_actions(cfg: SyntheticConfig) -> Transform:
    """users (`user_id`) -> `user_actions` rows of the warm-up days (grain: one event).

    Per user a bounded-Pareto number of events (by activity), stratified over the warm-up span
    (so a user's timestamps are distinct and ordered). Events before start_date - recent_days come
    from the interest topics with `old_interest_prob` and are finished more often there; recent
    events are pure popularity with no interest effect."""
    first_day, _ = cfg.action_dates
    warm_start = day_start_ms(first_day)
    span = cfg.history_days * DAY_MS
    recent_from = day_start_ms(cfg.start_date) - cfg.recent_days * DAY_MS

    def _warmup(users: DataFrame) -> DataFrame:
        uid = F.col("user_id")
        n_events = F.floor(
            bounded_pareto(F.col("activity"), cfg.min_events, cfg.max_events + 1, cfg.events_tail)
        ).cast("int")
        idx = F.col("event_idx")
        keys = (uid, idx)
        event_ts = F.lit(warm_start) + F.floor(
            (idx + uniform(cfg.seed, "event_ts", *keys)) * F.lit(float(span)) / F.col("n_events")
        )
        is_old = F.col("event_ts") < recent_from
        return (
            users.transform(with_user_profile(cfg))
            .where(F.lit(cfg.history_days > 0))
            .withColumn("n_events", n_events)
            .withColumn("event_idx", F.explode(F.sequence(F.lit(0), F.col("n_events") - 1)))
            .withColumn("event_ts", event_ts.cast("long"))
            .withColumn(
                "item_id", _draw_item(cfg, F.when(is_old, cfg.old_interest_prob).otherwise(0.0), *keys)
            )
            .withColumns(_item_attributes(cfg))
            .transform(_with_feedback(cfg, is_old, False, *keys))
            .withColumns({"action": _action_bits(), "date": utc_date(F.col("event_ts"))})
            .transform(lambda df: _conform(df, USER_ACTIONS))
        )

    return _warmup


# ---- request days ---------------------------------------------------------------------------


def clean_impressions(cfg: SyntheticConfig) -> Transform:
    """users (`user_id`) -> valid `impressions` rows of the request days (grain: one target).

    Per user-day k >= 1 requests (bounded Pareto scaled by activity); request j owns the j-th of
    k equal windows of [00:00, 23:45) and its actions end inside that window, so a user's action
    timestamps never collide across requests. m distinct targets per request at positions
    0..m-1 (a repeated draw is dropped, so m can be below the drawn count)."""
    days = [day_start_ms(cfg.day(d)) for d in range(cfg.num_days)]
    span = DAY_MS - REQUEST_CUTOFF_MS
    n_target_choices = cfg.max_targets - cfg.min_targets + 1

    def _impressions(users: DataFrame) -> DataFrame:
        uid, day, idx, rid = F.col("user_id"), F.col("day_start"), F.col("request_idx"), F.col("request_id")
        n_requests = F.floor(
            bounded_pareto(
                uniform(cfg.seed, "requests", uid, day), 1, cfg.max_requests_per_day + 1, cfg.requests_tail
            )
            * (ACTIVITY_FLOOR + F.col("activity"))
        )
        n_requests = F.least(F.greatest(n_requests, F.lit(1)), F.lit(cfg.max_requests_per_day)).cast("int")
        window = F.floor(F.lit(span) / F.col("n_requests"))
        request_ts = (
            day
            + idx * window
            + F.floor(uniform(cfg.seed, "request_ts", uid, day, idx) * (window - cfg.max_event_offset_ms))
        )
        n_drawn = (cfg.min_targets + F.floor(uniform(cfg.seed, "targets", rid) * n_target_choices)).cast(
            "int"
        )
        items = F.array_distinct(
            F.transform(
                F.sequence(F.lit(0), n_drawn - 1),
                lambda p: _draw_item(cfg, cfg.target_interest_prob, rid, p),
            )
        )
        return (
            users.transform(with_user_profile(cfg))
            .withColumn("day_start", F.explode(F.array(*[F.lit(d) for d in days])))
            .withColumns({"date": utc_date(day), "n_requests": n_requests})
            .withColumn("request_idx", F.explode(F.sequence(F.lit(0), F.col("n_requests") - 1)))
            .withColumns(
                {
                    "request_ts": request_ts.cast("long"),
                    "request_id": F.concat_ws("-", uid, F.col("date"), idx),
                }
            )
            .select("*", F.posexplode(items).alias("position", "item_id"))
            .withColumns(_item_attributes(cfg))
            .transform(_with_feedback(cfg, F.lit(True), True, rid, F.col("item_id")))
            .transform(lambda df: _conform(df, IMPRESSIONS))
        )

    return _impressions


def actions_from_impressions(impressions: DataFrame) -> DataFrame:
    """Clean `impressions` -> `user_actions` of the watched ones (watch_ms > 0), one per row.

    event_ts = request_ts + 1 + position * POSITION_GAP_MS + watch_ms: strictly after the
    request (so a request's own targets never enter its history) and, as requests stop
    REQUEST_CUTOFF_MS before midnight, on the same UTC day. Feed it clean rows: bad rows would
    make bad actions."""
    require_columns(impressions, IMPRESSIONS.column_names, "actions_from_impressions")
    event_ts = F.col("request_ts") + 1 + F.col("position") * POSITION_GAP_MS + F.col("watch_ms")
    return (
        impressions.where(F.col("watch_ms") > 0)
        .withColumns({"event_ts": event_ts.cast("long"), "action": _action_bits()})
        .transform(lambda df: _conform(df, USER_ACTIONS))
    )


# ---- bad rows -------------------------------------------------------------------------------


def _mark_faults(df: DataFrame, cfg: SyntheticConfig, kinds: tuple[str, ...], *keys: Column) -> DataFrame:
    """+ `_fault` (index into `kinds` for a row picked with probability bad_row_rate, else null)
    and `_copy` (0; rows whose fault is "duplicate" come twice, the copy with `_copy` 1).

    The copy comes from an explode, not a filter and a union: a filter on `_fault` would be
    pushed down through the generator's projections, inlining every derived column into one
    expression too large to compile, and a union would generate the rows twice."""
    u = uniform(cfg.seed, "fault", *keys)
    fault = F.when(u < cfg.bad_row_rate, F.floor(u / cfg.bad_row_rate * len(kinds)).cast("int"))
    copies = F.when(F.col("_fault") == kinds.index("duplicate"), F.array(F.lit(0), F.lit(1))).otherwise(
        F.array(F.lit(0))
    )
    return df.withColumn("_fault", fault).withColumn("_copy", F.explode(copies))


def _off_date(first: str, last: str, ts: str) -> tuple[Column, Column]:
    """(date, ts) of a row moved so its ts falls outside its date.

    With two or more dates in range, the row moves to a neighbouring date inside the range (so
    the write stays within the range it replaces) and keeps its ts. With one date, the ts moves
    back a day instead."""
    if first == last:
        return F.col("date"), F.col(ts) - DAY_MS
    neighbour = F.when(F.col("date") == last, F.date_sub(F.to_date("date"), 1)).otherwise(
        F.date_add(F.to_date("date"), 1)
    )
    return F.date_format(neighbour, "yyyy-MM-dd"), F.col(ts)


def _set_when(kind: Column, index: int, value: Column, column: str) -> Column:
    return F.when(kind == index, value).otherwise(F.col(column))


def with_impression_bad_rows(cfg: SyntheticConfig) -> Transform:
    """Clean impressions -> the same plus IMPRESSION_FAULTS at bad_row_rate (identity at 0).

    "request_mismatch" shifts user_id or request_ts of a row at position > 0 by one (at
    position 0 the row stays clean, so the rest of the request is always there to differ from).
    "duplicate" adds a copy of a clean row at position + max_targets."""
    if cfg.bad_row_rate == 0:
        return lambda df: df
    k = {name: i for i, name in enumerate(IMPRESSION_FAULTS)}
    null_long, null_str = F.lit(None).cast("long"), F.lit(None).cast("string")

    def _bad(impressions: DataFrame) -> DataFrame:
        require_columns(impressions, IMPRESSIONS.column_names, "with_impression_bad_rows")
        keys = (F.col("request_id"), F.col("item_id"))
        kind = F.col("_fault")
        off_date, off_ts = _off_date(*cfg.impression_dates, "request_ts")
        bad_task = F.floor(uniform(cfg.seed, "bad_task", *keys) * len(TASKS))
        mismatch = (kind == k["request_mismatch"]) & (F.col("position") > 0)
        shift_user = uniform(cfg.seed, "mismatch_user", *keys) < 0.5
        edited = _mark_faults(impressions, cfg, IMPRESSION_FAULTS, *keys).select(
            _set_when(kind, k["null_request_id"], null_str, "request_id").alias("request_id"),
            F.when(kind == k["null_user_id"], null_long)
            .when(mismatch & shift_user, F.col("user_id") + 1)
            .otherwise(F.col("user_id"))
            .alias("user_id"),
            _set_when(kind, k["null_item_id"], null_long, "item_id").alias("item_id"),
            "author_id",
            F.when(kind == k["null_request_ts"], null_long)
            .when(kind == k["request_ts_outside_date"], off_ts)
            .when(mismatch & ~shift_user, F.col("request_ts") + 1)
            .otherwise(F.col("request_ts"))
            .alias("request_ts"),
            F.when(F.col("_copy") == 1, F.col("position") + cfg.max_targets)
            .otherwise(F.col("position"))
            .alias("position"),
            "duration_ms",
            "watch_ms",
            *[
                F.when((kind == k["label_out_of_range"]) & (bad_task == i), F.lit(BAD_LABEL))
                .otherwise(F.col(t))
                .alias(t)
                for i, t in enumerate(TASKS)
            ],
            _set_when(kind, k["request_ts_outside_date"], off_date, "date").alias("date"),
        )
        return _conform(edited, IMPRESSIONS)

    return _bad


def with_action_bad_rows(cfg: SyntheticConfig) -> Transform:
    """Clean actions -> the same plus ACTION_FAULTS at bad_row_rate (identity at 0).

    "duplicate" adds an exact copy of a clean row."""
    if cfg.bad_row_rate == 0:
        return lambda df: df
    k = {name: i for i, name in enumerate(ACTION_FAULTS)}
    null_long = F.lit(None).cast("long")

    def _bad(actions: DataFrame) -> DataFrame:
        require_columns(actions, USER_ACTIONS.column_names, "with_action_bad_rows")
        keys = (F.col("user_id"), F.col("item_id"), F.col("event_ts"), F.col("action"))
        kind = F.col("_fault")
        off_date, off_ts = _off_date(*cfg.action_dates, "event_ts")
        edited = _mark_faults(actions, cfg, ACTION_FAULTS, *keys).select(
            _set_when(kind, k["null_user_id"], null_long, "user_id").alias("user_id"),
            _set_when(kind, k["null_item_id"], null_long, "item_id").alias("item_id"),
            "author_id",
            F.when(kind == k["null_event_ts"], null_long)
            .when(kind == k["event_ts_outside_date"], off_ts)
            .otherwise(F.col("event_ts"))
            .alias("event_ts"),
            "action",
            "watch_ms",
            "duration_ms",
            _set_when(kind, k["event_ts_outside_date"], off_date, "date").alias("date"),
        )
        return _conform(edited, USER_ACTIONS)

    return _bad


# ---- one-call forms -------------------------------------------------------------------------


def generate_impressions(cfg: SyntheticConfig) -> Transform:
    """users (`user_id`) -> `impressions` of the request days, bad rows included."""
    return lambda users: users.transform(clean_impressions(cfg)).transform(with_impression_bad_rows(cfg))


def generate_actions(cfg: SyntheticConfig, clean: DataFrame | None = None) -> Transform:
    """users (`user_id`) -> `user_actions`: warm-up events plus the watched targets of `clean`
    (the output of `clean_impressions(cfg)`, recomputed when not given), bad rows included.

    Pass the job's cached clean impressions to avoid generating them twice; either way the
    actions match `generate_impressions(cfg)` row for row, as both are hashed from the keys."""

    def _actions(users: DataFrame) -> DataFrame:
        impressions = clean if clean is not None else users.transform(clean_impressions(cfg))
        return (
            users.transform(warmup_actions(cfg))
            .unionByName(actions_from_impressions(impressions))
            .transform(with_action_bad_rows(cfg))
        )

    return _actions
