"""The main job end to end on the embedded default: local Spark, Delta tables under a warehouse.

Stages: generate synthetic logs -> bootstrap the user_history state -> per day, build
request_samples into staging, validate it (quality gate), publish it and extend the state ->
build the flat impression layout of the last day -> compare storage -> measure the loader ->
train STCA (length-extrapolative sampling) and the baselines on the earlier days, evaluate on the
last day at several inference lengths -> reports/<run>/index.html (+ summary.json, PNGs).

    make demo              # the default scale (1,500 users, histories up to 10k), ~10 min on 2 cores
    make demo SCALE=tiny   # smoke run of every stage: minutes, Spark's per-stage start-up dominates
    python -m demo --scale large --warehouse /data/rlb-demo   # one big machine with a GPU

Each stage calls a job's typed core (`run(spark, Args(...))` through jobs.runner.run_job, which
adds the stage's seconds and logs its summary line), as spark-submit would run its `main`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from demo.report import render
from jobs import (
    build_impression_samples,
    build_request_samples,
    build_user_history,
    generate_logs,
    publish,
    validate,
)
from jobs.cli import configure_logging, previous_day
from jobs.runner import run_job
from jobs.spark_session import SparkSettings, get_spark
from loader import LengthSampling, LoaderConfig, RequestLoader
from loader.snapshot import resolve_snapshot
from loader.storage import bytes_of, column_bytes
from schemas import DEFAULT_WAREHOUSE, IMPRESSION_SAMPLES, QUARANTINE, REQUEST_SAMPLES
from schemas.constants import DEFAULT_L_MAX
from schemas.fields import HISTORY_COLUMNS
from schemas.quality import GateThresholds
from storage.object_store import read_parquet
from synthetic.logs import SyntheticConfig
from trainer.config import STCAConfig
from trainer.metrics import compare_runs
from trainer.registry import MODELS
from trainer.train import TrainConfig, train

log = logging.getLogger("demo")


CPU_MODEL = {"d": 32, "heads": 2, "layers": 2, "id_dim": 32, "head_hidden": 64,
             "item_buckets": 1 << 17, "author_buckets": 1 << 12, "user_buckets": 1 << 14}
GPU_MODEL = {"d": 256, "heads": 4, "layers": 4, "id_dim": 64, "head_hidden": 512}


@dataclass(frozen=True)
class Scale:
    num_users: int  # users in the generated logs
    history_days: int  # warm-up days of actions before the first request day
    num_days: int  # request days (all but the last train, the last evaluates)
    max_events: int  # warm-up events of the most active user (> l_max: some histories exceed it)
    l_max: int  # history length kept per request
    train_steps: int  # optimizer steps per model
    batch_size: int  # requests per training batch
    length_mean: float  # mean sampled history length in training (length extrapolation)
    eval_lengths: tuple[int, ...]  # inference lengths evaluated on the last day
    # The planted signal (synthetic/logs.py). On CPU scales: the creator affinity alone over
    # few items (20 authors), the recipe tests/test_long_range_quality.py checks: STCA reads it in
    # a few hundred steps, mean pooling cannot, and 10k events hold more of it than 512. With
    # 100k items neither model learns anything in a CPU budget (item ids are never seen twice).
    num_items: int = 400
    num_topics: int = 6
    interest_logit: float = 0.0
    affinity_logit: float = 3.0
    # STCA and a baseline on one chart. DIN's activation unit is O(targets x L x 64) per request:
    # on 2 cores it alone took 8 of the default scale's minutes (--models stca,mean_pool,din).
    models: tuple[str, ...] = ("stca", "mean_pool")
    model_config: tuple[tuple[str, object], ...] = tuple(CPU_MODEL.items())


SCALES: dict[str, Scale] = {
    "tiny": Scale(num_users=60, history_days=3, num_days=2, max_events=3_000, l_max=2_000,
                  train_steps=8, batch_size=16, length_mean=300.0, eval_lengths=(64, 512, 2_000)),
    "default": Scale(num_users=1_500, history_days=20, num_days=3, max_events=15_000, l_max=DEFAULT_L_MAX,
                     train_steps=300, batch_size=32, length_mean=500.0,
                     eval_lengths=(512, 2_000, DEFAULT_L_MAX)),
    "large": Scale(num_users=2_000_000, history_days=60, num_days=7, max_events=20_000, l_max=DEFAULT_L_MAX,
                   train_steps=20_000, batch_size=256, length_mean=2_000.0,
                   eval_lengths=(512, 2_000, 5_000, DEFAULT_L_MAX),
                   num_items=1_000_000, num_topics=20, interest_logit=2.0,
                   models=("stca", "mean_pool", "din"),
                   model_config=tuple(GPU_MODEL.items())),
}
START_DATE = "2026-01-01"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Scale]:
    """The command line and the scale it selects, with --models / --train-steps applied."""
    p = argparse.ArgumentParser(
        prog="demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--warehouse", default=DEFAULT_WAREHOUSE, help="warehouse root (default: %(default)s)")
    p.add_argument(
        "--scale", default="default", choices=sorted(SCALES), help="data size (default: %(default)s)"
    )
    p.add_argument("--reports", default="reports", help="folder for the run's report (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated logs (default: %(default)s)")
    p.add_argument(
        "--master", default=None,
        help="Spark master to run the jobs on, e.g. spark://127.0.0.1:7077 (`make demo-cluster` starts one); "
        "default: local[2] in this process",
    )  # fmt: skip
    p.add_argument(
        "--models", default=None,
        help="comma-separated models to train and chart "
        f"(default: the scale's; from {', '.join(sorted(MODELS))})",
    )  # fmt: skip
    p.add_argument(
        "--train-steps", type=int, default=None, help="optimizer steps per model (default: the scale's)"
    )
    args = p.parse_args(argv)
    scale = SCALES[args.scale]
    if args.models:
        models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        unknown = sorted(set(models) - set(MODELS))
        if unknown or not models:
            p.error(f"--models: unknown {unknown or 'none given'}; choose from {sorted(MODELS)}")
        scale = replace(scale, models=models)
    if args.train_steps is not None:
        scale = replace(scale, train_steps=args.train_steps)
    return args, scale


def main(argv: list[str] | None = None) -> dict[str, object]:
    args, scale = parse_args(argv)
    configure_logging()
    run = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")  # names the report only, never data
    start = time.monotonic()
    fresh_warehouse(args.warehouse)
    start_day = dt.date.fromisoformat(START_DATE)
    days = [(start_day + dt.timedelta(days=i)).isoformat() for i in range(scale.num_days)]
    stages: dict[str, object] = {}
    steps = tqdm(total=2 + 4 * len(days) + 3 + len(scale.models), desc="demo", unit="stage")

    def stage(name: str, result: object) -> None:
        stages[name] = result
        steps.update(1)
        steps.set_postfix_str(name)

    build_tables(args.warehouse, scale, args.seed, days, stage, args.master)
    storage = storage_comparison(args.warehouse, days[-1])
    stage("storage", storage)
    table = REQUEST_SAMPLES.location(args.warehouse)
    loader = loader_throughput(table, scale)
    stage("loader", loader)
    out = Path(args.reports) / run
    training: dict[str, object] = {}
    for model in scale.models:
        result = train(TrainConfig(
            table=table, out=str(out / "runs" / model), model=model, train_to=days[-2], eval_date=days[-1],
            steps=scale.train_steps, batch_size=scale.batch_size, warmup=max(1, scale.train_steps // 10),
            length_min=min(64, scale.l_max // 4), length_max=scale.l_max, length_mean=scale.length_mean,
            eval_lengths=scale.eval_lengths, checkpoint_every=10**9,
            model_config=STCAConfig.from_dict(dict(scale.model_config)),
        ))  # fmt: skip
        training[model] = result
        auc_finish = {n: round(m["finish"]["auc"], 4)
                      for n, m in result["eval"].items() if "auc" in m["finish"]}
        stage(f"train {model}", {"seconds": result["train"]["seconds"], "version": result["table_version"],
                                 "eval_auc_finish": auc_finish})  # fmt: skip
    steps.close()
    # Paired user-bootstrap differences of each other model against the first (STCA by default).
    first = scale.models[0]
    comparisons = {
        f"{first} vs {m}": compare_runs(out / "runs" / first, out / "runs" / m,
                                           STCAConfig.from_dict(dict(scale.model_config)).tasks)
        for m in scale.models[1:]
    }

    seconds = round(time.monotonic() - start, 1)
    quality = {d: gate_result(stages[f"validate {d}"], out) for d in days}
    samples = request_stats(table)
    qc = quarantine_counts(args.warehouse)
    summary = {
        "run": run, "scale_name": args.scale, "seconds": seconds, "stages": stages,
        "counts": {**samples.pop("counts"), "quarantined": sum(n for by in qc.values() for n in by.values())},
        "quarantine_by_reason": qc, "hist_len": samples, "quality": quality, "storage": storage,
        "loader": loader, "training": training, "comparisons": comparisons,
        "config": {"scale": asdict(scale), "warehouse": args.warehouse, "seed": args.seed, "days": days,
                   "master": args.master or SparkSettings().master},
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str, allow_nan=False))
    index = render(json.loads(json.dumps(summary, default=str)), out)
    print_report(stages, index, seconds)
    return summary


def build_tables(
    warehouse: str,
    scale: Scale,
    seed: int,
    days: list[str],
    stage: Callable[[str, object], None],
    master: str | None = None,
) -> None:
    """The daily pipeline over the demo's days, one stage per job run: generate the logs, bootstrap
    the state, then per day build, validate, publish and extend the state; last, the flat layout.
    Each job's summary (with its seconds) goes to `stage` under the name the report shows. On a
    cluster `master` the driver only plans (the executors hold the data): it needs less memory."""
    spark = get_spark(SparkSettings(master=master, driver_memory="2g") if master else None)

    def job(module: ModuleType, args: object, label: str = "") -> None:
        name = module.__name__.rsplit(".", 1)[-1]
        stage(f"{name} {label}".strip(), run_job(name, module.run, args, spark))

    logs = SyntheticConfig(
        seed=seed, start_date=START_DATE, num_days=scale.num_days, history_days=scale.history_days,
        num_users=scale.num_users, max_events=scale.max_events, num_items=scale.num_items,
        num_topics=scale.num_topics, interest_logit=scale.interest_logit, affinity_logit=scale.affinity_logit,
        bad_row_rate=0.002,
    )  # fmt: skip
    wh, l_max = warehouse, scale.l_max
    job(generate_logs, generate_logs.Args(warehouse=wh, config=logs))
    bootstrap = previous_day(days[0])
    job(build_user_history, build_user_history.Args(warehouse=wh, date=bootstrap, state_len=l_max), bootstrap)
    for day in days:
        job(build_request_samples, build_request_samples.Args(warehouse=wh, date=day, l_max=l_max), day)
        job(validate, validate.Args(warehouse=wh, date=day, thresholds=GateThresholds(l_max=l_max)), day)
        job(publish, publish.Args(warehouse=wh, date=day), day)
        job(build_user_history, build_user_history.Args(warehouse=wh, date=day, state_len=l_max), day)
    job(build_impression_samples, build_impression_samples.Args(warehouse=wh, date=days[-1]), days[-1])


DEMO_MARKER = "_demo_warehouse"  # written into a warehouse the demo created, so a rerun may replace it


def fresh_warehouse(warehouse: str) -> None:
    """An empty warehouse for this run. The demo replays fixed dates and bootstraps the history
    state, which refuses to go back in time (jobs/history_state.py), so a second `make demo` on
    the same folder would fail: a folder the demo created (it holds DEMO_MARKER) is replaced;
    any other non-empty one is refused rather than deleted. Remote warehouses (s3a://...) are
    left to their owner: they must be empty."""
    if "://" in warehouse:
        return
    root = Path(warehouse)
    if root.exists() and any(root.iterdir()):
        if not (root / DEMO_MARKER).exists():
            raise SystemExit(
                f"demo: {root} is not empty and was not created by the demo; pass --warehouse with a new "
                "or empty folder (the demo rewrites fixed dates and bootstraps the history state there)"
            )
        log.info("demo: replacing the previous demo warehouse %s", root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("created by demo/app.py; the next demo run replaces this folder\n")


def gate_result(validated: object, out: Path) -> dict[str, object]:
    """The gate's verdict for the report: expectation counts and a link relative to the report."""
    v = validated if isinstance(validated, dict) else {}
    counts = [tuple(int(x) for x in str(s).split("/")) for s in v.get("suites", {}).values()]
    docs = v.get("data_docs")
    return {"success": bool(v.get("success")), "expectations": sum(b for _, b in counts),
            "failed": sum(b - a for a, b in counts),
            "data_docs": os.path.relpath(str(docs), out.resolve()) if docs else None}


def request_stats(table: str) -> dict[str, Any]:
    """Requests, targets and the hist_len distribution of the published table (log-spaced bins)."""
    snap = resolve_snapshot(table)
    cols = pa.concat_tables(read_parquet(f, columns=["hist_len", "num_targets"]) for f in snap.files)
    hist = np.asarray(cols.column("hist_len"), dtype=np.int64)
    edges = np.unique(np.geomspace(1, max(2, int(hist.max(initial=1)) + 1), 30).astype(np.int64))
    counts, _ = np.histogram(np.maximum(hist, 1), bins=edges)
    pct = {f"p{q}": int(np.percentile(hist, q)) for q in (10, 50, 90, 99)} if len(hist) else {}
    return {
        "counts": {"requests": len(hist), "targets": int(np.asarray(cols.column("num_targets")).sum())},
        "edges": edges.tolist(),
        "counts_per_bin": counts.tolist(),
        "percentiles": {**pct, "max": int(hist.max(initial=0))},
        "version": snap.version,
    }


def quarantine_counts(warehouse: str) -> dict[str, dict[str, int]]:
    """Quarantined rows by source table and reason (delta-rs: no Spark needed)."""
    snap = resolve_snapshot(QUARANTINE.location(warehouse))
    out: dict[str, dict[str, int]] = {}
    for f in snap.data_files:
        reasons = read_parquet(f.path, columns=["reason"]).column("reason").to_pylist()
        by = out.setdefault(str(f.partition.get("source_table")), {})
        for r in reasons:
            by[str(r)] = by.get(str(r), 0) + 1
    return out


def loader_throughput(table: str, scale: Scale) -> dict[str, dict[str, float]]:
    """One pass of the loader over the published table, evaluation and training modes."""
    out = {}
    sampling = LengthSampling(
        l_min=min(64, scale.l_max // 4), l_max=scale.l_max, mean=min(scale.length_mean, scale.l_max / 2)
    )
    for mode, cfg in (
        ("evaluation (full history)", LoaderConfig(batch_size=64, shuffle=False)),
        ("training (sampled lengths)", LoaderConfig(batch_size=64, seed=1, length_sampling=sampling)),
    ):
        t0 = time.perf_counter()
        requests = tokens = 0
        for batch in RequestLoader(table, cfg):
            requests, tokens = requests + batch.size, tokens + batch.num_history_tokens
        seconds = time.perf_counter() - t0
        out[mode] = {
            "requests_per_s": round(requests / seconds, 1),
            "tokens_per_s": round(tokens / seconds),
            "requests": requests,
        }
    return out


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
    "rows", "actions_read", "quarantined", "requests", "targets", "max_hist_len", "impressions", "saving",
    "mean_targets", "success", "suites", "seconds",
)  # fmt: skip


def print_report(stages: dict[str, object], path: Path, seconds: float) -> None:
    print(f"\ndemo finished in {seconds:.0f}s; report: {path} (open it in a browser)")
    for name, result in stages.items():
        if isinstance(result, dict):
            shown = {k: result[k] for k in REPORT_KEYS if k in result}
            print(f"  {name:<34} {json.dumps(shown)}")


if __name__ == "__main__":
    main()
