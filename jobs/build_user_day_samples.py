"""Builds the `user_day_samples` partition of one day from the published `request_samples` of that
day: one row per (user, date), the day's history window once and each request's slice of it
(pipelines/user_day_samples.py, layout in docs/user-day-samples.md).

Reads partition D of `request_samples` at its latest version (pinned for the whole run and recorded
in the commit's userMetadata), so the rows it implies are exactly the published ones. A user-day
whose window does not rebuild each of its requests exactly (impossible for a table that
build_request_samples wrote; a hand-edited one) is not written: its requests go to `quarantine`
(source_table request_samples, reason inconsistent_user_day_histories), and the gate then fails
the day, since its conservation rule wants every published request. Writes the partition as one
atomic, idempotent replacement and checks conservation on what was written (requests and targets
written + quarantined = those of request_samples D), restoring both tables if it fails.

The partition goes to `user_day_samples_staging` by default: jobs/validate.py --table
user_day_samples checks it there and jobs/publish.py --table user_day_samples copies it into
`user_day_samples`. `--output user_day_samples` writes the product directly, bypassing the gate
(tests and benchmarks only).

    spark-submit jobs/build_user_day_samples.py --warehouse warehouse --date 2026-01-05
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from jobs.cli import exit_on_job_error, job_parser
from jobs.delta_io import (
    MissingTableError,
    check_input_files,
    check_input_schema,
    latest_version,
    partition_predicate,
    read_table,
)
from jobs.faults import fault, fault_in_write
from jobs.runner import Summary, run_job
from jobs.verified_write import TableWrites
from pipelines.user_day_samples import rejected_requests, user_day_rows, with_user_day_window
from pipelines.validity import to_quarantine
from schemas import (
    DEFAULT_WAREHOUSE,
    QUARANTINE,
    REQUEST_SAMPLES,
    USER_DAY_SAMPLES,
    USER_DAY_SAMPLES_STAGING,
    TableContract,
)

JOB = "build_user_day_samples"
# Tables the job may write: the gate's staging table (default) or, ungated, the product itself.
OUTPUTS: dict[str, TableContract] = {c.name: c for c in (USER_DAY_SAMPLES_STAGING, USER_DAY_SAMPLES)}
SOURCE_TABLE = REQUEST_SAMPLES.name  # quarantine rows of this job carry it as source_table


@dataclass(frozen=True)
class Args:
    date: str
    warehouse: str = DEFAULT_WAREHOUSE
    output: TableContract = USER_DAY_SAMPLES_STAGING


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser(JOB, __doc__)
    p.add_argument(
        "--output",
        choices=sorted(OUTPUTS),
        default=USER_DAY_SAMPLES_STAGING.name,
        help="table to write: the gate's staging table, or user_day_samples directly, ungated "
        "(default: %(default)s)",
    )
    ns = p.parse_args(argv)
    return Args(date=ns.date, warehouse=ns.warehouse, output=OUTPUTS[ns.output])


def read_source(spark: SparkSession, warehouse: str, date: str) -> tuple[DataFrame, int]:
    """Partition `date` of request_samples at its latest version, and that version. Refuses a
    drifted schema or a missing/truncated data file before anything is written."""
    path = REQUEST_SAMPLES.location(warehouse)
    read_table(spark, REQUEST_SAMPLES, path)  # MissingTableError with what to run first
    version = latest_version(spark, path)
    df = spark.read.format("delta").option("versionAsOf", version).load(path)
    check_input_schema(df, REQUEST_SAMPLES, path)
    day = df.where(F.col("date") == date)
    check_input_files(day.inputFiles(), REQUEST_SAMPLES, date, date)
    return day, version


def _source_counts(samples: DataFrame) -> Row:
    row = samples.agg(
        F.count("*").alias("requests"),
        F.coalesce(F.sum("num_targets"), F.lit(0)).alias("targets"),
        F.coalesce(F.sum("hist_len"), F.lit(0)).alias("hist"),
    ).first()
    assert row is not None  # an aggregate without grouping always has one row
    return row


def _written_counts(written: DataFrame) -> Row | None:
    return written.agg(
        F.count("*").alias("user_days"),
        F.sum("num_requests").alias("requests"),
        F.sum("total_targets").alias("targets"),
        F.sum("window_len").alias("window"),
        F.max("window_len").alias("max_window"),
    ).first()


def run(spark: SparkSession, args: Args) -> Summary:
    """Builds day D into `args.output`; raises jobs.verified_write.ConservationError, after
    restoring the quarantine and output tables, when requests or targets written + quarantined
    differ from those of request_samples D."""
    source, source_version = read_source(spark, args.warehouse, args.date)
    read = _source_counts(source)
    if int(read["requests"]) == 0:
        raise MissingTableError(
            f"request_samples (version {source_version}) has no rows for date {args.date} under "
            f"{args.warehouse}: build, validate and publish request_samples for {args.date} first"
        )
    out_path = args.output.location(args.warehouse)
    tagged = with_user_day_window(source).persist(StorageLevel.MEMORY_AND_DISK)
    with ExitStack() as stack:
        stack.callback(tagged.unpersist)
        rejected = rejected_requests(tagged).persist(StorageLevel.MEMORY_AND_DISK)
        stack.callback(rejected.unpersist)
        q = rejected.agg(F.count("*").alias("requests"), F.sum("num_targets").alias("targets")).first()
        quarantined = (int(q["requests"]), int(q["targets"] or 0)) if q is not None else (0, 0)
        fault(JOB, "before_write")
        writes = stack.enter_context(TableWrites(spark, JOB, f"date {args.date}"))
        writes.overwrite_where(
            rejected.transform(to_quarantine(SOURCE_TABLE)),
            QUARANTINE,
            QUARANTINE.location(args.warehouse),
            partition_predicate(QUARANTINE, {"source_table": SOURCE_TABLE, "date": args.date}),
        )
        fault(JOB, "after_quarantine")

        def conserved(row: Row) -> str | None:
            got = (int(row["requests"] or 0), int(row["targets"] or 0))
            want = (int(read["requests"]), int(read["targets"]))
            if (got[0] + quarantined[0], got[1] + quarantined[1]) == want:
                return None
            return (
                f"date {args.date}: request_samples version {source_version} has (requests, targets) "
                f"{want} != written {got} + quarantined {quarantined}"
            )

        meta = {"date": args.date, "request_samples_version": source_version}
        written = writes.overwrite_verified(
            fault_in_write(JOB, tagged.transform(user_day_rows)),
            args.output,
            out_path,
            partition_predicate(args.output, {"date": args.date}),
            _written_counts,
            conserved,
            json.dumps(meta, sort_keys=True),
        )
    return {
        "date": args.date,
        "table": args.output.name,
        "request_samples_version": source_version,
        "user_days": int(written["user_days"]),
        "requests": int(written["requests"] or 0),
        "targets": int(written["targets"] or 0),
        "quarantined_requests": quarantined[0],
        "window_events": int(written["window"] or 0),
        "request_history_events": int(read["hist"]),
        "max_window_len": int(written["max_window"] or 0),
        "version": latest_version(spark, out_path),
    }


def main(argv: list[str] | None = None) -> Summary:
    return run_job(JOB, run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error(JOB, main, sys.argv[1:])
