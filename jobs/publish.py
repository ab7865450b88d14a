"""Publishes day D: copies partition D of `request_samples_staging` into `request_samples` in one
atomic replaceWhere commit, only if the quality gate passed for exactly the staging version that
is current now.

Refuses (non-zero exit, `request_samples` untouched) when there is no gate record for D, when it
failed, or when the staging table changed after it was validated. The commit's userMetadata
records the date, the staging version and the gate's verdict, so every version of
`request_samples` is validated data and says which validation let it in. Idempotent: a rerun
replaces partition D with the same rows.

    spark-submit jobs/publish.py --warehouse warehouse --date 2026-01-05
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass

from pyspark.sql import functions as F

from jobs.cli import configure_logging, job_parser, timed
from jobs.delta_io import (
    MissingTableError,
    last_commit_metrics,
    latest_version,
    overwrite_partition,
    table_exists,
)
from jobs.gate import GateRecordError, quality_root, read_record, record_path
from jobs.spark_session import get_spark
from schemas import REQUEST_SAMPLES, REQUEST_SAMPLES_STAGING

log = logging.getLogger("publish")


class PublishRefusedError(RuntimeError):
    """The partition may not be published (no passing gate for the current staging version)."""


@dataclass(frozen=True)
class Args:
    warehouse: str
    date: str
    quality_root: str | None


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("publish", __doc__)
    p.add_argument("--quality-root", default=None, help="where validate wrote its gate records (default: <warehouse>/_quality)")
    ns = p.parse_args(argv)
    return Args(ns.warehouse, ns.date, ns.quality_root)


def publication_metadata(date: str, staging_version: int, record: str) -> str:
    return json.dumps({"date": date, "staging_version": staging_version, "gate": "passed", "gate_record": record}, sort_keys=True)


def main(argv: list[str] | None = None) -> dict[str, object]:
    configure_logging()
    args = parse_args(argv)
    root = quality_root(args.warehouse, args.quality_root)
    spark = get_spark()
    staging = REQUEST_SAMPLES_STAGING.location(args.warehouse)
    out_path = REQUEST_SAMPLES.location(args.warehouse)
    with timed() as t:
        try:
            record = read_record(root, args.date)
        except GateRecordError as err:
            raise PublishRefusedError(f"refusing to publish {args.date}: {err}") from err
        if not record.success:
            raise PublishRefusedError(
                f"refusing to publish {args.date}: the quality gate failed for {REQUEST_SAMPLES_STAGING.name} version "
                f"{record.staging_version} (see {record.data_docs}); fix the data, rebuild and rerun validate"
            )
        if not table_exists(spark, staging):
            raise MissingTableError(f"no {REQUEST_SAMPLES_STAGING.name} table at {staging}: run build_request_samples first")
        current = latest_version(spark, staging)
        if current != record.staging_version:
            raise PublishRefusedError(
                f"refusing to publish {args.date}: the gate validated {REQUEST_SAMPLES_STAGING.name} version "
                f"{record.staging_version} but the table is now at version {current}; rerun validate --date {args.date}"
            )
        staged = spark.read.format("delta").option("versionAsOf", record.staging_version).load(staging).where(F.col("date") == args.date)
        meta = publication_metadata(args.date, record.staging_version, str(record_path(root, args.date)))
        overwrite_partition(staged, REQUEST_SAMPLES, out_path, {"date": args.date}, user_metadata=meta)
        written = last_commit_metrics(spark, out_path).get("numOutputRows", 0)
        if written != record.rows:
            # Cannot happen unless the staging version was altered outside Delta; say so loudly.
            raise RuntimeError(
                f"published {written} rows for {args.date} but the gate validated {record.rows} at staging version "
                f"{record.staging_version}; inspect {out_path} (DESCRIBE HISTORY) and restore the previous version"
            )
    summary = {
        "date": args.date,
        "staging_version": record.staging_version,
        "rows": written,
        "version": latest_version(spark, out_path),
        "seconds": round(t["seconds"], 1),
    }
    log.info("publish: %s", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
