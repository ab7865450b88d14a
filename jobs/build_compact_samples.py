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

import datetime as dt
import json
import logging
import sys
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import functions as F

from jobs.cli import configure_logging, job_parser, timed
from jobs.delta_io import ensure_table, latest_version, overwrite_partition, read_table, table_exists
from jobs.spark_session import get_spark
from pipelines.request_samples import clustered_by_user
from pipelines.summary_join import join_latest_summary
from schemas import REQUEST_SAMPLES, REQUEST_SAMPLES_COMPACT, USER_SUMMARIES

log = logging.getLogger("build_compact_samples")

DEFAULT_MAX_RECENT = 256


class CompactCountError(RuntimeError):
    """The compact partition does not hold exactly the request_samples partition's requests."""


@dataclass(frozen=True)
class Args:
    warehouse: str
    date: str
    model_version: str
    max_recent: int = DEFAULT_MAX_RECENT
    max_staleness_days: int = 7


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("build_compact_samples", __doc__)
    p.add_argument("--model-version", required=True, help="user_summaries model_version to attach")
    p.add_argument("--max-recent", type=int, default=DEFAULT_MAX_RECENT,
                   help="raw events kept per request after its summary, most recent first (default: %(default)s)")
    p.add_argument("--max-staleness-days", type=int, default=7,
                   help="ignore summaries refreshed more than this many days before D (default: %(default)s)")
    ns = p.parse_args(argv)
    if ns.max_recent < 0 or ns.max_staleness_days < 0:
        p.error(f"--max-recent and --max-staleness-days must be >= 0, got {ns.max_recent}, {ns.max_staleness_days}")
    return Args(ns.warehouse, ns.date, ns.model_version, ns.max_recent, ns.max_staleness_days)


def main(argv: list[str] | None = None) -> dict[str, object]:
    configure_logging()
    args = parse_args(argv)
    spark = get_spark()
    samples_path = REQUEST_SAMPLES.location(args.warehouse)
    summaries_path = USER_SUMMARIES.location(args.warehouse)
    out_path = REQUEST_SAMPLES_COMPACT.location(args.warehouse)
    first = (dt.date.fromisoformat(args.date) - dt.timedelta(days=args.max_staleness_days)).isoformat()
    with timed() as t:
        samples_version = latest_version(spark, samples_path) if table_exists(spark, samples_path) else None
        requests = read_table(spark, REQUEST_SAMPLES, samples_path).where(F.col("date") == args.date)
        if table_exists(spark, summaries_path):
            summaries_version: int | None = latest_version(spark, summaries_path)
            summaries = read_table(spark, USER_SUMMARIES, summaries_path).where(
                (F.col("date") >= first) & (F.col("date") <= args.date) & (F.col("model_version") == args.model_version)
            )
        else:  # no refresh yet: every request keeps its recent raw events only
            summaries_version = None
            summaries = spark.createDataFrame([], USER_SUMMARIES.spark_schema())
        compact = requests.transform(join_latest_summary(summaries, args.model_version, args.max_recent)).transform(
            clustered_by_user
        )
        ensure_table(spark, REQUEST_SAMPLES_COMPACT, out_path)
        before = latest_version(spark, out_path)
        meta = json.dumps({"date": args.date, "model_version": args.model_version, "max_recent": args.max_recent,
                           "request_samples_version": samples_version, "user_summaries_version": summaries_version},
                          sort_keys=True)
        overwrite_partition(compact, REQUEST_SAMPLES_COMPACT, out_path, {"date": args.date}, user_metadata=meta)
        expected = requests.count()
        written = (
            spark.read.format("delta").load(out_path).where(F.col("date") == args.date)
            .agg(F.count("*").alias("requests"), F.countDistinct("request_id").alias("ids"),
                 F.count("summary").alias("with_summary"), F.sum("hist_len").alias("raw"),
                 F.sum("source_hist_len").alias("source"))
            .first()
        )
        if written is None or int(written["requests"]) != expected or int(written["ids"]) != expected:
            DeltaTable.forPath(spark, out_path).restoreToVersion(before)
            got = None if written is None else (int(written["requests"]), int(written["ids"]))
            raise CompactCountError(
                f"date {args.date}: request_samples has {expected} requests, the compact partition (rows, distinct "
                f"ids) {got}; {REQUEST_SAMPLES_COMPACT.name} restored to version {before}"
            )
    summary = {
        "date": args.date,
        "model_version": args.model_version,
        "requests": expected,
        "with_summary": int(written["with_summary"]),
        "raw_events_kept": int(written["raw"] or 0),
        "source_history_events": int(written["source"] or 0),
        "request_samples_version": samples_version,
        "user_summaries_version": summaries_version,
        "version": latest_version(spark, out_path),
        "seconds": round(t["seconds"], 1),
    }
    log.info("build_compact_samples: %s", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
