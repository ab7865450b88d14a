"""Creates every table of the contract (empty, with its schema and partitioning) under a warehouse.

Idempotent: existing tables are left as they are."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from pyspark.sql import SparkSession

from jobs.cli import exit_on_job_error
from jobs.delta_io import ensure_table, latest_version
from jobs.runner import Summary, run_job
from schemas import ALL_TABLES, DEFAULT_WAREHOUSE


@dataclass(frozen=True)
class Args:
    warehouse: str = DEFAULT_WAREHOUSE
    tables: tuple[str, ...] = tuple(ALL_TABLES)


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(prog="init_warehouse", description=__doc__)
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE, help="warehouse root (path or URI)")
    p.add_argument(
        "--tables", nargs="*", default=list(ALL_TABLES), choices=list(ALL_TABLES), help="tables to create"
    )
    ns = p.parse_args(argv)
    return Args(warehouse=ns.warehouse, tables=tuple(ns.tables))


def run(spark: SparkSession, args: Args) -> Summary:
    """Creates the missing tables; the summary gives each table's current version."""
    versions: dict[str, int] = {}
    for name in args.tables:
        contract = ALL_TABLES[name]
        path = contract.location(args.warehouse)
        ensure_table(spark, contract, path)
        versions[name] = latest_version(spark, path)
    return {"warehouse": args.warehouse, "versions": versions}


def main(argv: list[str] | None = None) -> Summary:
    return run_job("init_warehouse", run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error("init_warehouse", main, sys.argv[1:])
