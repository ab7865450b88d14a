"""Benchmark of user_day_samples against request_samples: history bytes on disk for the same
requests, and build time for the same day.

* Synthetic logs (synthetic/logs.py, SyntheticConfig's defaults unless --size quick): one day,
  built with build_request_samples (L_max = 10k) and then build_user_day_samples from it, both
  as jobs (their own `seconds`, as from spark-submit). Goal: history bytes <= 0.33x.
* MovieLens 100k through jobs/import_public_logs (the same import as benchmarks/public_logs.py),
  request_samples of every day in one --to-date pass, then the user-days of every day with the
  pipeline (pipelines/user_day_samples.py) in one write: the job builds one date per run.

History bytes are the compressed bytes of the hist_* columns of every row group (the codec of the
session, each table's writer settings: jobs/delta_io.PARQUET_WRITER_CONF), also given per column
with its encodings; the user-day side is also given with its per-request offsets (hist_start, hist_end),
which exist only to index the window, and the goal is checked on that total.

    python -m benchmarks.user_day_storage                 # default synthetic scale + MovieLens 100k
    python -m benchmarks.user_day_storage --size quick    # a smaller synthetic day
Writes benchmarks/results/user_day_storage.json (user_day_storage-quick.json for --size quick).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from benchmarks.common import RESULTS, write_result
from benchmarks.public_logs import ML100K, ML100K_SOURCE, build_samples, import_log
from jobs import build_request_samples, build_user_day_samples, build_user_history, generate_logs
from jobs.cli import configure_logging, previous_day
from jobs.delta_io import PARQUET_WRITER_CONF, overwrite_where
from jobs.runner import run_job
from jobs.spark_session import PARQUET_CODEC_CONF, get_spark
from loader import bytes_of, column_bytes, resolve_snapshot
from loader.storage import column_encodings
from pipelines.user_day_samples import user_day_rows, with_user_day_window
from schemas import REQUEST_SAMPLES, USER_DAY_SAMPLES
from schemas.constants import DEFAULT_L_MAX
from schemas.fields import HISTORY_COLUMNS
from synthetic.logs import SyntheticConfig

log = logging.getLogger("benchmarks.user_day_storage")
DAY = "2026-01-01"
GOAL = 0.33  # issue 21: user_day history bytes <= 0.33x request_samples' at the default scale
HIST = [c.name for c in HISTORY_COLUMNS]
OFFSETS = ["hist_start", "hist_end"]
SIZES: dict[str, SyntheticConfig] = {
    "default": SyntheticConfig(start_date=DAY),
    "quick": SyntheticConfig(start_date=DAY, num_users=300, history_days=10),
}


def storage(wh: str, codec: str) -> dict[str, Any]:
    """History bytes of both tables under `wh` (their current versions), and their ratios; per
    history column, the bytes of both and their encodings (where the window's bytes go)."""
    req, day = resolve_snapshot(REQUEST_SAMPLES.location(wh)), resolve_snapshot(USER_DAY_SAMPLES.location(wh))
    req_sizes, day_sizes = column_bytes(req), column_bytes(day)
    req_enc, day_enc = column_encodings(req, HIST), column_encodings(day, HIST)
    req_hist, day_hist, day_offsets = (
        bytes_of(req_sizes, HIST),
        bytes_of(day_sizes, HIST),
        bytes_of(day_sizes, OFFSETS),
    )
    return {
        "codec": codec,
        "requests": req.num_records,
        "user_days": day.num_records,
        "request_samples_history_bytes": req_hist,
        "user_day_history_bytes": day_hist,
        "user_day_offset_bytes": day_offsets,
        "history_ratio": round(day_hist / req_hist, 4),
        "history_with_offsets_ratio": round((day_hist + day_offsets) / req_hist, 4),
        "request_samples_total_bytes": sum(req_sizes.values()),
        "user_day_total_bytes": sum(day_sizes.values()),
        "total_ratio": round(sum(day_sizes.values()) / sum(req_sizes.values()), 4),
        "user_day_writer_conf": PARQUET_WRITER_CONF.get(USER_DAY_SAMPLES.name, {}),
        "history_columns": {
            c: {
                "request_samples_bytes": req_sizes.get(c, 0),
                "user_day_bytes": day_sizes.get(c, 0),
                "request_samples_encodings": req_enc[c],
                "user_day_encodings": day_enc[c],
            }
            for c in HIST
        },
    }


def synthetic(spark: SparkSession, wh: str, config: SyntheticConfig) -> dict[str, Any]:
    """One generated day: both builds as jobs, then the storage of both tables."""
    generate_logs.run(spark, generate_logs.Args(warehouse=wh, config=config))
    state = build_user_history.Args(date=previous_day(DAY), warehouse=wh, state_len=DEFAULT_L_MAX)
    build_user_history.run(spark, state)
    samples = build_request_samples.Args(date=DAY, warehouse=wh, l_max=DEFAULT_L_MAX, output=REQUEST_SAMPLES)
    request_job = run_job("build_request_samples", build_request_samples.run, samples, spark)
    user_days = build_user_day_samples.Args(date=DAY, warehouse=wh, output=USER_DAY_SAMPLES)
    user_day_job = run_job("build_user_day_samples", build_user_day_samples.run, user_days, spark)
    return {
        "config": {
            k: getattr(config, k) for k in ("num_users", "history_days", "max_events", "requests_tail")
        },
        "requests_per_user_day": round(user_day_job["requests"] / max(user_day_job["user_days"], 1), 2),
        "storage": storage(wh, str(spark.conf.get(PARQUET_CODEC_CONF))),
        "build_seconds": {
            "build_request_samples": request_job["seconds"],
            "build_user_day_samples": user_day_job["seconds"],
            "ratio": round(user_day_job["seconds"] / request_job["seconds"], 3),
        },
        "jobs": {"build_request_samples": request_job, "build_user_day_samples": user_day_job},
    }


def movielens(spark: SparkSession, wh: str, data: Path) -> dict[str, Any]:
    """MovieLens 100k: the import, request_samples of every day, user_day_samples of every day."""
    summary = import_log(spark, wh, ML100K_SOURCE, data)
    build_samples(spark, wh, summary, DEFAULT_L_MAX)
    samples = spark.read.format("delta").load(REQUEST_SAMPLES.location(wh))
    user_days = with_user_day_window(samples).transform(user_day_rows)
    overwrite_where(user_days, USER_DAY_SAMPLES, USER_DAY_SAMPLES.location(wh), None)
    out = storage(wh, str(spark.conf.get(PARQUET_CODEC_CONF)))
    return {
        "dates": summary["dates"],
        **out,
        "requests_per_user_day": round(out["requests"] / out["user_days"], 2),
    }


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(
        prog="benchmarks.user_day_storage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--size", choices=sorted(SIZES), default="default", help="synthetic scale (default: %(default)s)"
    )
    p.add_argument("--workdir", default=".cache/bench-user-day", help="scratch warehouses (deleted first)")
    p.add_argument("--data", type=Path, default=ML100K, help="MovieLens 100k folder (default: %(default)s)")
    p.add_argument("--skip-movielens", action="store_true", help="synthetic logs only")
    p.add_argument(
        "--out", type=Path, default=None, help="result file (default: results/user_day_storage.json)"
    )
    p.add_argument("--note", default="", help="written into the JSON as is: e.g. how busy the machine was")
    args = p.parse_args(argv)
    configure_logging()
    root = Path(args.workdir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    spark = get_spark()
    result: dict[str, Any] = {"size": args.size, "l_max": DEFAULT_L_MAX, "goal_history_ratio_at_most": GOAL}
    if args.note:
        result["note"] = args.note
    result["synthetic"] = synthetic(spark, str(root / "synthetic"), SIZES[args.size])
    ratio = result["synthetic"]["storage"]["history_with_offsets_ratio"]
    result["synthetic_goal_met"] = ratio <= GOAL
    if not args.skip_movielens:
        result["movielens_100k"] = movielens(spark, str(root / "ml-100k"), args.data)
    default_out = RESULTS / (
        "user_day_storage.json" if args.size == "default" else f"user_day_storage-{args.size}.json"
    )
    path = write_result("user_day_storage", result, args.out or default_out)
    log.info("wrote %s: synthetic history ratio %.3f (goal <= %.2f)", path, ratio, GOAL)
    return path


if __name__ == "__main__":
    main()
