"""Benchmark of the quality gate's Great Expectations result formats: what jobs/validate.py pays for
the detail its stored results carry, on one demo-sized day (1,500 users, histories up to 10k).

GX on Spark runs one aggregate per metric bundle; what a result format adds is the queries for
example values. BOOLEAN_ONLY (what validate used) has no observed values, and rendering its stored
results into the Data Docs raised `KeyError: 'observed_value'` on every run. BASIC with
`partial_unexpected_count` 0 (validate's GATE_FORMAT now) keeps counts and observed values; its
example query is `limit(0)`, which Spark answers without a job. BASIC and SUMMARY fetch up to 20
examples per expectation: one more scan each, even when nothing is unexpected.

    python -m benchmarks.gate              # builds the day once under --workdir, then times
Writes benchmarks/results/gate.json: per format, the median seconds of the GX part (run_suites,
Data Docs included) and of the whole validate run, and the Data Docs tracebacks GX logged.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from benchmarks.common import write_result
from jobs import build_request_samples, build_user_history, generate_logs, validate
from jobs.cli import configure_logging, previous_day
from jobs.spark_session import get_spark
from schemas import REQUEST_SAMPLES_STAGING
from schemas.constants import DEFAULT_L_MAX
from schemas.quality import GateThresholds
from synthetic.logs import SyntheticConfig

DAY = "2026-01-01"
FORMATS: dict[str, dict[str, Any]] = {
    "boolean_only": {"result_format": "BOOLEAN_ONLY"},
    "basic_no_examples": dict(validate.GATE_FORMAT),
    "basic": {"result_format": "BASIC"},
    "summary": {"result_format": "SUMMARY"},
}


class _Tracebacks(logging.Handler):
    """Counts the Data Docs rendering errors GX logs (each carries a traceback in its message)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "Traceback" in record.getMessage()


def build_day(spark: SparkSession, warehouse: str, users: int, seed: int) -> None:
    """The demo's default logs for one request day, its state as of D-1 and the staged day."""
    if Path(REQUEST_SAMPLES_STAGING.location(warehouse)).exists():
        return  # reused: the timings need the same data, not a fresh build
    config = SyntheticConfig(seed=seed, start_date=DAY, num_days=1, history_days=20, num_users=users,
                             max_events=15_000, bad_row_rate=0.002)  # fmt: skip
    generate_logs.run(spark, generate_logs.Args(warehouse=warehouse, config=config))
    state = build_user_history.Args(date=previous_day(DAY), warehouse=warehouse, state_len=DEFAULT_L_MAX)
    build_user_history.run(spark, state)
    build_request_samples.run(spark, build_request_samples.Args(date=DAY, warehouse=warehouse))


def _timed_suites(seconds: list[float]) -> Callable[..., dict[str, dict[str, Any]]]:
    run_suites = validate.run_suites

    def timed(*args: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
        start = time.monotonic()
        try:
            return run_suites(*args, **kwargs)
        finally:
            seconds.append(time.monotonic() - start)

    return timed


def measure(spark: SparkSession, warehouse: str, repeats: int) -> dict[str, Any]:
    """Runs validate `repeats` times per format, formats interleaved so load changes hit each alike."""
    counter = _Tracebacks()
    logging.getLogger("great_expectations").addHandler(counter)
    gx_seconds: dict[str, list[float]] = {name: [] for name in FORMATS}
    total: dict[str, list[float]] = {name: [] for name in FORMATS}
    tracebacks: dict[str, int] = dict.fromkeys(FORMATS, 0)
    original_format, original_suites = validate.GATE_FORMAT, validate.run_suites
    try:
        for repeat in range(repeats + 1):  # the first round warms up GX and Spark: not kept
            for name, result_format in FORMATS.items():
                validate.GATE_FORMAT = result_format
                seconds: list[float] = []
                validate.run_suites = _timed_suites(seconds)
                root = Path(warehouse).parent / f"quality-{name}"
                shutil.rmtree(root, ignore_errors=True)
                counter.count = 0
                start = time.monotonic()
                args = validate.Args(date=DAY, warehouse=warehouse, quality_root=str(root),
                                     thresholds=GateThresholds())  # fmt: skip
                summary = validate.run(spark, args)
                if not summary["success"]:
                    raise RuntimeError(f"the benchmark's day failed the gate: {summary}")
                if repeat:
                    total[name].append(time.monotonic() - start)
                    gx_seconds[name].extend(seconds)
                    tracebacks[name] = max(tracebacks[name], counter.count)
    finally:
        validate.GATE_FORMAT, validate.run_suites = original_format, original_suites
        logging.getLogger("great_expectations").removeHandler(counter)
    return {
        name: {
            "format": FORMATS[name],
            "gx_seconds_median": round(statistics.median(gx_seconds[name]), 2),
            "validate_seconds_median": round(statistics.median(total[name]), 2),
            "gx_seconds": [round(s, 2) for s in gx_seconds[name]],
            "data_docs_tracebacks": tracebacks[name],
        }
        for name in FORMATS
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="benchmarks.gate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workdir", default=".cache/bench-gate", help="scratch warehouse, reused if built")
    p.add_argument("--users", type=int, default=1_500, help="users of the day (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per format (default: %(default)s)")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    configure_logging()
    spark = get_spark()
    warehouse = str(Path(args.workdir) / "warehouse")
    build_day(spark, warehouse, args.users, args.seed)
    rows = spark.read.format("delta").load(REQUEST_SAMPLES_STAGING.location(warehouse)).count()
    results = measure(spark, warehouse, args.repeats)
    path = write_result("gate", {"args": vars(args), "results": {"rows": rows, "formats": results}})
    for name, r in results.items():
        gx_s, all_s = r["gx_seconds_median"], r["validate_seconds_median"]
        print(f"{name:<18} GX {gx_s:6.2f} s, validate {all_s:6.2f} s, tracebacks {r['data_docs_tracebacks']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
