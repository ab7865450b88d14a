"""Imports MovieLens 100k with jobs/import_public_logs and measures what the requests look like:
users, requests, targets per request, point-in-time history length per request (p50/p90/p99/max),
quarantine counts and import time. Writes benchmarks/results/public_logs-ml100k[-pagesN].json.

History lengths are computed from the imported tables with the rule of DESIGN.md §3 (events of
the same user with event_ts < request_ts, at most L_max); tests/test_public_logs.py checks that
build_request_samples gives the same lengths.

    python -m benchmarks.public_logs                    # request = burst (the default mapping)
    python -m benchmarks.public_logs --max-targets 20   # bursts cut into pages of <= 20 items
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F

from jobs import import_public_logs
from jobs.spark_session import get_spark
from pipelines.request_samples import DEFAULT_L_MAX
from schemas import IMPRESSIONS, USER_ACTIONS

ROOT = Path(__file__).resolve().parent.parent
ML100K = ROOT.parent / "shared" / "data" / "ml-100k"
RESULTS = ROOT / "benchmarks" / "results"
QUANTILES = (0.5, 0.9, 0.99)


def _distribution(df: Any, column: str) -> dict[str, float]:
    row = df.agg(
        F.percentile(column, list(QUANTILES)).alias("q"), F.max(column).alias("max"), F.avg(column).alias("mean")
    ).first()
    return {**{f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, row["q"], strict=True)},
            "max": int(row["max"]), "mean": round(float(row["mean"]), 1)}  # fmt: skip


def _scalar(df: Any) -> int:
    row = df.first()
    return int(row[0] or 0) if row is not None else 0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ML100K), help="the ml-100k folder (default: %(default)s)")
    p.add_argument("--session-gap-minutes", type=float, default=30.0)
    p.add_argument("--max-targets", type=int, default=0)
    p.add_argument("--l-max", type=int, default=DEFAULT_L_MAX)
    args = p.parse_args(argv)
    spark = get_spark()
    with tempfile.TemporaryDirectory() as wh:
        summary = import_public_logs.main(
            ["--warehouse", wh, "--format", "movielens", "--input", f"{args.data}/u.data", "--items", f"{args.data}/u.item",
             "--session-gap-minutes", str(args.session_gap_minutes), "--max-targets", str(args.max_targets)]
        )  # fmt: skip
        imps = spark.read.format("delta").load(IMPRESSIONS.location(wh))
        actions = spark.read.format("delta").load(USER_ACTIONS.location(wh)).select("user_id", "event_ts")
        requests = imps.groupBy("request_id", "user_id", "request_ts").agg(F.count("*").alias("num_targets"))
        before = requests.join(actions, "user_id", "left").groupBy("request_id").agg(
            F.sum((F.col("event_ts") < F.col("request_ts")).cast("int")).alias("n")
        )
        hist = before.select(F.least(F.coalesce("n", F.lit(0)), F.lit(args.l_max)).alias("hist_len")).persist()
        result = {
            "dataset": "ml-100k",
            "session_gap_minutes": args.session_gap_minutes,
            "max_targets": args.max_targets,
            "l_max": args.l_max,
            "import": summary,
            "targets_per_request": _distribution(requests, "num_targets"),
            "hist_len": _distribution(hist, "hist_len"),
            "requests_with_empty_history": hist.where("hist_len = 0").count(),
            "targets_with_history": _scalar(requests.join(before, "request_id").where("n > 0").agg(F.sum("num_targets"))),
            "hardware": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "public_logs-ml100k" + (f"-pages{args.max_targets}" if args.max_targets else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
