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
import sys
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.cli import exit_on_job_error, job_parser
from jobs.delta_io import (
    MissingTableError,
    last_commit_metrics,
    latest_version,
    partition_predicate,
    table_exists,
)
from jobs.gate import GateRecord, GateRecordError, quality_root, read_record, record_path
from jobs.runner import Summary, run_job
from jobs.verified_write import TableWrites
from schemas import (
    DEFAULT_WAREHOUSE,
    REQUEST_SAMPLES,
    REQUEST_SAMPLES_STAGING,
    USER_DAY_SAMPLES,
    USER_DAY_SAMPLES_STAGING,
    TableContract,
)

STAGING = REQUEST_SAMPLES_STAGING.name
# --table: a published table -> the staging table the gate validates for it (jobs/validate.py --table).
PUBLISHED: dict[str, tuple[TableContract, TableContract]] = {
    c.name: (c, s)
    for c, s in ((REQUEST_SAMPLES, REQUEST_SAMPLES_STAGING), (USER_DAY_SAMPLES, USER_DAY_SAMPLES_STAGING))
}


class PublishRefusedError(RuntimeError):
    """The partition may not be published (no passing gate for the current staging version)."""


@dataclass(frozen=True)
class Args:
    date: str
    warehouse: str = DEFAULT_WAREHOUSE
    quality_root: str | None = None  # where validate wrote its gate records; default <warehouse>/_quality
    table: str = REQUEST_SAMPLES.name  # a key of PUBLISHED


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("publish", __doc__)
    p.add_argument(
        "--quality-root",
        default=None,
        help="where validate wrote its gate records (default: <warehouse>/_quality)",
    )
    p.add_argument(
        "--table",
        choices=sorted(PUBLISHED),
        default=REQUEST_SAMPLES.name,
        help="the table to publish partition D of, from its staging table (default: %(default)s)",
    )
    ns = p.parse_args(argv)
    return Args(date=ns.date, warehouse=ns.warehouse, quality_root=ns.quality_root, table=ns.table)


def publication_metadata(date: str, staging_version: int, record: str) -> str:
    meta = {"date": date, "staging_version": staging_version, "gate": "passed", "gate_record": record}
    return json.dumps(meta, sort_keys=True)


def _passing_record(spark: SparkSession, args: Args, root: Path) -> GateRecord:
    """The gate record of D, if it passed for the staging version that is current now."""
    staged_table = PUBLISHED[args.table][1]
    name = staged_table.name
    try:
        record = read_record(root, args.date, name)
    except GateRecordError as err:
        raise PublishRefusedError(f"refusing to publish {args.date}: {err}") from err
    if not record.success:
        raise PublishRefusedError(
            f"refusing to publish {args.date}: the quality gate failed for {name} version "
            f"{record.staging_version} (see {record.data_docs}); fix the data, rebuild and rerun validate"
        )
    staging = staged_table.location(args.warehouse)
    if not table_exists(spark, staging):
        raise MissingTableError(f"no {name} table at {staging}: run build_{args.table} first")
    current = latest_version(spark, staging)
    if current != record.staging_version:
        raise PublishRefusedError(
            f"refusing to publish {args.date}: the gate validated {name} version {record.staging_version} "
            f"but the table is now at version {current}; rerun validate --date {args.date}"
            + ("" if args.table == REQUEST_SAMPLES.name else f" --table {args.table}")
        )
    return record


def run(spark: SparkSession, args: Args) -> Summary:
    """Copies the validated staging partition D into request_samples; raises PublishRefusedError
    (request_samples untouched) without a passing gate record for the current staging version."""
    root = quality_root(args.warehouse, args.quality_root)
    published, staging = PUBLISHED[args.table]
    out_path = published.location(args.warehouse)
    record = _passing_record(spark, args, root)
    staged = (
        spark.read.format("delta")
        .option("versionAsOf", record.staging_version)
        .load(staging.location(args.warehouse))
        .where(F.col("date") == args.date)
    )
    record_file = str(record_path(root, args.date, staging.name))
    meta = publication_metadata(args.date, record.staging_version, record_file)
    # TableWrites, as in the build jobs: a publish of the same date racing this one ends in one
    # ConcurrentRunError line, and a wrong row count restores the previous version before raising.
    with TableWrites(spark, "publish", f"date {args.date}") as writes:
        predicate = partition_predicate(published, {"date": args.date})
        writes.overwrite_where(staged, published, out_path, predicate, user_metadata=meta)
        written = last_commit_metrics(spark, out_path).get("numOutputRows", 0)
        # Cannot fail unless the staging version was altered outside Delta; say so loudly.
        writes.fail_if(
            None if written == record.rows else
            f"published {written} rows for {args.date} but the gate validated {record.rows} at staging "
            f"version {record.staging_version}; inspect {staging.name} (DESCRIBE HISTORY)"
        )  # fmt: skip
    return {
        "date": args.date,
        **({} if args.table == REQUEST_SAMPLES.name else {"table": args.table}),
        "staging_version": record.staging_version,
        "rows": written,
        "version": latest_version(spark, out_path),
    }


def main(argv: list[str] | None = None) -> Summary:
    return run_job("publish", run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error("publish", main, sys.argv[1:])
