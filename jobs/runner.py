"""The one way a job runs: logging, the Spark session, timing and the JSON summary line.

Every job module exposes a typed core, `run(spark, args) -> Summary`, that the demo, benchmarks
and tests call directly with an `Args` dataclass, and a three-line `main(argv)` for spark-submit:

    def main(argv: list[str] | None = None) -> Summary:
        return run_job("build_request_samples", run, parse_args(argv))

`run_job` owns what used to be repeated at the tail of every `main()`: it configures logging,
gets the session, times `run`, adds `seconds` to the summary and logs it as one JSON line that
schedulers and people can grep for (`<job>: {...}`). Callers that hold a session and want the
timed, logged summary too (the demo, benchmarks) pass it as `spark`.

Every job's `if __name__ == "__main__"` block is `exit_on_job_error(<job>, main, sys.argv[1:])`
(jobs/cli.py): a job error (a missing input, a contract, a failed gate, a refused publish, a lost
commit race) ends as one line `<job>: error: <what failed and what to do>` and exit status 1;
anything else is a bug and keeps its traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pyspark.sql import SparkSession

from jobs.cli import configure_logging, timed
from jobs.spark_session import get_spark
from storage.object_store import check_access, is_remote

# A job's summary: JSON-able counts, versions and the run time, returned by `run` and `main`.
Summary = dict[str, Any]

A = TypeVar("A")


def run_job(
    name: str, run: Callable[[SparkSession, A], Summary], args: A, spark: SparkSession | None = None
) -> Summary:
    """Runs `run(spark, args)` with the shared logging, session and timing; returns its summary
    with `seconds` set, after logging it as `<name>: <json>`."""
    configure_logging()
    for uri in {getattr(args, a, None) for a in ("warehouse", "quality_root")}:
        if isinstance(uri, str) and is_remote(uri):
            check_access(uri)  # keys refused, no bucket, endpoint down: one message, before any write
    session = spark if spark is not None else get_spark()
    with timed() as t:
        summary = run(session, args)
    summary["seconds"] = round(t["seconds"], 1)
    logging.getLogger(name).info("%s: %s", name, json.dumps(summary, default=str))
    return summary
