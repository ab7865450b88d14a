"""Refreshes `user_summaries` for one day: every user's history as of the end of D, summarized by
a frozen VISTA model into k quantized tokens (docs/design.md, VISTA and the
`summarize_users` stage).

Reads the `user_history` state version that completed day D (time travel; nothing else), runs
the summarizer of a `trainer.train --model vista` checkpoint over each user's most recent
`--l-max` events with ages measured from as_of_ts = the end of D (ms), quantizes (int8 per token
with an fp32 scale, or fp16), and replaces the (date D, model_version) rows of `user_summaries` in
one Delta commit whose userMetadata records date, as_of_ts, model_version and the state version.
A rerun gives the same rows; the refresh cadence is one run (one commit) per day.

Why mapInArrow on the executors rather than collecting users to the driver: the state holds one
row per user with up to 10k events each (hundreds of KB), so the work and the data scale with the
user count; each Spark task loads the checkpoint once per Python worker and streams its
partition through the model in Arrow batches of `--batch-size` users, so a cluster adds
throughput by adding executors and the driver never holds more than the plan. Each task pins
torch to `--torch-threads` threads so tasks do not oversubscribe the executor's cores. The
per-task model code is trainer/summarizer.py; this job does only the Spark I/O.

    spark-submit jobs/summarize_users.py --warehouse warehouse --date 2026-01-02 \\
        --checkpoint runs/vista/checkpoint.pt --model-version vista-20260102
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.cli import exit_on_job_error, job_parser
from jobs.delta_io import latest_version, overwrite_where
from jobs.history_state import StateOrderError, read_state, state_versions, version_as_of
from jobs.runner import Summary, run_job
from schemas import DEFAULT_WAREHOUSE, USER_HISTORY, USER_SUMMARIES
from schemas.constants import DAY_MS, DEFAULT_L_MAX, day_start_ms
from schemas.fields import HISTORY_COLUMNS
from schemas.user_summaries import QUANTIZATION_DTYPES
from trainer.summarizer import SummarizerConfig, load_frozen, summarize_partition


@dataclass(frozen=True)
class Args:
    date: str
    checkpoint: str
    model_version: str
    warehouse: str = DEFAULT_WAREHOUSE
    l_max: int = DEFAULT_L_MAX
    quantization: str = "int8"
    batch_size: int = 64  # users per torch forward
    torch_threads: int = 1  # per Spark task
    partitions: int | None = None  # repartition the state into this many tasks (default: as read)


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("summarize_users", __doc__)
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt of a `trainer.train --model vista` run")
    p.add_argument(
        "--model-version", required=True, help="name recorded with every summary (rankers read only theirs)"
    )
    p.add_argument(
        "--l-max", type=int, default=DEFAULT_L_MAX,
        help="most recent events summarized per user (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--quantization", choices=sorted(QUANTIZATION_DTYPES), default="int8",
        help="storage type of the cached summaries, with a per-vector scale (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=64, help="users per forward pass (default: %(default)s)")
    p.add_argument(
        "--torch-threads", type=int, default=1, help="torch threads per Spark task (default: %(default)s)"
    )
    p.add_argument("--partitions", type=int, default=None, help="repartition the state into this many tasks")
    ns = p.parse_args(argv)
    for name in ("l_max", "batch_size", "torch_threads"):
        if getattr(ns, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(ns, name)}")
    return Args(
        date=ns.date, checkpoint=ns.checkpoint, model_version=ns.model_version, warehouse=ns.warehouse,
        l_max=ns.l_max, quantization=ns.quantization, batch_size=ns.batch_size,
        torch_threads=ns.torch_threads, partitions=ns.partitions,
    )  # fmt: skip


def end_of_day_ms(date: str) -> int:
    """The first ms after UTC day `date`: a summary as of it covers every event of the day."""
    return day_start_ms(date) + DAY_MS


def run(spark: SparkSession, args: Args) -> Summary:
    """Summarizes the state as of args.date and replaces that day's rows of args.model_version."""
    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(
            f"--checkpoint {args.checkpoint} does not exist (train one with trainer.train --model vista)"
        )
    state_path = USER_HISTORY.location(args.warehouse)
    out_path = USER_SUMMARIES.location(args.warehouse)
    as_of_ts = end_of_day_ms(args.date)
    cfg = SummarizerConfig(
        checkpoint=args.checkpoint, model_version=args.model_version, date=args.date, as_of_ts=as_of_ts,
        l_max=args.l_max, quantization=args.quantization, batch_size=args.batch_size,
        torch_threads=args.torch_threads,
    )  # fmt: skip
    load_frozen(args.checkpoint)  # fail on the driver, before any task, if the checkpoint is wrong
    state_version = version_as_of(spark, state_path, args.date)
    if state_version is None:
        have = [v.as_of_date for v in state_versions(spark, state_path)]
        raise StateOrderError(
            f"no user_history state as of {args.date} in {state_path} (states: {have[-5:]}); "
            f"run build_user_history --date {args.date} first"
        )
    columns = ["user_id", "hist_len", *[c.name for c in HISTORY_COLUMNS]]
    state = read_state(spark, state_path, state_version).select(*columns)
    if args.partitions:
        state = state.repartition(args.partitions, "user_id")
    # summarize_partition is pickled by reference (trainer.summarizer is importable, unlike
    # __main__ under spark-submit): executors import it with its per-worker model cache.
    summaries = state.mapInArrow(lambda it: summarize_partition(it, cfg), USER_SUMMARIES.spark_schema())
    predicate = f"date = '{args.date}' AND model_version = '{args.model_version}'"
    meta = json.dumps({"date": args.date, "as_of_ts": as_of_ts, "model_version": args.model_version,
                       "state_version": state_version.version, "l_max": args.l_max,
                       "quantization": args.quantization, "checkpoint": args.checkpoint}, sort_keys=True)
    overwrite_where(summaries, USER_SUMMARIES, out_path, predicate, user_metadata=meta)
    written = (
        spark.read.format("delta").load(out_path).where(predicate)
        .agg(F.count("*").alias("users"), F.sum("num_events").alias("events"))
        .first()
    )  # fmt: skip
    if written is None:
        raise RuntimeError(f"user_summaries at {out_path}: aggregate over {predicate} returned nothing")
    return {
        "date": args.date,
        "as_of_ts": as_of_ts,
        "model_version": args.model_version,
        "users": int(written["users"]),
        "events_summarized": int(written["events"] or 0),
        "state_version": state_version.version,
        "version": latest_version(spark, out_path),
    }


def main(argv: list[str] | None = None) -> Summary:
    """spark-submit entry point: returns the summary it logs (with `seconds`)."""
    return run_job("summarize_users", run, parse_args(argv))


if __name__ == "__main__":
    exit_on_job_error("summarize_users", main, sys.argv[1:])
