"""Table maintenance: compaction (OPTIMIZE; REORG ... APPLY (PURGE) where deletion vectors pile
up) and VACUUM that never deletes a file a registered training run still needs.

    python -m jobs.maintain_tables --warehouse warehouse --optimize --vacuum

* OPTIMIZE: `user_history` (daily MERGEs leave deletion vectors and small files) gets
  `REORG TABLE ... APPLY (PURGE)`, which rewrites the files with deletion vectors, then OPTIMIZE;
  other tables OPTIMIZE. The loader-facing tables (LOADER_LAYOUT in jobs/delta_io.py) are left
  alone: their writers size files and row groups for the loader, and OPTIMIZE would merge them
  into 1 GB files whose row groups no longer match the loader's unit of work.
* VACUUM: retention = max(--retain-hours, hours since the commit of the oldest version an
  unexpired pin (schemas/training_pins.py, written by loader.register_pin) holds, plus one).
  A file a version needs is removed by a later commit, so keeping every file removed after the
  pinned commit keeps the version whole. Then, as a check rather than a trust, a DRY RUN lists
  what would go; if one of those files belongs to a pinned version the job refuses (PinError)
  and deletes nothing. Pins of versions whose log entries are gone are reported and fail too.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.cli import date_arg, exit_on_job_error, job_parser
from jobs.delta_io import LOADER_LAYOUT, table_exists
from jobs.runner import Summary, run_job
from loader.pins import active_pins, pins_location
from loader.snapshot import resolve_snapshot
from schemas import ALL_TABLES, DEFAULT_WAREHOUSE, USER_HISTORY

log = logging.getLogger(__name__)

DEFAULT_RETAIN_HOURS = 168  # Delta's own default (7 days): readers older than this may fail
PURGE_DELETION_VECTORS = (USER_HISTORY.name,)


class PinError(RuntimeError):
    """A VACUUM would break a version a training run has pinned: nothing was deleted."""


@dataclass(frozen=True)
class Args:
    warehouse: str = DEFAULT_WAREHOUSE
    tables: tuple[str, ...] = tuple(ALL_TABLES)
    optimize: bool = False
    vacuum: bool = False
    retain_hours: float = DEFAULT_RETAIN_HOURS


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("maintain_tables", __doc__, with_date=False)
    p.add_argument("--date", type=date_arg, default=None, help="the scheduler's day (logged only)")
    p.add_argument("--tables", nargs="*", default=list(ALL_TABLES), choices=list(ALL_TABLES))
    p.add_argument("--optimize", action="store_true", help="compact (and purge deletion vectors)")
    p.add_argument("--vacuum", action="store_true", help="delete unreferenced files, keeping pinned versions")
    p.add_argument(
        "--retain-hours",
        type=float,
        default=DEFAULT_RETAIN_HOURS,
        help="minimum VACUUM retention (default %(default)s); raised to cover the oldest pin",
    )
    ns = p.parse_args(argv)
    if not (ns.optimize or ns.vacuum):
        p.error("nothing to do: pass --optimize, --vacuum or both")
    if ns.retain_hours < 0:
        p.error(f"--retain-hours must be >= 0, got {ns.retain_hours}")
    return Args(ns.warehouse, tuple(ns.tables), ns.optimize, ns.vacuum, ns.retain_hours)


def _file_count(spark: SparkSession, path: str) -> int:
    return int(spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["numFiles"])  # type: ignore[index]


def optimize(spark: SparkSession, name: str, path: str) -> dict[str, object]:
    """Compacts one table (purging deletion vectors first where they accumulate)."""
    before = _file_count(spark, path)
    if name in PURGE_DELETION_VECTORS:
        spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)").collect()
    spark.sql(f"OPTIMIZE delta.`{path}`").collect()
    return {"files_before": before, "files_after": _file_count(spark, path)}


def _local(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("", "file") else uri


def commit_times_ms(spark: SparkSession, path: str) -> dict[int, int]:
    """Commit time (epoch ms) of every version still in the table's log."""
    rows = (
        DeltaTable.forPath(spark, path)
        .history()
        .select("version", (F.unix_millis(F.col("timestamp"))).alias("ms"))
    )
    return {int(r["version"]): int(r["ms"]) for r in rows.collect()}


def retention_hours(minimum: float, pinned_commit_ms: list[int], now_ms: int) -> float:
    """max(minimum, hours since the oldest pinned commit + 1), whole hours."""
    if not pinned_commit_ms:
        return minimum
    return max(minimum, float(math.ceil((now_ms - min(pinned_commit_ms)) / 3_600_000) + 1))


def vacuum(spark: SparkSession, path: str, minimum_hours: float) -> dict[str, object]:
    """VACUUMs one table with a retention that keeps every pinned version; refuses (PinError,
    nothing deleted) when a dry run would still delete a file of a pinned version."""
    now = int(time.time() * 1000)
    pins = active_pins(path, pins_location(path), now_ms=now)
    times = commit_times_ms(spark, path)
    gone = [v for v in pins if v not in times]
    if gone:
        raise PinError(
            f"{path}: pinned versions {gone} are no longer in the Delta log (log retention), so "
            "their runs cannot read them; remove those pins or re-pin a current version"
        )
    hours = retention_hours(minimum_hours, [times[v] for v in pins], now)
    needed = {_local(f) for v in pins for f in resolve_snapshot(path, v).files}
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    previous = str(spark.conf.get(check, "true"))
    spark.conf.set(check, "false" if hours < DEFAULT_RETAIN_HOURS else previous)
    try:
        dry_run = spark.sql(f"VACUUM delta.`{path}` RETAIN {hours} HOURS DRY RUN").collect()
        doomed = {_local(r[0]) for r in dry_run}
        broken = sorted(doomed & needed)
        if broken:
            raise PinError(
                f"{path}: VACUUM RETAIN {hours} HOURS would delete {len(broken)} file(s) of pinned "
                f"versions {pins} (e.g. {broken[0]}); nothing deleted. Raise --retain-hours or check the "
                "commit timestamps of the table"
            )
        spark.sql(f"VACUUM delta.`{path}` RETAIN {hours} HOURS").collect()
    finally:
        spark.conf.set(check, previous)
    return {"retain_hours": hours, "pinned_versions": pins, "files_deleted": len(doomed)}


def run(spark: SparkSession, args: Args) -> Summary:
    """Maintains every existing table of `args.tables`; absent tables are skipped (reported)."""
    done: dict[str, dict[str, object]] = {}
    skipped: list[str] = []
    for name in args.tables:
        path = ALL_TABLES[name].location(args.warehouse)
        if not table_exists(spark, path):
            skipped.append(name)
            continue
        out: dict[str, object] = {}
        if args.optimize and name not in LOADER_LAYOUT:
            out["optimize"] = optimize(spark, name, path)
        if args.vacuum:
            out["vacuum"] = vacuum(spark, path, args.retain_hours)
        done[name] = out
        log.info("%s: %s", name, out)
    return {"warehouse": args.warehouse, "tables": done, "absent": skipped}


def main(argv: list[str] | None = None) -> Summary:
    return run_job("maintain_tables", run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error("maintain_tables", main, sys.argv[1:])
