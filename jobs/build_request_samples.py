"""Builds the `request_samples` partition of one day: one row per request, its point-in-time
history (last L_max events with event_ts < request_ts) once, and its m targets with labels.

Reads day D's impressions and user_actions and the user_history state as of D-1 (time travel),
quarantines invalid impressions with their reason, writes the partition as one atomic,
idempotent replacement, then checks conservation (impressions read = targets written +
impressions quarantined) on what was written and rolls the table back if it fails.

The partition goes to `request_samples_staging` by default: the quality gate (jobs/validate.py)
checks it there and jobs/publish.py copies it into `request_samples`, which training reads.
`--output request_samples` writes the product table directly, bypassing the gate (tests and
benchmarks only).

`--to-date E` builds every day from --date D to E in one pass (a backfill): the state as of D-1
plus the actions of D..E, one commit for all the days. A request's history depends only on the
events before it, so the rows are those the days built one by one would give; days without
impressions in the range are skipped, not an error (public logs have such days).

    spark-submit jobs/build_request_samples.py --warehouse warehouse --date 2026-01-05
    spark-submit jobs/build_request_samples.py --warehouse warehouse --date 2026-01-05 --to-date 2026-01-31
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from jobs.cli import date_arg, exit_on_job_error, job_parser, previous_day
from jobs.counts import reason_counts
from jobs.delta_io import (
    date_range_predicate,
    latest_version,
    partition_predicate,
    read_input,
)
from jobs.faults import fault, fault_in_write
from jobs.history_state import StateOrderError, StateVersion, read_state, state_versions, version_as_of
from jobs.runner import Summary, run_job
from jobs.verified_write import TableWrites
from pipelines.request_samples import (
    clustered_by_user,
    requests_from_impressions,
    user_events_through_day,
    with_history_as_of_request,
)
from pipelines.validity import (
    to_quarantine,
    valid_rows,
    with_action_reject_reason,
    with_impression_reject_reason,
)
from schemas import (
    DEFAULT_WAREHOUSE,
    IMPRESSIONS,
    QUARANTINE,
    REQUEST_SAMPLES,
    REQUEST_SAMPLES_STAGING,
    USER_ACTIONS,
    USER_HISTORY,
    TableContract,
)
from schemas.constants import DEFAULT_L_MAX

# Tables the job may write: the gate's staging table (default) or, ungated, the product itself.
JOB = "build_request_samples"
OUTPUTS: dict[str, TableContract] = {c.name: c for c in (REQUEST_SAMPLES_STAGING, REQUEST_SAMPLES)}

@dataclass(frozen=True)
class Args:
    date: str
    warehouse: str = DEFAULT_WAREHOUSE
    l_max: int = DEFAULT_L_MAX
    allow_no_state: bool = False  # a missing state for D-1 is an empty one (first day of a new system)
    output: TableContract = REQUEST_SAMPLES_STAGING
    to_date: str | None = None  # last day of a backfill (inclusive); None: --date alone

    @property
    def last_date(self) -> str:
        return self.to_date or self.date


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("build_request_samples", __doc__)
    p.add_argument(
        "--l-max",
        type=int,
        default=DEFAULT_L_MAX,
        help="most recent events kept per history (default: %(default)s)",
    )
    p.add_argument(
        "--allow-no-state",
        action="store_true",
        help="treat a missing user_history state for D-1 as empty (first day of a new system)",
    )
    p.add_argument(
        "--output",
        choices=sorted(OUTPUTS),
        default=REQUEST_SAMPLES_STAGING.name,
        help="table to write: the gate's staging table, or request_samples directly, ungated "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--to-date", type=date_arg, help="build every day from --date to this one (inclusive) in one pass"
    )
    ns = p.parse_args(argv)
    if ns.l_max < 1:
        p.error(f"--l-max must be >= 1, got {ns.l_max}")
    if ns.to_date is not None and ns.to_date < ns.date:
        p.error(f"--to-date {ns.to_date} is before --date {ns.date}")
    return Args(
        date=ns.date,
        warehouse=ns.warehouse,
        l_max=ns.l_max,
        allow_no_state=ns.allow_no_state,
        output=OUTPUTS[ns.output],
        to_date=ns.to_date,
    )


def _state_as_of_previous_day(spark: SparkSession, args: Args) -> StateVersion | None:
    """The user_history version as of D-1; refuses a missing one (unless allowed) or a short one."""
    state_path = USER_HISTORY.location(args.warehouse)
    state_version = version_as_of(spark, state_path, previous_day(args.date))
    if state_version is None and not args.allow_no_state:
        have = [v.as_of_date for v in state_versions(spark, state_path)]
        raise StateOrderError(
            f"no user_history state as of {previous_day(args.date)} in {state_path} (states: {have[-5:]}); "
            f"run build_user_history --date {previous_day(args.date)} first, or pass --allow-no-state"
        )
    if state_version and state_version.state_len is not None and state_version.state_len < args.l_max:
        raise ValueError(
            f"--l-max {args.l_max} exceeds the state's {state_version.state_len} events per user; "
            f"rebuild user_history with --state-len >= {args.l_max}"
        )
    return state_version


def _written_counts(written: DataFrame) -> Row | None:
    return written.agg(
        F.count("*").alias("requests"),
        F.sum("num_targets").alias("targets"),
        F.sum("hist_len").alias("hist"),
        F.max("hist_len").alias("max_hist"),
    ).first()


def run(spark: SparkSession, args: Args) -> Summary:
    """Builds the day (or range) into `args.output`; raises jobs.verified_write.ConservationError,
    after restoring the quarantine and output tables, when targets written + impressions
    quarantined != impressions read."""
    out_path = args.output.location(args.warehouse)
    dates = args.date if args.to_date is None else f"{args.date}..{args.to_date}"
    state_version = _state_as_of_previous_day(spark, args)

    # Inputs whose schema drifted or whose files are gone or truncated are refused before any write.
    first, last = args.date, args.last_date
    impressions = read_input(spark, IMPRESSIONS, IMPRESSIONS.location(args.warehouse), first, last)
    actions = read_input(spark, USER_ACTIONS, USER_ACTIONS.location(args.warehouse), first, last)
    tagged = impressions.transform(with_impression_reject_reason).persist(StorageLevel.MEMORY_AND_DISK)
    with ExitStack() as stack:
        stack.callback(tagged.unpersist)
        reasons = reason_counts(tagged)
        if not reasons:
            raise FileNotFoundError(
                f"no impressions for date {dates} under {args.warehouse}: "
                f"the input partition is missing or empty"
            )
        day_actions = valid_rows(actions.transform(with_action_reject_reason))
        state = read_state(spark, USER_HISTORY.location(args.warehouse), state_version)
        samples = (
            requests_from_impressions(valid_rows(tagged))
            .transform(with_history_as_of_request(user_events_through_day(state, day_actions), args.l_max))
            .transform(clustered_by_user)
        )
        range_predicate = date_range_predicate(args.date, args.last_date)
        fault(JOB, "before_write")
        # One day, one outcome: quarantine first, the output last; any failure after the first
        # write restores both (jobs/verified_write.py), so they never disagree about the day.
        writes = stack.enter_context(TableWrites(spark, JOB, f"date {dates}"))
        writes.overwrite_where(
            tagged.transform(to_quarantine("impressions")),
            QUARANTINE,
            QUARANTINE.location(args.warehouse),
            f"{partition_predicate(QUARANTINE, {'source_table': 'impressions'})} AND {range_predicate}",
        )
        fault(JOB, "after_quarantine")
        read = sum(reasons.values())
        quarantined = read - reasons.get(None, 0)

        def conserved(row: Row) -> str | None:
            targets = int(row["targets"] or 0)
            if read == targets + quarantined:
                return None
            return (
                f"date {dates}: impressions read {read} != targets written {targets} "
                f"+ quarantined {quarantined}"
            )

        meta = {
            "date": args.date,
            "l_max": args.l_max,
            "state_version": state_version.version if state_version else None,
            **({"to_date": args.to_date} if args.to_date else {}),
        }
        written = writes.overwrite_verified(
            fault_in_write(JOB, samples),
            args.output,
            out_path,
            range_predicate,
            _written_counts,
            conserved,
            json.dumps(meta),
        )
    reasons.pop(None, None)
    return {
        "date": args.date,
        **({"to_date": args.to_date} if args.to_date else {}),
        "table": args.output.name,
        "impressions_read": read,
        "requests": int(written["requests"]),
        "targets": int(written["targets"] or 0),
        "quarantined": dict(sorted((str(k), v) for k, v in reasons.items())),
        "history_elements": int(written["hist"] or 0),
        "max_hist_len": int(written["max_hist"] or 0),
        "state_version": state_version.version if state_version else None,
        "version": latest_version(spark, out_path),
    }


def main(argv: list[str] | None = None) -> Summary:
    return run_job(JOB, run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error(JOB, main, sys.argv[1:])
