"""Imports a public log (MovieLens, Tmall 2014, MIND) as `impressions` and `user_actions`.

A request is a burst of one user's interactions (a gap of more than --session-gap-minutes to the
previous one starts a new burst; --max-targets optionally cuts a burst into feed pages); its
targets are the burst's items with labels from the rating or action type; the history of a
request is everything the user did before it. MIND logs its requests itself: each behaviors line
is one request, its shown items the targets (pipelines/mind.py). The mappings are documented in
pipelines/public_logs.py, pipelines/mind.py and docs/public-logs.md. Lines that do not parse go to
`quarantine` (source_table `public_logs:<format>`) with the reason; nothing is dropped.

Formats (--format):
  movielens      ml-100k u.data: user<TAB>item<TAB>rating<TAB>unix seconds (--items: u.item)
  movielens-csv  ml-latest ratings.csv: userId,movieId,rating,timestamp (--items: movies.csv)
  tmall          Tmall 2014: user_id,brand_id,type,visit_datetime; type 0 click, 1 buy,
                 2 collect, 3 cart; the date has month and day only (--year supplies the year)
  mind           MIND behaviors.tsv: impression id, U<user>, time, history, N<id>-<click> ...
                 (--items: news.tsv, its category is the author)

The import replaces, in one commit per table, the date range it covers in impressions and
user_actions, and every quarantine row of its source_table: a rerun gives the same tables. Pass
all files of one log in one run (--input takes several paths or a glob). Then run the usual jobs
(build_user_history, build_request_samples) on the warehouse.

    python -m jobs.import_public_logs --warehouse /tmp/wh --format movielens \\
        --input ../shared/data/ml-100k/u.data --items ../shared/data/ml-100k/u.item
"""

from __future__ import annotations

import glob
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.cli import exit_on_job_error, job_parser
from jobs.counts import reason_counts
from jobs.delta_io import date_range_predicate, last_commit_metrics, overwrite_where, partition_predicate
from jobs.runner import Summary, run_job
from jobs.verified_write import ConservationError
from pipelines.mind import (
    MIND,
    SHOWN,
    items_from_news,
    mind_targets,
    parse_behaviors,
    pre_window_clicks,
    window_clicks,
)
from pipelines.public_logs import (
    DEFAULT_SESSION_GAP_MS,
    DEFAULT_TMALL_YEAR,
    FOLDED,
    FORMATS,
    HEADER,
    LINE,
    MOVIELENS,
    SOURCE_FILE,
    TMALL,
    TS,
    UNKNOWN_AUTHOR,
    LogFormat,
    PublicLogError,
    impression_rows,
    items_from_movies_csv,
    items_from_u_item,
    parse_interactions,
    rejected_to_quarantine,
    to_impressions,
    to_user_actions,
    with_authors,
    with_feedback,
    with_requests,
)
from pipelines.validity import valid_rows
from schemas import DEFAULT_WAREHOUSE, IMPRESSIONS, QUARANTINE, USER_ACTIONS
from schemas.constants import MINUTE_MS, utc_day

# Every --format: the interaction logs of pipelines/public_logs.py and MIND's impression log.
ALL_FORMATS: dict[str, LogFormat] = {**FORMATS, MIND.name: MIND}
PRE_WINDOW = "pre_window"  # MIND events: from the history column (True) or a click in the window

# Row order inside each date's file: a user's rows together, in time order (as generate_logs).
CLUSTER_BY: dict[str, tuple[str, ...]] = {
    IMPRESSIONS.name: ("user_id", "request_ts", "position"),
    USER_ACTIONS.name: ("user_id", "event_ts"),
}


@dataclass(frozen=True)
class Args:
    fmt: LogFormat
    inputs: tuple[str, ...]
    warehouse: str = DEFAULT_WAREHOUSE
    items: str | None = None  # MovieLens item file (u.item or movies.csv) for author_id
    session_gap_ms: int = DEFAULT_SESSION_GAP_MS
    max_targets: int = 0  # 0: no limit
    year: int = DEFAULT_TMALL_YEAR  # tmall only


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("import_public_logs", __doc__, with_date=False)
    p.add_argument(
        "--format", required=True, choices=sorted(ALL_FORMATS), help="layout of --input (see above)"
    )
    p.add_argument("--input", required=True, nargs="+", help="the log: one or more files, folders or globs")
    p.add_argument(
        "--items",
        help="item file for author_id: MovieLens u.item or movies.csv (first genre), "
        "MIND news.tsv (category)",
    )
    p.add_argument(
        "--session-gap-minutes",
        type=float,
        default=DEFAULT_SESSION_GAP_MS / MINUTE_MS,
        help="a longer gap between two interactions of a user starts a new request (default: %(default)s)",
    )
    p.add_argument(
        "--max-targets", type=int, default=0,
        help="cut a burst into requests of at most this many items (default: 0, no limit)",
    )  # fmt: skip
    p.add_argument(
        "--year", type=int, help=f"tmall only: the year of visit_datetime (default: {DEFAULT_TMALL_YEAR})"
    )
    ns = p.parse_args(argv)
    fmt = ALL_FORMATS[ns.format]
    if ns.session_gap_minutes < 0:
        p.error(f"--session-gap-minutes must be >= 0, got {ns.session_gap_minutes}")
    if ns.max_targets < 0:
        p.error(f"--max-targets must be >= 0 (0: no limit), got {ns.max_targets}")
    if ns.year is not None and fmt is not TMALL:
        p.error(
            f"--year applies to --format tmall only (its dates have no year); {fmt.name} has unix timestamps"
        )
    if ns.items is not None and fmt is TMALL:
        p.error(
            "--items applies to MovieLens (u.item or movies.csv) and MIND (news.tsv); tmall has no item file"
        )
    for path in (*ns.input, *([ns.items] if ns.items else [])):
        if "://" not in path and not glob.glob(path):
            p.error(f"input {path!r} does not exist (resolved: {Path(path).resolve()}); check the path")
    year = DEFAULT_TMALL_YEAR if ns.year is None else ns.year
    return Args(
        fmt=fmt, inputs=tuple(ns.input), warehouse=ns.warehouse, items=ns.items,
        session_gap_ms=round(ns.session_gap_minutes * MINUTE_MS), max_targets=ns.max_targets, year=year,
    )  # fmt: skip


def read_lines(spark: SparkSession, paths: tuple[str, ...] | list[str]) -> DataFrame:
    """Text lines (`line`) and the file each came from (`source_file`)."""
    return spark.read.text(list(paths)).select(
        F.col("value").alias(LINE), F.col("_metadata.file_path").alias(SOURCE_FILE)
    )


def read_items(spark: SparkSession, fmt: LogFormat, path: str) -> DataFrame:
    """The item file as tagged rows: item_id, author_id, reject_reason, line, source_file."""
    if fmt is MIND:
        return read_lines(spark, [path]).transform(items_from_news)
    if fmt is MOVIELENS:
        # u.item is latin-1; only the id and the genre flags (ASCII) are read, so UTF-8 decoding
        # of the titles does not matter.
        return read_lines(spark, [path]).transform(items_from_u_item)
    movies = spark.read.option("header", True).option("mode", "PERMISSIVE").csv(path)
    missing = [c for c in ("movieId", "genres") if c not in movies.columns]
    if missing:
        raise PublicLogError(
            f"--items {path}: expected a movies.csv with header movieId,title,genres; "
            f"missing {missing}, got {movies.columns}"
        )
    text = F.concat_ws(",", *[F.col(c) for c in movies.columns])
    return (
        movies.withColumns({LINE: text, SOURCE_FILE: F.col("_metadata.file_path")})
        .transform(items_from_movies_csv)
        .withColumn(SOURCE_FILE, F.lit(path))
    )


def _clustered_by_date(df: DataFrame, table: str) -> DataFrame:
    """One file per date, a user's rows together in time order."""
    return df.repartition("date").sortWithinPartitions("date", *CLUSTER_BY[table])


def _write_tables(
    spark: SparkSession,
    args: Args,
    quarantine: DataFrame,
    impressions: DataFrame,
    actions: DataFrame,
    days: tuple[str, str],
    metadata: str,
) -> dict[str, int]:
    """Replaces the format's quarantine rows and the day range of impressions and user_actions, one
    commit per table; returns the rows written per table."""
    overwrite_where(
        quarantine, QUARANTINE, QUARANTINE.location(args.warehouse),
        partition_predicate(QUARANTINE, {"source_table": args.fmt.source_table}), user_metadata=metadata,
    )  # fmt: skip
    written: dict[str, int] = {}
    for contract, rows in ((IMPRESSIONS, impressions), (USER_ACTIONS, actions)):
        path = contract.location(args.warehouse)
        overwrite_where(
            _clustered_by_date(rows, contract.name), contract, path, date_range_predicate(*days),
            user_metadata=metadata,
        )  # fmt: skip
        written[contract.name] = last_commit_metrics(spark, path).get("numOutputRows", 0)
    return written


def _metadata(args: Args) -> str:
    return json.dumps(
        {"job": "import_public_logs", "format": args.fmt.name, "input": list(args.inputs),
         "items": args.items, "session_gap_ms": args.session_gap_ms, "max_targets": args.max_targets,
         "year": args.year},
        sort_keys=True,
    )  # fmt: skip


def _item_authors(
    spark: SparkSession, args: Args, quarantine: DataFrame
) -> tuple[DataFrame | None, DataFrame, dict[str, Any]]:
    """The --items file as (item_id, author_id), the quarantine with its bad rows, and its counts."""
    if not args.items:
        return None, quarantine, {}
    item_rows = read_items(spark, args.fmt, args.items).persist(StorageLevel.MEMORY_AND_DISK)
    item_reasons = reason_counts(item_rows)
    # One author per item, deterministically, should the file repeat an id.
    items = valid_rows(item_rows).groupBy("item_id").agg(F.min("author_id").alias("author_id"))
    quarantine = quarantine.unionByName(item_rows.transform(rejected_to_quarantine(args.fmt.source_table)))
    stats = {
        "item_rows": item_reasons.get(None, 0),
        "item_rows_quarantined": sum(n for r, n in item_reasons.items() if r),
    }
    return items, quarantine, stats


def _no_usable_line(args: Args, reasons: dict[str | None, int]) -> PublicLogError:
    return PublicLogError(
        f"no usable {args.fmt.name} line in {list(args.inputs)} (reasons: {dict(reasons)}); "
        f"expected {args.fmt.doc}. Check --format and the file."
    )


def run(spark: SparkSession, args: Args) -> Summary:
    """Imports the log and writes the three tables; returns what was read, written and quarantined."""
    if args.fmt is MIND:
        return run_mind(spark, args)
    fmt = args.fmt
    metadata = _metadata(args)
    tagged = read_lines(spark, args.inputs).transform(parse_interactions(fmt, args.year))
    tagged = tagged.persist(StorageLevel.MEMORY_AND_DISK)
    reasons = reason_counts(tagged)
    valid = reasons.get(None, 0)
    if valid == 0:
        raise _no_usable_line(args, reasons)
    items, quarantine, item_stats = _item_authors(
        spark, args, tagged.transform(rejected_to_quarantine(fmt.source_table))
    )

    targets = (
        valid_rows(tagged)
        .transform(with_feedback(fmt))
        .transform(with_authors(items))
        .transform(with_requests(args.session_gap_ms, args.max_targets))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    stats = targets.agg(
        F.count("*").alias("targets"),
        F.sum(FOLDED).alias("interactions"),
        F.countDistinct("user_id").alias("users"),
        F.countDistinct("user_id", "request_ts", "page").alias("requests"),
        F.min("request_ts").alias("first_ts"),
        F.max("event_ts").alias("last_ts"),
        F.sum((F.col("author_id") == UNKNOWN_AUTHOR).cast("long")).alias("unknown_author"),
    ).first()
    if stats is None:
        raise RuntimeError("aggregate over the imported targets returned nothing")
    n_targets, interactions = int(stats["targets"]), int(stats["interactions"])
    headers = reasons.get(HEADER, 0)
    quarantined = {
        str(r): n for r, n in sorted(reasons.items(), key=lambda kv: str(kv[0])) if r not in (None, HEADER)
    }
    lines = sum(reasons.values())
    if interactions != valid:
        raise ConservationError(
            f"{lines} lines: {valid} parsed but {interactions} reached the targets; "
            "expected equal (a bug in with_requests)"
        )

    first_day, last_day = (utc_day(int(stats[c])) for c in ("first_ts", "last_ts"))
    written = _write_tables(
        spark, args, quarantine, targets.transform(to_impressions(fmt)), to_user_actions(targets),
        (first_day, last_day), metadata,
    )  # fmt: skip
    tagged.unpersist()
    targets.unpersist()
    if written[IMPRESSIONS.name] != n_targets:
        raise ConservationError(f"impressions written {written[IMPRESSIONS.name]} != targets {n_targets}")
    summary: dict[str, Any] = {
        "format": fmt.name,
        "lines_read": lines,
        "header_lines": headers,
        "interactions": valid,
        "quarantined": quarantined,
        "impressions": written[IMPRESSIONS.name],
        "folded_repeats": valid - n_targets,
        "user_actions": written[USER_ACTIONS.name],
        "requests": int(stats["requests"]),
        "users": int(stats["users"]),
        "dates": [first_day, last_day],
        "session_gap_minutes": args.session_gap_ms / MINUTE_MS,
        "max_targets": args.max_targets,
        **({"year": args.year} if fmt is TMALL else {}),
        **item_stats,
        # author_id 0: no item file, an item missing from it, or its genre "unknown"
        "targets_with_unknown_author": int(stats["unknown_author"]),
    }
    if lines != headers + sum(quarantined.values()) + summary["impressions"] + summary["folded_repeats"]:
        raise ConservationError(
            f"lines read != headers + quarantined + impressions + folded repeats: {summary}"
        )
    return summary


def run_mind(spark: SparkSession, args: Args) -> Summary:
    """MIND behaviors.tsv (and news.tsv as --items): each line is a request as logged (see
    pipelines/mind.py). Conservation: lines = quarantined + requests; impressions = slots of the
    valid lines; user_actions = their clicks + the history column of each user's earliest line."""
    tagged = read_lines(spark, args.inputs).transform(parse_behaviors).persist(StorageLevel.MEMORY_AND_DISK)
    reasons = reason_counts(tagged)
    lines, valid_lines = sum(reasons.values()), reasons.get(None, 0)
    if valid_lines == 0:
        raise _no_usable_line(args, reasons)
    items, quarantine, item_stats = _item_authors(
        spark, args, tagged.transform(rejected_to_quarantine(MIND.source_table))
    )
    valid = valid_rows(tagged)
    targets = valid.transform(mind_targets(items)).persist(StorageLevel.MEMORY_AND_DISK)
    in_window = window_clicks(targets).withColumn(PRE_WINDOW, F.lit(False))
    before = valid.transform(pre_window_clicks(items)).withColumn(PRE_WINDOW, F.lit(True))
    events = in_window.unionByName(before).persist(StorageLevel.MEMORY_AND_DISK)
    stats = valid.agg(
        F.sum(F.size(SHOWN)).alias("slots"),
        F.countDistinct("user_id").alias("users"),
        F.min(TS).alias("first_request_ts"),
        F.max(TS).alias("last_ts"),
    ).first()
    if stats is None:
        raise RuntimeError("aggregate over the imported MIND lines returned nothing")
    event_stats = events.agg(
        F.count("*").alias("events"),
        F.sum(F.col(PRE_WINDOW).cast("long")).alias("before"),
        F.min("event_ts").alias("first_ts"),
    ).first()
    target_stats = targets.agg(
        F.count("*").alias("targets"),
        F.sum("finish").alias("clicks"),
        F.sum((F.col("author_id") == UNKNOWN_AUTHOR).cast("long")).alias("unknown_author"),
    ).first()
    if event_stats is None or target_stats is None:
        raise RuntimeError("aggregate over the imported MIND lines returned nothing")
    n_targets, clicks = int(target_stats["targets"]), int(target_stats["clicks"] or 0)
    if n_targets != int(stats["slots"]):
        raise ConservationError(f"{int(stats['slots'])} impression slots parsed but {n_targets} targets made")
    first_ts = min(int(stats["first_request_ts"]), int(event_stats["first_ts"] or stats["first_request_ts"]))
    days = (utc_day(first_ts), utc_day(int(stats["last_ts"])))
    written = _write_tables(
        spark, args, quarantine, impression_rows(targets), to_user_actions(events), days,
        _metadata(args),
    )  # fmt: skip
    tagged.unpersist()
    targets.unpersist()
    events.unpersist()
    quarantined = {str(r): n for r, n in sorted(reasons.items(), key=lambda kv: str(kv[0])) if r is not None}
    summary: dict[str, Any] = {
        "format": MIND.name,
        "lines_read": lines,
        "quarantined": quarantined,
        "requests": valid_lines,
        "users": int(stats["users"]),
        "impressions": written[IMPRESSIONS.name],
        "clicks": clicks,
        "user_actions": written[USER_ACTIONS.name],
        "pre_window_events": int(event_stats["before"] or 0),
        "dates": list(days),
        **item_stats,
        "targets_with_unknown_author": int(target_stats["unknown_author"] or 0),
    }
    if lines != sum(quarantined.values()) + valid_lines or written[IMPRESSIONS.name] != n_targets:
        raise ConservationError(f"lines read != quarantined + requests, or impressions != slots: {summary}")
    if written[USER_ACTIONS.name] != clicks + summary["pre_window_events"]:
        raise ConservationError(f"user_actions written != in-window clicks + pre-window history: {summary}")
    return summary


def main(argv: list[str] | None = None) -> Summary:
    """Imports the log and writes the three tables; returns the summary it logs (with `seconds`)."""
    return run_job("import_public_logs", run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error("import_public_logs", main, sys.argv[1:])
