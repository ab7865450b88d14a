"""Does a model read far back? Train on generated logs with the planted long-range signal and
compare AUC at a short and at the full inference length, STCA vs baselines.

    python -m benchmarks.quality --quick   # 300 users, 60 items, 4 request days -> results/quality-quick.json
    python -m benchmarks.quality --steps 3000 --models stca,mean_pool,din

The data (synthetic/logs.py): old events lean to each user's two interest topics, recent
ones do not, and interest-topic targets finish far more often; with --affinity-logit (2.0 here)
each user also has a hidden taste per author that shows only in how they finished that author's
old videos and in the targets. Two oracles bound what reading further back can gain, at each
length: the AUC of "share of history events from the target's topic" and of "finish rate of the
target author's events".

`--quick` (2 cores, lr 1e-3, 800 steps), finish AUC at 32 / 512 / 4,000: STCA 0.665 / 0.688 /
0.699, mean pooling 0.648 / 0.692 / 0.705; STCA leads at 32 and ties at 512 and 4,000. Training
seed 1: STCA 0.671 / 0.694 / 0.701. With the paper's history transform (history_residual=False):
0.682 / 0.706 / 0.714 (seed 0) and 0.669 / 0.691 / 0.699 (seed 1). At the old lr 3e-3 (600 steps)
STCA had 0.623 / 0.639 / 0.650 and mean pooling 0.640 / 0.685 / 0.697.
Twice as long (`--quick --steps 1600`; run through this module's train_config with one torch
thread): STCA 0.683 / 0.717 / 0.728, mean pooling 0.656 / 0.700 / 0.718: STCA ahead at every
length, and it gains with length.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import RESULTS, write_result
from jobs import build_request_samples, build_user_history, generate_logs
from jobs.cli import previous_day
from jobs.spark_session import get_spark
from loader import resolve_snapshot
from schemas import REQUEST_SAMPLES
from schemas.fields import ACTION_BITS
from synthetic.logs import SyntheticConfig
from trainer.config import STCAConfig
from trainer.metrics import auc, bootstrap_intervals
from trainer.train import TrainConfig, train

# user_buckets=1: no user-id embedding. This benchmark asks what the history is worth; with one,
# STCA memorised each user's interests from the training days (the same users come back on the
# evaluation day) and its AUC stayed flat from 32 to 4,000 events (0.671 / 0.671 / 0.671 at
# 32 / 512 / 4,000 vs 0.691 / 0.719 / 0.727 without).
MODEL = {"d": 32, "heads": 2, "layers": 2, "id_dim": 32, "head_hidden": 64,
         "item_buckets": 512, "author_buckets": 64, "user_buckets": 1}


def request_dates(days: int) -> list[str]:
    return [str(dt.date(2026, 1, 1) + dt.timedelta(days=k)) for k in range(days)]


def build(wh: str, users: int, items: int, topics: int, days: int, l_max: int, *, history_days: int = 8,
          affinity_logit: float = 0.0, interest_logit: float | None = None) -> tuple[str, list[str]]:
    """Generated logs -> request_samples for `days` request days; returns the table and the days.
    interest_logit None keeps the generator's default topic effect."""
    dates = request_dates(days)
    logs = SyntheticConfig(
        seed=1, start_date=dates[0], num_days=days, history_days=history_days, num_users=users,
        num_items=items, num_topics=topics, min_events=100, max_events=l_max, affinity_logit=affinity_logit,
    )  # fmt: skip
    if interest_logit is not None:
        logs = replace(logs, interest_logit=interest_logit)
    spark = get_spark()
    generate_logs.run(spark, generate_logs.Args(warehouse=wh, config=logs))
    bootstrap = build_user_history.Args(warehouse=wh, date=previous_day(dates[0]), state_len=l_max)
    build_user_history.run(spark, bootstrap)
    for k, day in enumerate(dates):
        samples = build_request_samples.Args(warehouse=wh, date=day, l_max=l_max, output=REQUEST_SAMPLES)
        build_request_samples.run(spark, samples)
        if k < len(dates) - 1:  # the last day's state is not read
            build_user_history.run(spark, build_user_history.Args(warehouse=wh, date=day, state_len=l_max))
    return REQUEST_SAMPLES.location(wh), dates


def train_config(
    table: str,
    out: str,
    model: str,
    dates: list[str],
    *,
    steps: int,
    lr: float = 1e-3,
    length_mean: float = 500.0,
    l_max: int,
    lengths: tuple[int, ...],
    seed: int = 0,
) -> TrainConfig:
    """Train on all days but the last with Beta-sampled lengths (mean `length_mean`), evaluate
    the last day's finish AUC at each of `lengths`."""
    return TrainConfig(
        table=table,
        out=out,
        model=model,
        train_to=dates[-2],
        eval_date=dates[-1],
        steps=steps,
        batch_size=32,
        lr=lr,
        warmup=10,
        length_min=16,
        length_max=l_max,
        length_mean=length_mean,
        eval_lengths=lengths,
        eval_batch_size=128,
        checkpoint_every=10**9,
        device="cpu",
        model_config=STCAConfig.from_dict(MODEL),
        seed=seed,
    )


def oracles(table: str, day: str, lengths: list[int], num_topics: int) -> dict[str, dict[str, Any]]:
    """Finish AUC of two hand-made features over the last n events, one per planted signal:
    the share of events from the target's topic (what a mean can read), and the finish rate of
    the events by the target's author (creator affinity: what target attention can read)."""
    rows = pa.concat_tables(
        pq.read_table(f) for f in resolve_snapshot(table, date_from=day, date_to=day).files
    ).to_pylist()
    finish_bit = ACTION_BITS["finish"]
    out: dict[str, dict[str, Any]] = {"topic_share": {}, "author_finish_rate": {},
                                      "topic_share_ci": {}, "author_finish_rate_ci": {}}  # fmt: skip
    for n in lengths:
        share, rate, labels, users = [], [], [], []
        for r in rows:
            items = np.asarray(r["hist_item_id"][-n:], dtype=np.int64)
            authors = np.asarray(r["hist_author_id"][-n:], dtype=np.int64)
            finished = (np.asarray(r["hist_action"][-n:], dtype=np.int64) & finish_bit) > 0
            for item, author, label in zip(
                r["tgt_item_id"], r["tgt_author_id"], r["label_finish"], strict=True
            ):
                same = authors == author
                share.append(float((items % num_topics == item % num_topics).mean()) if len(items) else 0.0)
                rate.append(float(finished[same].mean()) if same.any() else 0.5)
                labels.append(label)
                users.append(r["user_id"])
        for name, score in (("topic_share", share), ("author_finish_rate", rate)):
            out[name][str(n)] = round(auc(np.array(score), np.array(labels)), 4)
            ci = bootstrap_intervals(np.array(score), np.array(labels), np.array(users))["auc_ci"]
            out[f"{name}_ci"][str(n)] = [round(v, 4) for v in ci] if ci else None
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(
        prog="benchmarks.quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="write results/quality-quick.json instead of quality.json "
        "(the defaults already are the quick sizes)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="train on the table a previous run built in --workdir (same data flags)",
    )
    p.add_argument("--workdir", default=".cache/bench-quality")
    p.add_argument("--users", type=int, default=300)
    p.add_argument(
        "--items", type=int, default=60, help="few items: each is seen often enough to learn its topic"
    )
    p.add_argument(
        "--topics", type=int, default=6, help="item topics (topic = item %% topics); users have two"
    )
    p.add_argument(
        "--days", type=int, default=4, help="request days: all but the last train, the last evaluates"
    )
    p.add_argument("--l-max", type=int, default=4_000)
    p.add_argument("--affinity-logit", type=float, default=2.0,
                   help="creator-affinity effect (synthetic/logs.py): how a user reacted to an author's old "
                        "videos predicts that author's targets, which a mean of event tokens cannot read")
    p.add_argument(
        "--interest-logit",
        type=float,
        default=None,
        help="topic effect on the finish logit (default: the generator's); "
        "0 leaves only the creator affinity",
    )
    p.add_argument("--short", type=int, default=32)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument(
        "--lr", type=float, default=1e-3, help="3e-3 kept STCA near chance (benchmarks/learning_probe.py)"
    )
    p.add_argument("--length-mean", type=float, default=500.0)
    p.add_argument("--models", default="stca,mean_pool")
    p.add_argument(
        "--seed", type=int, default=0, help="training seed (model init, batch order, sampled lengths)"
    )
    args = p.parse_args(argv)
    warehouse = str(Path(args.workdir) / "warehouse")
    t0 = time.perf_counter()
    if args.reuse:
        table, dates = REQUEST_SAMPLES.location(warehouse), request_dates(args.days)
    else:
        shutil.rmtree(args.workdir, ignore_errors=True)
        table, dates = build(warehouse, args.users, args.items, args.topics, args.days, args.l_max,
                             affinity_logit=args.affinity_logit, interest_logit=args.interest_logit)
    lengths = sorted({args.short, 512, args.l_max})
    results: dict[str, Any] = {"build_seconds": round(time.perf_counter() - t0, 1),
                               "oracle_auc": oracles(table, dates[-1], lengths, args.topics)}
    for model in args.models.split(","):
        cfg = train_config(
            table,
            str(Path(args.workdir) / "runs" / model),
            model,
            dates,
            steps=args.steps,
            lr=args.lr,
            length_mean=args.length_mean,
            l_max=args.l_max,
            lengths=tuple(lengths),
            seed=args.seed,
        )
        run = train(cfg)
        finish = {n: m["finish"] for n, m in run["eval"].items()}
        results[model] = {"finish_auc": {n: round(f["auc"], 4) for n, f in finish.items() if "auc" in f},
                          "finish_auc_ci": {n: [round(v, 4) for v in f["auc_ci"]]
                                            for n, f in finish.items() if f.get("auc_ci")},
                          "warnings": run["warnings"],
                          "train_seconds": run["train"]["seconds"]}  # fmt: skip
        print(model, results[model], flush=True)
    out = RESULTS / ("quality-quick.json" if args.quick else "quality.json")
    path = write_result("quality", {"args": vars(args), "results": results}, out)
    print(results)
    return path


if __name__ == "__main__":
    main()
