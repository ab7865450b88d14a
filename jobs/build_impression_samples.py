"""Builds the `impression_samples` partition of one day: the flat one-row-per-impression layout
(history copied into each of a request's m rows), derived from that day's request_samples.

Exists only to measure what request-level batching saves (benchmarks/build.py).

    spark-submit jobs/build_impression_samples.py --warehouse warehouse --date 2026-01-05
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.cli import exit_on_job_error, job_parser
from jobs.delta_io import last_commit_metrics, overwrite_partition, read_table
from jobs.runner import Summary, run_job
from pipelines.impression_samples import explode_to_impressions
from schemas import DEFAULT_WAREHOUSE, IMPRESSION_SAMPLES, REQUEST_SAMPLES


@dataclass(frozen=True)
class Args:
    date: str
    warehouse: str = DEFAULT_WAREHOUSE


def parse_args(argv: list[str] | None = None) -> Args:
    ns = job_parser("build_impression_samples", __doc__).parse_args(argv)
    return Args(date=ns.date, warehouse=ns.warehouse)


def run(spark: SparkSession, args: Args) -> Summary:
    """Replaces partition D of impression_samples with request_samples' day D, one row per target."""
    out_path = IMPRESSION_SAMPLES.location(args.warehouse)
    samples = read_table(spark, REQUEST_SAMPLES, REQUEST_SAMPLES.location(args.warehouse)).where(
        F.col("date") == args.date
    )
    if samples.isEmpty():
        raise FileNotFoundError(
            f"no request_samples for date {args.date} under {args.warehouse}: run build_request_samples first"
        )
    flat = samples.transform(explode_to_impressions)
    overwrite_partition(flat, IMPRESSION_SAMPLES, out_path, {"date": args.date})
    rows = last_commit_metrics(spark, out_path).get("numOutputRows", 0)
    return {"date": args.date, "impressions": rows}


def main(argv: list[str] | None = None) -> Summary:
    return run_job("build_impression_samples", run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error("build_impression_samples", main, sys.argv[1:])
