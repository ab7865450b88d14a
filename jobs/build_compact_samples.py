"""Builds the `request_samples_compact` partition of one day: each request of `request_samples`
with its user's latest cached VISTA summary strictly before the request and only the raw events
since that summary (at most --max-recent), targets and labels unchanged (pipelines/summary_join.py).

Reads `request_samples` partition D (published data only) and the `user_summaries` rows of
`--model-version` from the days D - --max-staleness-days .. D (a summary of day D is as of the end
of D, after every request of D, so the join never attaches it; older ones are too stale to keep),
and replaces partition D in one Delta commit (userMetadata: date, model_version, source versions).
Every request row must come out exactly once: the job restores the table if the written count
differs from the request_samples partition's.

    spark-submit jobs/build_compact_samples.py --warehouse warehouse --date 2026-01-03 \\
        --model-version vista-20260102
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from jobs.cli import exit_on_job_error, job_parser, previous_day
from jobs.delta_io import latest_version, partition_predicate, read_table, table_exists
from jobs.runner import Summary, run_job
from jobs.verified_write import ConservationError, TableWrites
from pipelines.request_samples import clustered_by_user
from pipelines.summary_join import join_latest_summary
from schemas import DEFAULT_WAREHOUSE, REQUEST_SAMPLES, REQUEST_SAMPLES_COMPACT, USER_SUMMARIES

DEFAULT_MAX_RECENT = 256
DEFAULT_MAX_STALENESS_DAYS = 7


JOB = "build_compact_samples"


class CompactCountError(ConservationError):
    """The compact partition does not hold exactly the request_samples partition's requests."""


@dataclass(frozen=True)
class Args:
    date: str
    model_version: str  # the user_summaries model_version to attach
    warehouse: str = DEFAULT_WAREHOUSE
    max_recent: int = DEFAULT_MAX_RECENT  # raw events kept per request after its summary
    max_staleness_days: int = DEFAULT_MAX_STALENESS_DAYS  # older summaries are ignored


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("build_compact_samples", __doc__)
    p.add_argument("--model-version", required=True, help="user_summaries model_version to attach")
    p.add_argument(
        "--max-recent",
        type=int,
        default=DEFAULT_MAX_RECENT,
        help="raw events kept per request after its summary, most recent first (default: %(default)s)",
    )
    p.add_argument(
        "--max-staleness-days",
        type=int,
        default=DEFAULT_MAX_STALENESS_DAYS,
        help="ignore summaries refreshed more than this many days before D (default: %(default)s)",
    )
    ns = p.parse_args(argv)
    if ns.max_recent < 0 or ns.max_staleness_days < 0:
        p.error(
            "--max-recent and --max-staleness-days must be >= 0, "
            f"got {ns.max_recent}, {ns.max_staleness_days}"
        )
    return Args(
        date=ns.date,
        model_version=ns.model_version,
        warehouse=ns.warehouse,
        max_recent=ns.max_recent,
        max_staleness_days=ns.max_staleness_days,
    )


def _written_counts(written: DataFrame) -> Row | None:
    return written.agg(
        F.count("*").alias("requests"),
        F.countDistinct("request_id").alias("ids"),
        F.count("summary").alias("with_summary"),
        F.sum("hist_len").alias("raw"),
        F.sum("source_hist_len").alias("source"),
    ).first()


def run(spark: SparkSession, args: Args) -> Summary:
    """Builds partition D of request_samples_compact; raises CompactCountError, after restoring
    the table, unless it holds each of request_samples' requests of D exactly once."""
    samples_path = REQUEST_SAMPLES.location(args.warehouse)
    summaries_path = USER_SUMMARIES.location(args.warehouse)
    out_path = REQUEST_SAMPLES_COMPACT.location(args.warehouse)
    first = previous_day(args.date, days=args.max_staleness_days)
    samples_version = latest_version(spark, samples_path) if table_exists(spark, samples_path) else None
    requests = read_table(spark, REQUEST_SAMPLES, samples_path).where(F.col("date") == args.date)
    if table_exists(spark, summaries_path):
        summaries_version: int | None = latest_version(spark, summaries_path)
        summaries = read_table(spark, USER_SUMMARIES, summaries_path).where(
            F.col("date").between(first, args.date) & (F.col("model_version") == args.model_version)
        )
    else:  # no refresh yet: every request keeps its recent raw events only
        summaries_version = None
        summaries = spark.createDataFrame([], USER_SUMMARIES.spark_schema())
    compact = requests.transform(join_latest_summary(summaries, args.model_version, args.max_recent))
    compact = compact.transform(clustered_by_user)
    meta = {
        "date": args.date,
        "model_version": args.model_version,
        "max_recent": args.max_recent,
        "request_samples_version": samples_version,
        "user_summaries_version": summaries_version,
    }
    expected = requests.count()

    def each_request_once(row: Row) -> str | None:
        got = (int(row["requests"]), int(row["ids"]))
        if got == (expected, expected):
            return None
        return (
            f"date {args.date}: request_samples has {expected} requests, the compact partition "
            f"(rows, distinct ids) {got}"
        )

    written = TableWrites(spark, JOB, f"date {args.date}").overwrite_verified(
        compact,
        REQUEST_SAMPLES_COMPACT,
        out_path,
        partition_predicate(REQUEST_SAMPLES_COMPACT, {"date": args.date}),
        _written_counts,
        each_request_once,
        json.dumps(meta, sort_keys=True),
        error=CompactCountError,
    )
    return {
        "date": args.date,
        "model_version": args.model_version,
        "requests": expected,
        "with_summary": int(written["with_summary"]),
        "raw_events_kept": int(written["raw"] or 0),
        "source_history_events": int(written["source"] or 0),
        "request_samples_version": samples_version,
        "user_summaries_version": summaries_version,
        "version": latest_version(spark, out_path),
    }


def main(argv: list[str] | None = None) -> Summary:
    return run_job(JOB, run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error(JOB, main, sys.argv[1:])
