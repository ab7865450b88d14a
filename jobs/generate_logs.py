"""Writes synthetic `impressions` and `user_actions` (synthetic/logs.py) to the warehouse.

Each table gets one atomic overwrite of exactly the generated date range: impressions for the
request days, actions for the warm-up days plus the request days. Same arguments -> same
tables, so a rerun is a no-op in content. The two tables are two commits (Delta has no
cross-table transactions); a failure between them is repaired by rerunning.

    python -m jobs.generate_logs --num-users 2000 --history-days 30 --num-days 3
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from jobs.cli import date_arg, exit_on_job_error, job_parser
from jobs.delta_io import date_range_predicate, last_commit_metrics, overwrite_where
from jobs.runner import Summary, run_job
from schemas import DEFAULT_WAREHOUSE, IMPRESSIONS, USER_ACTIONS
from synthetic.logs import (
    SyntheticConfig,
    clean_impressions,
    generate_actions,
    with_impression_bad_rows,
)

# SyntheticConfig fields exposed as flags (--num-users for num_users, ...), with their help.
FLAGS: dict[str, str] = {
    "seed": "seed of every random draw",
    "start_date": "first UTC day with requests, YYYY-MM-DD",
    "num_days": "days with requests",
    "history_days": "warm-up days before --start-date with actions only",
    "recent_days": "last warm-up days without the interest signal",
    "num_users": "users 0..N-1",
    "num_items": "items 0..N-1 (id = popularity rank)",
    "num_topics": "item topics",
    "min_events": "warm-up events of the least active user",
    "max_events": "warm-up events of the most active user",
    "events_tail": "Pareto exponent of events per user (0 = log-uniform, heavier)",
    "max_requests_per_day": "most requests of one user in one day",
    "max_targets": "most targets per request",
    "interest_logit": "finish-logit boost of interest-topic items (the planted signal)",
    "affinity_logit": (
        "finish-logit scale of a user's hidden taste per author, seen only in old feedback (0 = off)"
    ),
    "bad_row_rate": "share of rows made invalid (0 disables)",
}


# Row order inside each date's file: a user's rows together, in time order, as the history and
# request-sample builders read them.
CLUSTER_BY: dict[str, tuple[str, ...]] = {
    IMPRESSIONS.name: ("user_id", "request_ts", "position"),
    USER_ACTIONS.name: ("user_id", "event_ts"),
}


def _clustered_by_date(df: DataFrame, table: str) -> DataFrame:
    """Each date in one task, so one file per date rather than one per date per generator task
    (60 warm-up days would otherwise make hundreds of small files), sorted by CLUSTER_BY."""
    return df.repartition("date").sortWithinPartitions("date", *CLUSTER_BY[table])


@dataclass(frozen=True)
class Args:
    warehouse: str = DEFAULT_WAREHOUSE
    config: SyntheticConfig = field(default_factory=SyntheticConfig)


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("generate_logs", __doc__, with_date=False)
    defaults = SyntheticConfig()
    for name, help_text in FLAGS.items():
        default = getattr(defaults, name)
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=date_arg if name == "start_date" else type(default),
            default=default,
            help=f"{help_text} (default: %(default)s)",
        )
    ns = vars(p.parse_args(argv))
    return Args(warehouse=ns.pop("warehouse"), config=SyntheticConfig(**ns))


def run(spark: SparkSession, args: Args) -> Summary:
    """Generates and writes both tables; returns the row counts and the generated range."""
    cfg = args.config
    metadata = json.dumps({"job": "generate_logs", **dataclasses.asdict(cfg)}, sort_keys=True)
    paths = {c.name: c.location(args.warehouse) for c in (IMPRESSIONS, USER_ACTIONS)}
    users = spark.range(cfg.num_users).withColumnRenamed("id", "user_id")
    # Read twice (impressions, and the actions of the watched ones): generate once.
    clean = users.transform(clean_impressions(cfg)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        overwrite_where(
            _clustered_by_date(clean.transform(with_impression_bad_rows(cfg)), IMPRESSIONS.name),
            IMPRESSIONS,
            paths[IMPRESSIONS.name],
            date_range_predicate(*cfg.impression_dates),
            user_metadata=metadata,
        )
        overwrite_where(
            _clustered_by_date(users.transform(generate_actions(cfg, clean)), USER_ACTIONS.name),
            USER_ACTIONS,
            paths[USER_ACTIONS.name],
            date_range_predicate(*cfg.action_dates),
            user_metadata=metadata,
        )
    finally:
        clean.unpersist()
    rows = {name: last_commit_metrics(spark, path).get("numOutputRows", 0) for name, path in paths.items()}
    return {
        "rows": rows,
        "users": cfg.num_users,
        "impression_dates": list(cfg.impression_dates),
        "action_dates": list(cfg.action_dates),
        "seed": cfg.seed,
        "bad_row_rate": cfg.bad_row_rate,
    }


def main(argv: list[str] | None = None) -> Summary:
    """Generates and writes both tables; returns the summary it logs (with `seconds`)."""
    return run_job("generate_logs", run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error("generate_logs", main, sys.argv[1:])
