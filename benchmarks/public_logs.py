"""Imports MovieLens 100k with jobs/import_public_logs and measures what the requests look like:
users, requests, targets per request, point-in-time history length per request (p50/p90/p99/max),
quarantine counts and import time. Writes benchmarks/results/public_logs-ml100k[-pagesN].json.

History lengths are computed from the imported tables with the rule of docs/design.md (events of
the same user with event_ts < request_ts, at most L_max); tests/test_public_logs.py checks that
build_request_samples gives the same lengths.

    python -m benchmarks.public_logs                    # request = burst (the default mapping)
    python -m benchmarks.public_logs --max-targets 20   # bursts cut into pages of <= 20 items

With --models it also compares rankers on a time split and writes
public_logs-ml100k[-pagesN]-quality.json: build_request_samples builds every day in one pass
(--to-date; no state before the first day), each model trains on the requests dated before
--cut and is evaluated on every request from --cut to the last day, keeping the most recent n
events for each n in --eval-lengths. Per task (finish: rating >= 4, like: 5, skip: <= 2): AUC
and GAUC (per-user AUC, weighted by the user's targets).

    python -m benchmarks.public_logs --models stca,mean_pool,din --workdir .cache/bench-public-logs
    python -m benchmarks.public_logs --models stca --reuse   # train again on the table built last time
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from benchmarks.common import hardware
from jobs import build_request_samples, import_public_logs
from jobs.cli import previous_day
from jobs.runner import run_job
from jobs.spark_session import get_spark
from pipelines.mind import MIND
from pipelines.public_logs import MOVIELENS, LogFormat
from schemas import IMPRESSIONS, REQUEST_SAMPLES, USER_ACTIONS
from schemas.constants import DEFAULT_L_MAX, MINUTE_MS, day_start_ms
from trainer.config import STCAConfig
from trainer.metrics import compare_runs
from trainer.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
ML100K = ROOT.parent / "shared" / "data" / "ml-100k"
MIND_SAMPLE = ROOT.parent / "shared" / "data" / "mind-small-sample"
RESULTS = ROOT / "benchmarks" / "results"
QUANTILES = (0.5, 0.9, 0.99)
# Small, as benchmarks/quality.py's: 1,682 movies get their own rows (few collisions), 19 genres
# are the authors. user_buckets=1: no user-id embedding, so what a model knows of a user comes
# from the history (and most evaluation users have no training requests anyway).
MODEL = {"d": 32, "heads": 2, "layers": 2, "id_dim": 32, "head_hidden": 64,
         "item_buckets": 4096, "author_buckets": 64, "user_buckets": 1}  # fmt: skip
TASKS = ("finish", "like", "skip")  # the labels the MovieLens mapping fills (comment, share, follow stay 0)


@dataclass(frozen=True)
class LogSource:
    """A real log the benchmarks import: its name in result files, the importer's --format, the
    log and item file names inside its folder, and the default first evaluation day (the cut)."""

    name: str
    fmt: LogFormat
    log_file: str
    items_file: str
    cut: str


ML100K_SOURCE = LogSource("ml-100k", MOVIELENS, "u.data", "u.item", "1998-03-01")
# MIND-small's window is 2019-11-09..14 (UTC days of its local times): four days train, two evaluate.
MIND_SOURCE = LogSource("mind", MIND, "behaviors.tsv", "news.tsv", "2019-11-13")


@dataclass(frozen=True)
class TimeSplit:
    """Requests dated <= train_to train; those dated eval_from..eval_to evaluate. A request's date
    is the UTC day of its request_ts, so the split is by time: every training request starts
    before 00:00 UTC of eval_from, every evaluation request at or after it."""

    train_to: str
    eval_from: str
    eval_to: str

    @classmethod
    def at(cls, cut: str, first: str, last: str) -> TimeSplit:
        """Train on first..cut-1, evaluate on cut..last; both sides must hold at least one day."""
        if not first < cut <= last:
            raise ValueError(
                f"--cut {cut} must be after the first day {first} and at most the last day {last}"
            )
        return cls(previous_day(cut), cut, last)


def _distribution(df: Any, column: str) -> dict[str, float]:
    row = df.agg(
        F.percentile(column, list(QUANTILES)).alias("q"),
        F.max(column).alias("max"),
        F.avg(column).alias("mean"),
    ).first()
    return {**{f"p{round(q * 100)}": float(v) for q, v in zip(QUANTILES, row["q"], strict=True)},
            "max": int(row["max"]), "mean": round(float(row["mean"]), 1)}  # fmt: skip


def _scalar(df: Any) -> int:
    row = df.first()
    return int(row[0] or 0) if row is not None else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks.public_logs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default=str(ML100K), help="the ml-100k folder (default: %(default)s)")
    p.add_argument("--session-gap-minutes", type=float, default=30.0)
    p.add_argument("--max-targets", type=int, default=0)
    p.add_argument("--l-max", type=int, default=DEFAULT_L_MAX)
    p.add_argument(
        "--models",
        default="",
        help="comma-separated trainer models to compare on a time split (default: none)",
    )
    p.add_argument(
        "--workdir",
        default=".cache/bench-public-logs",
        help="with --models: warehouse and runs (default: %(default)s)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="with --models: train on the table a previous run built in --workdir",
    )
    p.add_argument(
        "--cut", default="1998-03-01", help="first evaluation day; earlier days train (default: %(default)s)"
    )
    p.add_argument(
        "--eval-lengths",
        default=f"16,64,256,{DEFAULT_L_MAX}",
        help="inference history lengths (default: %(default)s)",
    )
    p.add_argument(
        "--steps", type=int, default=1_200, help="optimizer steps per model (default: %(default)s)"
    )
    # Small batches: a batch pads to its largest request (up to 737 targets) and longest history,
    # and DIN builds a (batch, targets, events, 64) tensor: 32 requests ran at ~24 s a step here.
    p.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="requests per batch, training and evaluation (default: %(default)s)",
    )
    # 1e-3: at 3e-3 Adam's steps on W_Q/W_K sharpen STCA's attention on noise and it stops reading
    # the history (benchmarks/learning_probe.py); the last run at 3e-3 gave the same AUC at 16 and 10k events.
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    p.add_argument(
        "--length-max", type=int, default=1024, help="longest sampled training length (ml-100k max: 684)"
    )
    p.add_argument(
        "--length-mean", type=float, default=256.0, help="mean sampled training length (default: %(default)s)"
    )
    return p.parse_args(argv)


def import_log(
    spark: SparkSession,
    wh: str,
    source: LogSource,
    folder: str | Path,
    session_gap_minutes: float = 30.0,
    max_targets: int = 0,
) -> dict[str, Any]:
    """The import job's summary for `source`'s files in `folder`, `seconds` included (run_job
    times it as spark-submit would). The session gap and page size apply to interaction logs only."""
    for name in (source.log_file, source.items_file):
        if not (Path(folder) / name).is_file():
            raise FileNotFoundError(f"{source.name}: no {name} in {Path(folder).resolve()}; pass its folder")
    job = import_public_logs.Args(
        fmt=source.fmt, inputs=(f"{folder}/{source.log_file}",), warehouse=wh,
        items=f"{folder}/{source.items_file}", session_gap_ms=round(session_gap_minutes * MINUTE_MS),
        max_targets=max_targets,
    )  # fmt: skip
    return run_job("import_public_logs", import_public_logs.run, job, spark)


def import_ml100k(spark: SparkSession, wh: str, args: argparse.Namespace) -> dict[str, Any]:
    return import_log(spark, wh, ML100K_SOURCE, args.data, args.session_gap_minutes, args.max_targets)


def build_samples(spark: SparkSession, wh: str, summary: dict[str, Any], l_max: int) -> str:
    """Builds request_samples for every day of an import in one --to-date pass (no state before its
    first day: every event is inside the imported range); returns the table's location."""
    first, last = summary["dates"]
    backfill = build_request_samples.Args(
        date=first, to_date=last, warehouse=wh, l_max=l_max, allow_no_state=True, output=REQUEST_SAMPLES,
    )  # fmt: skip
    build_request_samples.run(spark, backfill)
    return REQUEST_SAMPLES.location(wh)


def request_stats(
    spark: SparkSession, wh: str, summary: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """What the imported requests look like, from impressions and user_actions (docs/design.md rule)."""
    imps = spark.read.format("delta").load(IMPRESSIONS.location(wh))
    actions = spark.read.format("delta").load(USER_ACTIONS.location(wh)).select("user_id", "event_ts")
    requests = imps.groupBy("request_id", "user_id", "request_ts").agg(F.count("*").alias("num_targets"))
    before = (
        requests.join(actions, "user_id", "left")
        .groupBy("request_id")
        .agg(F.sum((F.col("event_ts") < F.col("request_ts")).cast("int")).alias("n"))
    )
    hist = before.select(F.least(F.coalesce("n", F.lit(0)), F.lit(args.l_max)).alias("hist_len")).persist()
    return {
        "dataset": args.dataset if "dataset" in args else ML100K_SOURCE.name,
        "session_gap_minutes": args.session_gap_minutes,
        "max_targets": args.max_targets,
        "l_max": args.l_max,
        "import": summary,
        "targets_per_request": _distribution(requests, "num_targets"),
        "hist_len": _distribution(hist, "hist_len"),
        "requests_with_empty_history": hist.where("hist_len = 0").count(),
        "targets_with_history": _scalar(
            requests.join(before, "request_id").where("n > 0").agg(F.sum("num_targets"))
        ),
        "hardware": hardware(),
    }


def split_counts(spark: SparkSession, table: str, split: TimeSplit) -> dict[str, dict[str, float]]:
    """Users, requests, targets and targets with a non-empty history on each side of the split;
    raises if a training request starts at or after the cut, or an evaluation one before it."""
    cut_ms = day_start_ms(split.eval_from)
    out: dict[str, dict[str, float]] = {}
    for side, lo, hi in (("train", "0000-00-00", split.train_to), ("eval", split.eval_from, split.eval_to)):
        row = (
            spark.read.format("delta").load(table).where(F.col("date").between(lo, hi))
            .agg(F.count("*").alias("requests"), F.sum("num_targets").alias("targets"),
                 F.countDistinct("user_id").alias("users"),
                 F.sum(F.when(F.col("hist_len") > 0, F.col("num_targets")).otherwise(0))
                 .alias("targets_with_history"),
                 F.percentile("hist_len", [0.5, 0.9]).alias("q"), F.max("hist_len").alias("hist_len_max"),
                 F.min("request_ts").alias("first_ts"), F.max("request_ts").alias("last_ts"))
            .first()
        )  # fmt: skip
        if row is None or not row["requests"]:
            raise ValueError(f"no {side} requests dated {lo}..{hi} in {table}")
        if (side == "train" and row["last_ts"] >= cut_ms) or (side == "eval" and row["first_ts"] < cut_ms):
            raise AssertionError(f"{side} requests dated {lo}..{hi} cross the cut {split.eval_from}: {row}")
        out[side] = {
            k: int(row[k] or 0)
            for k in ("users", "requests", "targets", "targets_with_history", "hist_len_max")
        }
        out[side].update(hist_len_p50=float(row["q"][0]), hist_len_p90=float(row["q"][1]))
    return out


def train_run(
    table: str,
    split: TimeSplit,
    out: str | Path,
    model: str,
    args: argparse.Namespace,
    length_mean: float | None,
    model_config: dict[str, int] = MODEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Trains `model` on the split's training days with this benchmark's settings (args.steps,
    batch_size, lr, length_max, eval_lengths) and evaluates it on its held-out days; length_mean
    None trains on full histories. Returns train()'s metrics (predictions saved in `out`)."""
    lengths = tuple(int(n) for n in args.eval_lengths.split(","))
    cfg = TrainConfig(table=table, out=str(out), model=model,
                      train_to=split.train_to, eval_date=split.eval_from, eval_to=split.eval_to,
                      steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=20, length_min=16,
                      length_max=args.length_max, length_mean=length_mean, eval_lengths=lengths,
                      eval_batch_size=args.batch_size, checkpoint_every=10**9, device="cpu",
                      model_config=STCAConfig.from_dict(model_config), seed=seed)  # fmt: skip
    return train(cfg)


def run_summary(run: dict[str, Any], tasks: tuple[str, ...] = TASKS) -> dict[str, Any]:
    """A run's AUC / GAUC per task and length, each with its 95% user-bootstrap interval under
    <metric>_ci (a metric the task lacks, e.g. without positives, is absent, never NaN), its
    warnings (the history-collapse alarm), training seconds and last loss."""
    out: dict[str, Any] = {
        task: {
            key: {n: _rounded(m[task][key]) for n, m in _by_length(run["eval"]) if key in m[task]}
            for metric in ("auc", "gauc") for key in (metric, f"{metric}_ci")
        }
        for task in tasks
    }  # fmt: skip
    out["warnings"] = run["warnings"]
    out["train_seconds"] = run["train"]["seconds"]
    out["loss_last_10"] = round(run["train"]["loss_last_10"], 4)
    return out


def _by_length(per_length: dict[str, Any]) -> list[tuple[str, Any]]:
    """(length, metrics) in increasing length (a metrics.json read back has its keys sorted as text)."""
    return sorted(per_length.items(), key=lambda kv: int(kv[0]))


def compare_models(table: str, split: TimeSplit, args: argparse.Namespace) -> dict[str, Any]:
    """Trains each of --models on the training days and evaluates it on the held-out days."""
    out: dict[str, Any] = {}
    for model in [m for m in args.models.split(",") if m]:
        run = train_run(table, split, Path(args.workdir) / "runs" / model, model, args, args.length_mean)
        out[model] = run_summary(run)
        print(model, json.dumps(out[model]), flush=True)
    # A win is a win only when the paired bootstrap interval of the difference excludes 0.
    runs = Path(args.workdir) / "runs"
    models = [m for m in args.models.split(",") if m]
    out["comparisons"] = {f"{models[0]} vs {m}": compare_runs(runs / models[0], runs / m,
                                                                  STCAConfig.from_dict(MODEL).tasks)
                          for m in models[1:]}  # fmt: skip
    return out


def _rounded(value: Any) -> Any:
    """A metric (float) or its interval ([lo, hi]) to 4 decimals."""
    return [round(v, 4) for v in value] if isinstance(value, list) else round(value, 4)


def _write(name: str, result: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    spark = get_spark()
    name = "public_logs-ml100k" + (f"-pages{args.max_targets}" if args.max_targets else "")
    if not args.models:
        with tempfile.TemporaryDirectory() as wh:
            result = request_stats(spark, wh, import_ml100k(spark, wh, args), args)
        _write(name, result)
        return result
    wh = str(Path(args.workdir) / "warehouse")
    built = Path(args.workdir) / "import.json"  # the import's summary, for --reuse
    t0 = time.perf_counter()
    if not args.reuse:
        shutil.rmtree(args.workdir, ignore_errors=True)
        summary = import_ml100k(spark, wh, args)
        _write(name, request_stats(spark, wh, summary, args))
        build_samples(spark, wh, summary, args.l_max)
        built.write_text(json.dumps(summary))
    build_seconds = None if args.reuse else round(time.perf_counter() - t0, 1)
    summary = json.loads(built.read_text())
    split = TimeSplit.at(args.cut, *summary["dates"])
    table = REQUEST_SAMPLES.location(wh)
    result = {
        "dataset": ML100K_SOURCE.name,
        "args": vars(args),
        "model_config": MODEL,
        "split": {
            "train_to": split.train_to,
            "eval_from": split.eval_from,
            "eval_to": split.eval_to,
            **split_counts(spark, table, split),
        },  # fmt: skip
        # import, request statistics, build_request_samples; None with --reuse
        "build_seconds": build_seconds,
        "results": compare_models(table, split, args),
        "hardware": hardware(),
    }
    _write(f"{name}-quality", result)
    return result


if __name__ == "__main__":
    main()
