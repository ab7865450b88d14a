"""The main job end to end on the embedded default: local Spark, Delta tables under a warehouse.

Stages: generate synthetic logs -> bootstrap the user_history state -> per day, build
request_samples into staging, validate it (quality gate), publish it and extend the state ->
build the flat impression layout of the last day -> compare storage. Writes
reports/<run>/summary.json and prints a short report.

    make demo                 # the default scale, a few minutes on 2 cores
    make demo SCALE=tiny      # seconds-scale smoke run
    python -m jobs.demo --scale large --warehouse s3a://bucket/wh   # for a cluster
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from jobs import (
    build_impression_samples,
    build_request_samples,
    build_user_history,
    generate_logs,
    publish,
    validate,
)
from jobs.cli import configure_logging, previous_day
from loader.snapshot import resolve_snapshot
from loader.storage import bytes_of, column_bytes
from schemas import DEFAULT_WAREHOUSE, IMPRESSION_SAMPLES, REQUEST_SAMPLES
from schemas.fields import HISTORY_COLUMNS

log = logging.getLogger("demo")


@dataclass(frozen=True)
class Scale:
    num_users: int  # users in the generated logs
    history_days: int  # warm-up days of actions before the first request day
    num_days: int  # request days
    max_events: int  # warm-up events of the most active user (> l_max: some histories exceed it)
    l_max: int  # history length kept per request


SCALES: dict[str, Scale] = {
    "tiny": Scale(num_users=60, history_days=3, num_days=2, max_events=3_000, l_max=2_000),
    "default": Scale(num_users=1_500, history_days=20, num_days=3, max_events=15_000, l_max=10_000),
    "large": Scale(num_users=2_000_000, history_days=60, num_days=7, max_events=20_000, l_max=10_000),
}
START_DATE = "2026-01-01"


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(prog="demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE, help="warehouse root (default: %(default)s)")
    p.add_argument("--scale", default="default", choices=sorted(SCALES), help="data size (default: %(default)s)")
    p.add_argument("--reports", default="reports", help="folder for the run's report (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated logs (default: %(default)s)")
    args = p.parse_args(argv)
    configure_logging()
    scale = SCALES[args.scale]
    run = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")  # names the report only, never data
    start = time.monotonic()
    days = [(dt.date.fromisoformat(START_DATE) + dt.timedelta(days=i)).isoformat() for i in range(scale.num_days)]
    wh = ["--warehouse", args.warehouse]
    stages: dict[str, object] = {}
    steps = tqdm(total=2 + 4 * len(days) + 2, desc="demo", unit="stage")

    def stage(name: str, result: object) -> None:
        stages[name] = result
        steps.update(1)
        steps.set_postfix_str(name)

    stage("generate_logs", generate_logs.main([
        *wh, "--seed", str(args.seed), "--start-date", START_DATE, "--num-days", str(scale.num_days),
        "--history-days", str(scale.history_days), "--num-users", str(scale.num_users),
        "--max-events", str(scale.max_events), "--bad-row-rate", "0.002",
    ]))
    state = ["--state-len", str(scale.l_max)]
    stage(f"build_user_history {previous_day(days[0])}", build_user_history.main([*wh, "--date", previous_day(days[0]), *state]))
    for day in days:
        stage(f"build_request_samples {day}", build_request_samples.main([*wh, "--date", day, "--l-max", str(scale.l_max)]))
        stage(f"validate {day}", validate.main([*wh, "--date", day, "--l-max", str(scale.l_max)]))
        stage(f"publish {day}", publish.main([*wh, "--date", day]))
        stage(f"build_user_history {day}", build_user_history.main([*wh, "--date", day, *state]))
    stage(f"build_impression_samples {days[-1]}", build_impression_samples.main([*wh, "--date", days[-1]]))
    storage = storage_comparison(args.warehouse, days[-1])
    stage("storage", storage)
    steps.close()

    seconds = round(time.monotonic() - start, 1)
    summary = {"run": run, "scale": asdict(scale), "seconds": seconds, "stages": stages}
    out = Path(args.reports) / run
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print_report(stages, out / "summary.json", seconds)
    return summary


def storage_comparison(warehouse: str, day: str) -> dict[str, object]:
    """History bytes of one day in the request-level vs the impression-level layout."""
    hist = [c.name for c in HISTORY_COLUMNS]
    req = resolve_snapshot(REQUEST_SAMPLES.location(warehouse), date_from=day, date_to=day)
    imp = resolve_snapshot(IMPRESSION_SAMPLES.location(warehouse), date_from=day, date_to=day)
    req_bytes, imp_bytes = bytes_of(column_bytes(req), hist), bytes_of(column_bytes(imp), hist)
    return {
        "date": day,
        "request_level_history_bytes": req_bytes,
        "impression_level_history_bytes": imp_bytes,
        "saving": round(1 - req_bytes / imp_bytes, 4) if imp_bytes else 0.0,
        "mean_targets": round((imp.num_records or 0) / max(req.num_records or 1, 1), 2),
    }


REPORT_KEYS = (
    "rows", "actions_read", "quarantined", "requests", "targets", "max_hist_len", "impressions", "saving", "mean_targets", "success",
    "suites", "seconds",
)


def print_report(stages: dict[str, object], path: Path, seconds: float) -> None:
    print(f"\ndemo finished in {seconds:.0f}s; summary: {path}")
    for name, result in stages.items():
        if isinstance(result, dict):
            shown = {k: result[k] for k in REPORT_KEYS if k in result}
            print(f"  {name:<34} {json.dumps(shown)}")


if __name__ == "__main__":
    main()
