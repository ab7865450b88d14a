"""Benchmark of build_request_samples: storage saved by the request-level layout, speed against
the naive formulation, and linearity in the history elements written.

For the same generated logs it measures:
* bytes on disk of the history columns in request_samples vs impression_samples, and mean m;
* wall time of our slice-based pipeline and of the naive one (explode actions per request,
  filter by time, rank, collect_list, sort) at L_max = 2k and 10k, both computed in full and
  sent to Spark's `noop` sink so only the computation is timed;
* history elements written per second at several L_max (linearity).

    python -m benchmarks.build --quick        # a few minutes on 2 cores
    python -m benchmarks.build                # the full size
Writes benchmarks/results/build.json.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from benchmarks.common import RESULTS, write_result
from jobs import build_impression_samples, build_request_samples, build_user_history, generate_logs
from jobs.cli import configure_logging, previous_day
from jobs.history_state import read_state, version_as_of
from jobs.runner import run_job
from jobs.spark_session import PARQUET_CODEC_CONF, get_spark
from loader import DataFile, Snapshot, bytes_of, column_bytes, resolve_snapshot
from pipelines.request_samples import (
    requests_from_impressions,
    user_events_through_day,
    with_history_as_of_request,
)
from pipelines.user_history import EVENT_ORDER, sorted_events_by_user
from pipelines.validity import valid_rows, with_action_reject_reason, with_impression_reject_reason
from schemas import IMPRESSION_SAMPLES, IMPRESSIONS, REQUEST_SAMPLES, USER_ACTIONS, USER_HISTORY
from schemas.constants import DEFAULT_L_MAX
from schemas.fields import HISTORY_COLUMNS
from synthetic.logs import SyntheticConfig

log = logging.getLogger("benchmarks.build")
DAY = "2026-01-01"
STATE_LEN = DEFAULT_L_MAX


@dataclass(frozen=True)
class Size:
    num_users: int
    history_days: int
    max_events: int


SIZES = {
    "quick": Size(num_users=300, history_days=10, max_events=14_000),
    "full": Size(num_users=1_500, history_days=20, max_events=15_000),
    "large": Size(num_users=5_000, history_days=20, max_events=15_000),
}


def naive_samples(requests: DataFrame, actions: DataFrame, l_max: int) -> DataFrame:
    """The formulation RLB avoids: one row per (request, earlier event), ranked, collected, sorted."""
    event_cols = ("item_id", "author_id", "event_ts", "action", "watch_ms", "duration_ms")
    ev = actions.select("user_id", *[F.col(c) for c in event_cols])
    exploded = (
        requests.select("request_id", "user_id", "request_ts")
        .join(ev, "user_id")
        .where(F.col("event_ts") < F.col("request_ts"))
    )
    recent = Window.partitionBy("request_id").orderBy(*[F.col(c).desc() for c in EVENT_ORDER])
    kept = exploded.withColumn("_rank", F.row_number().over(recent)).where(F.col("_rank") <= l_max)
    return requests.join(sorted_events_by_user(kept, key="request_id"), "request_id", "left")


def shuffled_flat_history_bytes(spark: SparkSession, wh: str) -> int:
    """History bytes of the flat layout in the order a point-wise trainer reads it (shuffled
    impressions). As written by build_impression_samples, a request's m copies sit side by side
    and the codec folds most of them away; shuffled, each copy costs its full size."""
    out = Path(wh) / "impression_samples_shuffled"
    flat = spark.read.format("delta").load(IMPRESSION_SAMPLES.location(wh))
    flat.orderBy(F.xxhash64("request_id", "item_id")).write.mode("overwrite").parquet(str(out))
    files = tuple(DataFile(str(f), f.stat().st_size, None, {}) for f in sorted(out.glob("*.parquet")))
    return bytes_of(column_bytes(Snapshot(str(out), 0, files)), [c.name for c in HISTORY_COLUMNS])


def timed_noop(df: DataFrame) -> float:
    start = time.monotonic()
    df.write.format("noop").mode("overwrite").save()
    return time.monotonic() - start


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeats))


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(
        prog="benchmarks.build", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="small data: a few minutes on 2 cores (same as --size quick)"
    )
    p.add_argument("--size", choices=sorted(SIZES), default="full", help="data size (default: %(default)s)")
    p.add_argument("--workdir", default=".cache/bench-build", help="scratch warehouse (deleted first)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="timed runs per measurement; the best is kept")
    p.add_argument(
        "--skip-naive-10k", action="store_true", help="skip the naive formulation at L_max=10k (slow)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="result file (default: results/build.json, build-<size>.json)"
    )
    args = p.parse_args(argv)
    configure_logging()
    size_name = "quick" if args.quick else args.size
    size = SIZES[size_name]
    wh = str(Path(args.workdir).resolve())
    shutil.rmtree(wh, ignore_errors=True)
    spark = get_spark()

    logs = SyntheticConfig(seed=args.seed, start_date=DAY, num_days=1, history_days=size.history_days,
                           num_users=size.num_users, max_events=size.max_events)  # fmt: skip
    generate_logs.run(spark, generate_logs.Args(warehouse=wh, config=logs))
    state = build_user_history.Args(date=previous_day(DAY), warehouse=wh, state_len=STATE_LEN)
    build_user_history.run(spark, state)
    # run_job: the summary kept in the result carries the job's own `seconds`, as from spark-submit.
    samples = build_request_samples.Args(date=DAY, warehouse=wh, l_max=STATE_LEN, output=REQUEST_SAMPLES)
    job = run_job("build_request_samples", build_request_samples.run, samples, spark)
    build_impression_samples.run(spark, build_impression_samples.Args(date=DAY, warehouse=wh))

    hist_cols = [c.name for c in HISTORY_COLUMNS]
    req = resolve_snapshot(REQUEST_SAMPLES.location(wh))
    imp = resolve_snapshot(IMPRESSION_SAMPLES.location(wh))
    req_bytes, imp_bytes = bytes_of(column_bytes(req), hist_cols), bytes_of(column_bytes(imp), hist_cols)
    mean_m = (imp.num_records or 0) / max(req.num_records or 1, 1)
    shuffled_bytes = shuffled_flat_history_bytes(spark, wh)
    storage = {
        "codec": spark.conf.get(PARQUET_CODEC_CONF),
        "request_level_history_bytes": req_bytes,
        "impression_level_history_bytes": imp_bytes,
        "impression_level_shuffled_history_bytes": shuffled_bytes,
        "mean_targets": round(mean_m, 3),
        "ratio_to_impression_level_per_target": round(req_bytes / (imp_bytes / mean_m), 4),
        "ratio_to_shuffled_impression_level_per_target": round(req_bytes / (shuffled_bytes / mean_m), 4),
        "target_ratio_at_most": 1.15,
    }

    inputs = _inputs(spark, wh)
    timings: dict[str, dict[str, float]] = {}
    for l_max in (1_000, 2_000, 5_000, 10_000):
        ours = inputs["requests"].transform(with_history_as_of_request(inputs["events"], l_max))
        elements = int(ours.agg(F.sum("hist_len")).first()[0] or 0)  # type: ignore[index]
        seconds = best_of(args.repeats, partial(timed_noop, ours))
        timings[str(l_max)] = {"ours_seconds": round(seconds, 2), "history_elements": elements,
                               "elements_per_second": round(elements / seconds)}
        if l_max in (2_000, 10_000) and not (l_max == 10_000 and args.skip_naive_10k):
            naive = naive_samples(inputs["requests"], inputs["all_actions"], l_max)
            naive_elements = int(naive.agg(F.sum("hist_len")).first()[0] or 0)  # type: ignore[index]
            if naive_elements != elements:
                raise RuntimeError(
                    f"naive and ours disagree at L_max={l_max}: {naive_elements} vs {elements} elements"
                )
            naive_s = best_of(args.repeats, partial(timed_noop, naive))
            timings[str(l_max)].update(naive_seconds=round(naive_s, 2), speedup=round(naive_s / seconds, 2))
        log.info("L_max %d: %s", l_max, timings[str(l_max)])

    eps = [t["elements_per_second"] for t in timings.values()]
    result = {
        "size": size_name,
        "config": asdict(size),
        "job": job,
        "storage": storage,
        "timings_by_l_max": timings,
        "linearity_elements_per_second_min_over_max": round(min(eps) / max(eps), 3),
    }
    # build.json is the --quick reference docs/benchmarks.md shows; other sizes get their own file.
    default_out = None if size_name == "quick" else RESULTS / f"build-{size_name}.json"
    path = write_result("build", result, args.out or default_out)
    log.info("wrote %s", path)
    return path


def _inputs(spark: SparkSession, wh: str) -> dict[str, DataFrame]:
    """The day's requests, the user events our pipeline slices, and the raw action log the naive
    formulation explodes; cached so both formulations start from the same materialized input."""
    imps = spark.read.format("delta").load(IMPRESSIONS.location(wh)).where(F.col("date") == DAY)
    actions = spark.read.format("delta").load(USER_ACTIONS.location(wh))
    valid_actions = valid_rows(actions.where(F.col("date") <= DAY).transform(with_action_reject_reason))
    requests = requests_from_impressions(valid_rows(imps.transform(with_impression_reject_reason))).cache()
    state_path = USER_HISTORY.location(wh)
    state = read_state(spark, state_path, version_as_of(spark, state_path, previous_day(DAY)))
    events = user_events_through_day(state, valid_actions.where(F.col("date") == DAY)).cache()
    all_actions = valid_actions.cache()
    for df in (requests, events, all_actions):
        df.count()
    return {"requests": requests, "events": events, "all_actions": all_actions}


if __name__ == "__main__":
    main()
