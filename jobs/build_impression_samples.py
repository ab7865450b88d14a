"""Builds the `impression_samples` partition of one day: the flat one-row-per-impression layout
(history copied into each of a request's m rows), derived from that day's request_samples.

Exists only to measure what request-level batching saves (benchmarks/build.py).

    spark-submit jobs/build_impression_samples.py --warehouse warehouse --date 2026-01-05
"""

from __future__ import annotations

import json
import logging
import sys

from pyspark.sql import functions as F

from jobs.cli import configure_logging, job_parser, timed
from jobs.delta_io import last_commit_metrics, overwrite_partition, read_table
from jobs.spark_session import get_spark
from pipelines.impression_samples import explode_to_impressions
from schemas import IMPRESSION_SAMPLES, REQUEST_SAMPLES

log = logging.getLogger("build_impression_samples")


def main(argv: list[str] | None = None) -> dict[str, object]:
    configure_logging()
    args = job_parser("build_impression_samples", __doc__).parse_args(argv)
    spark = get_spark()
    out_path = IMPRESSION_SAMPLES.location(args.warehouse)
    with timed() as t:
        samples = read_table(spark, REQUEST_SAMPLES, REQUEST_SAMPLES.location(args.warehouse)).where(F.col("date") == args.date)
        if samples.isEmpty():
            raise FileNotFoundError(f"no request_samples for date {args.date} under {args.warehouse}: run build_request_samples first")
        overwrite_partition(samples.transform(explode_to_impressions), IMPRESSION_SAMPLES, out_path, {"date": args.date})
        rows = last_commit_metrics(spark, out_path).get("numOutputRows", 0)
    summary = {"date": args.date, "impressions": rows, "seconds": round(t["seconds"], 1)}
    log.info("build_impression_samples: %s", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
