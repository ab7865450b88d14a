"""Creates every table of the contract (empty, with its schema and partitioning) under a warehouse.

Idempotent: existing tables are left as they are."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

from jobs.delta_io import ensure_table, latest_version
from jobs.spark_session import get_spark
from schemas import ALL_TABLES, DEFAULT_WAREHOUSE

log = logging.getLogger("init_warehouse")


@dataclass(frozen=True)
class Args:
    warehouse: str
    tables: tuple[str, ...]


def parse_args(argv: list[str] | None = None) -> Args:
    p = argparse.ArgumentParser(prog="init_warehouse", description=__doc__)
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE, help="warehouse root (path or URI)")
    p.add_argument(
        "--tables", nargs="*", default=list(ALL_TABLES), choices=list(ALL_TABLES), help="tables to create"
    )
    ns = p.parse_args(argv)
    return Args(warehouse=ns.warehouse, tables=tuple(ns.tables))


def main(argv: list[str] | None = None) -> dict[str, int]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    start = time.monotonic()
    spark = get_spark()
    versions: dict[str, int] = {}
    for name in args.tables:
        contract = ALL_TABLES[name]
        path = contract.location(args.warehouse)
        ensure_table(spark, contract, path)
        versions[name] = latest_version(spark, path)
    log.info(
        "init_warehouse: %d tables under %s (%s) in %.1fs",
        len(versions),
        args.warehouse,
        ", ".join(f"{k}@v{v}" for k, v in versions.items()),
        time.monotonic() - start,
    )
    return versions


if __name__ == "__main__":
    main()
