"""Extends the `user_history` state (each user's last N events as sorted arrays) by one day.

Reads the state as of D-1 (a Delta version, found from the commit log) and day D's user_actions,
quarantines day D's invalid actions, and MERGEs the changed users' rows: a day costs what its
events cost, not what the whole log costs. Re-running a day recomputes it from D-1 and gives the
same state. Days are built in order; the first run (no state yet) bootstraps from every action
up to D.

    spark-submit jobs/build_user_history.py --warehouse warehouse --date 2026-01-05
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.cli import exit_on_job_error, job_parser, previous_day
from jobs.counts import reason_counts
from jobs.delta_io import (
    ensure_table,
    last_commit_metrics,
    overwrite_where,
    partition_predicate,
    read_input,
)
from jobs.faults import fault, fault_in_write
from jobs.history_state import (
    StateOrderError,
    StateVersion,
    find_as_of,
    read_state,
    state_metadata,
    state_versions,
)
from jobs.runner import Summary, run_job
from jobs.verified_write import TableWrites
from pipelines.user_history import merge_day_into_state
from pipelines.validity import to_quarantine, valid_rows, with_action_reject_reason
from schemas import DEFAULT_WAREHOUSE, QUARANTINE, USER_ACTIONS, USER_HISTORY
from schemas.constants import DEFAULT_L_MAX

JOB = "build_user_history"
# Deletion vectors let the daily MERGE mark changed rows instead of rewriting whole files.
STATE_PROPERTIES = {"delta.enableDeletionVectors": "true"}


@dataclass(frozen=True)
class Args:
    date: str
    warehouse: str = DEFAULT_WAREHOUSE
    state_len: int = DEFAULT_L_MAX  # events kept per user, >= the samples' L_max


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("build_user_history", __doc__)
    p.add_argument(
        "--state-len",
        type=int,
        default=DEFAULT_L_MAX,
        help="events kept per user, >= the samples' L_max (default: %(default)s)",
    )
    ns = p.parse_args(argv)
    if ns.state_len < 1:
        p.error(f"--state-len must be >= 1, got {ns.state_len}")
    return Args(date=ns.date, warehouse=ns.warehouse, state_len=ns.state_len)


@dataclass(frozen=True)
class Plan:
    bootstrap: bool  # no state for D-1: rebuild from every action up to D
    base: StateVersion | None  # the state as of D-1


def plan_day(spark: SparkSession, path: str, date: str) -> Plan:
    versions = state_versions(spark, path)
    if versions and versions[-1].as_of_date > date:
        before = find_as_of(versions, previous_day(date))
        restore = (
            f"Restore the state to version {before.version}, the one as of {previous_day(date)} (RESTORE "
            f"TABLE delta.`{path}` TO VERSION AS OF {before.version})"
            if before is not None
            else f"The table has no state as of {previous_day(date)}: rebuild from the first day"
        )
        raise StateOrderError(
            f"user_history is as of {versions[-1].as_of_date}, after {date}: rebuilding {date} alone would "
            f"mix days. {restore} and rebuild the days from {date} in order."
        )
    base = find_as_of(versions, previous_day(date))  # same log read, not a second one
    if base is not None:
        return Plan(bootstrap=False, base=base)
    if versions and versions[-1].as_of_date != date:
        raise StateOrderError(
            f"user_history is as of {versions[-1].as_of_date} and has no state for {previous_day(date)}: "
            f"build the days in between first"
        )
    return Plan(bootstrap=True, base=None)


def run(spark: SparkSession, args: Args) -> Summary:
    """Quarantines day D's invalid actions and moves the state from D-1 to D (or bootstraps it)."""
    actions_path = USER_ACTIONS.location(args.warehouse)
    state_path = USER_HISTORY.location(args.warehouse)
    plan = plan_day(spark, state_path, args.date)
    # A drifted schema or a missing or truncated file of the days read is refused before any write.
    first = "0001-01-01" if plan.bootstrap else args.date
    actions = read_input(spark, USER_ACTIONS, actions_path, first, args.date)
    day_filter = F.col("date") <= args.date if plan.bootstrap else F.col("date") == args.date
    tagged = actions.where(day_filter).transform(with_action_reject_reason)
    tagged = tagged.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        reasons = reason_counts(tagged)
        if not reasons:
            raise FileNotFoundError(
                f"no user_actions for date {args.date} in {actions_path}: "
                f"the input partition is missing or empty"
            )
        where = partition_predicate(QUARANTINE, {"source_table": "user_actions"})
        where += f" AND date <= '{args.date}'" if plan.bootstrap else f" AND date = '{args.date}'"
        quarantine = tagged.transform(to_quarantine("user_actions"))
        fault(JOB, "before_write")
        # One day, one outcome: the quarantine, then the state; a failure after the first write
        # restores both (jobs/verified_write.py).
        with TableWrites(spark, JOB, f"date {args.date}") as writes:
            writes.overwrite_where(quarantine, QUARANTINE, QUARANTINE.location(args.warehouse), where)
            fault(JOB, "after_quarantine")
            base = read_state(spark, state_path, plan.base)
            changed = base.transform(merge_day_into_state(valid_rows(tagged), args.date, args.state_len))
            meta = state_metadata(args.date, state_len=args.state_len, bootstrap=plan.bootstrap)
            ensure_table(spark, USER_HISTORY, state_path, STATE_PROPERTIES)
            writes.track(USER_HISTORY, state_path)
            write_state(spark, fault_in_write(JOB, changed), state_path, meta, replace_all=plan.bootstrap)
            writes.committed(state_path)
            fault(JOB, "after_commit")
            metrics = last_commit_metrics(spark, state_path)
    finally:
        tagged.unpersist()
    if plan.bootstrap:
        users_updated = metrics.get("numOutputRows", 0)
    else:
        users_updated = metrics.get("numTargetRowsUpdated", 0) + metrics.get("numTargetRowsInserted", 0)
    return {
        "date": args.date,
        "bootstrap": plan.bootstrap,
        "actions_read": sum(reasons.values()),
        "actions_valid": reasons.pop(None, 0),
        "quarantined": dict(sorted((str(k), v) for k, v in reasons.items())),
        "users_updated": users_updated,
    }


def main(argv: list[str] | None = None) -> Summary:
    return run_job(JOB, run, parse_args(argv))


def write_state(
    spark: SparkSession, changed: DataFrame, path: str, user_metadata: str, replace_all: bool
) -> None:
    """MERGE the changed users' rows (or replace the table on bootstrap), recording the day."""
    ensure_table(spark, USER_HISTORY, path, STATE_PROPERTIES)
    if replace_all:
        overwrite_where(changed, USER_HISTORY, path, None, user_metadata)
        return
    key = "spark.databricks.delta.commitInfo.userMetadata"
    spark.conf.set(key, user_metadata)
    try:
        (
            DeltaTable.forPath(spark, path)
            .alias("s")
            .merge(changed.alias("c"), "s.user_id = c.user_id")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
    finally:
        spark.conf.unset(key)


if __name__ == "__main__":
    exit_on_job_error(JOB, main, sys.argv[1:])
