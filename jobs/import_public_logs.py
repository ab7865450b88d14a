"""Imports a public interaction log (MovieLens, Tmall 2014) as `impressions` and `user_actions`.

A request is a burst of one user's interactions (a gap of more than --session-gap-minutes to the
previous one starts a new burst; --max-targets optionally cuts a burst into feed pages); its
targets are the burst's items with labels from the rating or action type; the history of a
request is everything the user did before it. The mapping is documented in
pipelines/public_logs.py and in the README ("Public logs"). Lines that do not parse go to
`quarantine` (source_table `public_logs:<format>`) with the reason; nothing is dropped.

Formats (--format):
  movielens      ml-100k u.data: user<TAB>item<TAB>rating<TAB>unix seconds (--items: u.item)
  movielens-csv  ml-latest ratings.csv: userId,movieId,rating,timestamp (--items: movies.csv)
  tmall          Tmall 2014: user_id,brand_id,type,visit_datetime; type 0 click, 1 buy,
                 2 collect, 3 cart; the date has month and day only (--year supplies the year)

The import replaces, in one commit per table, the date range it covers in impressions and
user_actions, and every quarantine row of its source_table: a rerun gives the same tables. Pass
all files of one log in one run (--input takes several paths or a glob). Then run the usual jobs
(build_user_history, build_request_samples) on the warehouse.

    python -m jobs.import_public_logs --warehouse /tmp/wh --format movielens \\
        --input ../shared/data/ml-100k/u.data --items ../shared/data/ml-100k/u.item
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.cli import configure_logging, job_parser, timed
from jobs.counts import reason_counts
from jobs.delta_io import date_range_predicate, last_commit_metrics, overwrite_where, partition_predicate
from jobs.spark_session import get_spark
from pipelines.public_logs import (
    DEFAULT_SESSION_GAP_MS,
    DEFAULT_TMALL_YEAR,
    FOLDED,
    FORMATS,
    HEADER,
    LINE,
    MINUTE_MS,
    MOVIELENS,
    SOURCE_FILE,
    TMALL,
    UNKNOWN_AUTHOR,
    LogFormat,
    PublicLogError,
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
from schemas import IMPRESSIONS, QUARANTINE, USER_ACTIONS

log = logging.getLogger("import_public_logs")

# Row order inside each date's file: a user's rows together, in time order (as generate_logs).
CLUSTER_BY: dict[str, tuple[str, ...]] = {
    IMPRESSIONS.name: ("user_id", "request_ts", "position"),
    USER_ACTIONS.name: ("user_id", "event_ts"),
}


class ConservationError(RuntimeError):
    """Lines read != impressions + interactions folded into them + lines quarantined + headers."""


@dataclass(frozen=True)
class Args:
    warehouse: str
    fmt: LogFormat
    inputs: tuple[str, ...]
    items: str | None
    session_gap_ms: int
    max_targets: int
    year: int


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("import_public_logs", __doc__, with_date=False)
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="layout of --input (see above)")
    p.add_argument("--input", required=True, nargs="+", help="the log: one or more files, folders or globs")
    p.add_argument("--items", help="MovieLens item file for author_id (first genre): u.item or movies.csv")
    p.add_argument(
        "--session-gap-minutes",
        type=float,
        default=DEFAULT_SESSION_GAP_MS / MINUTE_MS,
        help="a longer gap between two interactions of a user starts a new request (default: %(default)s)",
    )
    p.add_argument(
        "--max-targets", type=int, default=0, help="cut a burst into requests of at most this many items (default: 0, no limit)"
    )
    p.add_argument("--year", type=int, help=f"tmall only: the year of visit_datetime (default: {DEFAULT_TMALL_YEAR})")
    ns = p.parse_args(argv)
    fmt = FORMATS[ns.format]
    if ns.session_gap_minutes < 0:
        p.error(f"--session-gap-minutes must be >= 0, got {ns.session_gap_minutes}")
    if ns.max_targets < 0:
        p.error(f"--max-targets must be >= 0 (0: no limit), got {ns.max_targets}")
    if ns.year is not None and fmt is not TMALL:
        p.error(f"--year applies to --format tmall only (its dates have no year); {fmt.name} has unix timestamps")
    if ns.items is not None and fmt is TMALL:
        p.error("--items applies to the MovieLens formats only (u.item or movies.csv); tmall has no item file")
    for path in (*ns.input, *([ns.items] if ns.items else [])):
        if "://" not in path and not glob.glob(path):
            p.error(f"input {path!r} does not exist (resolved: {Path(path).resolve()}); check the path")
    year = DEFAULT_TMALL_YEAR if ns.year is None else ns.year
    return Args(
        ns.warehouse, fmt, tuple(ns.input), ns.items, round(ns.session_gap_minutes * MINUTE_MS), ns.max_targets, year
    )


def read_lines(spark: SparkSession, paths: tuple[str, ...] | list[str]) -> DataFrame:
    """Text lines (`line`) and the file each came from (`source_file`)."""
    return spark.read.text(list(paths)).select(
        F.col("value").alias(LINE), F.col("_metadata.file_path").alias(SOURCE_FILE)
    )


def read_items(spark: SparkSession, fmt: LogFormat, path: str) -> DataFrame:
    """The item file as tagged rows: item_id, author_id, reject_reason, line, source_file."""
    if fmt is MOVIELENS:
        # u.item is latin-1; only the id and the genre flags (ASCII) are read, so UTF-8 decoding
        # of the titles does not matter.
        return read_lines(spark, [path]).transform(items_from_u_item)
    movies = spark.read.option("header", True).option("mode", "PERMISSIVE").csv(path)
    missing = [c for c in ("movieId", "genres") if c not in movies.columns]
    if missing:
        raise PublicLogError(
            f"--items {path}: expected a movies.csv with header movieId,title,genres; missing {missing}, got {movies.columns}"
        )
    text = F.concat_ws(",", *[F.col(c) for c in movies.columns])
    return movies.withColumns({LINE: text, SOURCE_FILE: F.col("_metadata.file_path")}).transform(items_from_movies_csv).withColumn(
        SOURCE_FILE, F.lit(path)
    )


def utc_day(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).date().isoformat()


def _clustered_by_date(df: DataFrame, table: str) -> DataFrame:
    """One file per date, a user's rows together in time order."""
    return df.repartition("date").sortWithinPartitions("date", *CLUSTER_BY[table])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Imports the log and writes the three tables; returns the summary it logs."""
    configure_logging()
    args = parse_args(argv)
    fmt = args.fmt
    spark = get_spark()
    metadata = json.dumps(
        {"job": "import_public_logs", "format": fmt.name, "input": list(args.inputs), "items": args.items,
         "session_gap_ms": args.session_gap_ms, "max_targets": args.max_targets, "year": args.year},
        sort_keys=True,
    )  # fmt: skip
    with timed() as t:
        tagged = read_lines(spark, args.inputs).transform(parse_interactions(fmt, args.year))
        tagged = tagged.persist(StorageLevel.MEMORY_AND_DISK)
        reasons = reason_counts(tagged)
        valid = reasons.get(None, 0)
        if valid == 0:
            raise PublicLogError(
                f"no usable {fmt.name} line in {list(args.inputs)} (reasons: {dict(reasons)}); "
                f"expected {fmt.doc}. Check --format and the file."
            )
        quarantine = tagged.transform(rejected_to_quarantine(fmt.source_table))

        items = None
        item_stats: dict[str, Any] = {}
        if args.items:
            item_rows = read_items(spark, fmt, args.items).persist(StorageLevel.MEMORY_AND_DISK)
            item_reasons = reason_counts(item_rows)
            # One author per item, deterministically, should the file repeat an id.
            items = valid_rows(item_rows).groupBy("item_id").agg(F.min("author_id").alias("author_id"))
            quarantine = quarantine.unionByName(item_rows.transform(rejected_to_quarantine(fmt.source_table)))
            item_stats = {"item_rows": item_reasons.get(None, 0), "item_rows_quarantined": sum(n for r, n in item_reasons.items() if r)}

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
        quarantined = {str(r): n for r, n in sorted(reasons.items(), key=lambda kv: str(kv[0])) if r not in (None, HEADER)}
        lines = sum(reasons.values())
        if interactions != valid:
            raise ConservationError(
                f"{lines} lines: {valid} parsed but {interactions} reached the targets; expected equal (a bug in with_requests)"
            )

        first_day, last_day = (utc_day(int(stats[c])) for c in ("first_ts", "last_ts"))
        dates = date_range_predicate(first_day, last_day)
        overwrite_where(
            quarantine, QUARANTINE, QUARANTINE.location(args.warehouse),
            partition_predicate(QUARANTINE, {"source_table": fmt.source_table}), user_metadata=metadata,
        )  # fmt: skip
        written: dict[str, int] = {}
        for contract, rows in ((IMPRESSIONS, targets.transform(to_impressions(fmt))), (USER_ACTIONS, to_user_actions(targets))):
            path = contract.location(args.warehouse)
            overwrite_where(_clustered_by_date(rows, contract.name), contract, path, dates, user_metadata=metadata)
            written[contract.name] = last_commit_metrics(spark, path).get("numOutputRows", 0)
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
        "seconds": round(t["seconds"], 1),
    }
    if lines != headers + sum(quarantined.values()) + summary["impressions"] + summary["folded_repeats"]:
        raise ConservationError(f"lines read != headers + quarantined + impressions + folded repeats: {summary}")
    log.info("import_public_logs: %s", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
