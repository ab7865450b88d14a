"""Which date partitions a Delta table holds, read from its log with delta-rs (no JVM, ~0.3 s).

The Airflow DAG's sensors run this module with the project's interpreter (the Airflow
environment has neither pyspark nor deltalake), and jobs/validate.py uses it to find the
previous published partition:

    python -m jobs.partitions --warehouse warehouse --date 2026-01-05 impressions user_actions
    # exit 0 when every table has the partition, 1 otherwise; one JSON line either way
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from deltalake import DeltaTable

from jobs.cli import job_parser
from jobs.runner import Summary
from schemas import ALL_TABLES, DEFAULT_WAREHOUSE, TableContract
from storage.object_store import ObjectStoreError, check_access, is_remote, storage_options_for, to_arrow_uri


def partition_dates(path: str) -> list[str]:
    """Dates with at least one file in the latest version of the table at `path` (local, `s3a://` or
    `s3://`), sorted; empty if there is no Delta table there."""
    uri = to_arrow_uri(path)
    options = storage_options_for(uri)
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return []
    table = DeltaTable(uri, storage_options=options)
    return sorted({p["date"] for p in table.partitions() if p.get("date") is not None})


def previous_date(contract: TableContract, warehouse: str, date: str) -> str | None:
    """The latest date before `date` that the table holds, if any."""
    earlier = [d for d in partition_dates(contract.location(warehouse)) if d < date]
    return earlier[-1] if earlier else None


@dataclass(frozen=True)
class Args:
    date: str  # the partition every table must hold
    tables: tuple[str, ...]
    warehouse: str = DEFAULT_WAREHOUSE


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("partitions", __doc__)
    p.add_argument(
        "tables", nargs="+", choices=sorted(ALL_TABLES), help="tables that must hold the partition"
    )
    ns = p.parse_args(argv)
    return Args(date=ns.date, tables=tuple(ns.tables), warehouse=ns.warehouse)


def run(args: Args) -> Summary:
    """Which of `args.tables` lack the partition. No Spark session, unlike the other jobs' `run`:
    the sensor pokes every few minutes from the Airflow side and must not start a JVM."""
    missing = [
        t for t in args.tables if args.date not in partition_dates(ALL_TABLES[t].location(args.warehouse))
    ]
    return {"date": args.date, "warehouse": args.warehouse, "tables": list(args.tables), "missing": missing}


def main(argv: list[str] | None = None) -> int:
    """Prints the summary as one JSON line; the exit status is the sensor's verdict (1: missing), 2
    when the warehouse's object store cannot be used (one line on stderr naming what to set)."""
    args = parse_args(argv)
    try:
        if is_remote(args.warehouse):
            check_access(args.warehouse)
    except ObjectStoreError as e:
        print(f"partitions: error: {e}", file=sys.stderr, flush=True)
        return 2
    summary = run(args)
    print(json.dumps(summary))
    return 1 if summary["missing"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
