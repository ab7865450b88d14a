"""Does a model read far back? Train on generated logs with the planted long-range signal and
compare AUC at a short and at the full inference length, STCA vs baselines.

    python -m benchmarks.quality --quick      # 300 users, 60 items, 4 request days -> results/quality-quick.json
    python -m benchmarks.quality --steps 3000 --models stca,mean_pool,din

The data (pipelines/synthetic.py): old events lean to each user's two interest topics, recent
ones do not, and interest-topic targets finish far more often. The script also reports an oracle:
the AUC of "share of history events from the target's topic" at each length, which bounds what a
model can gain from reading further back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import RESULTS, write_result
from jobs import build_request_samples, build_user_history, generate_logs
from loader import resolve_snapshot
from schemas import REQUEST_SAMPLES
from trainer.metrics import auc
from trainer.train import TrainConfig, train

# user_buckets=1: no user-id embedding. This benchmark asks what the history is worth; with one,
# STCA memorised each user's interests from the training days (the same users come back on the
# evaluation day) and its AUC stayed flat from 32 to 4,000 events (0.671 / 0.671 / 0.671 at
# 32 / 512 / 4,000 vs 0.691 / 0.719 / 0.727 without).
MODEL = {"d": 32, "heads": 2, "layers": 2, "id_dim": 32, "head_hidden": 64,
         "item_buckets": 512, "author_buckets": 64, "user_buckets": 1}


def request_dates(days: int) -> list[str]:
    return [str(dt.date(2026, 1, 1) + dt.timedelta(days=k)) for k in range(days)]


def build(wh: str, users: int, items: int, topics: int, days: int, l_max: int) -> tuple[str, list[str]]:
    """Generated logs -> request_samples for `days` request days; returns the table and the days."""
    dates = request_dates(days)
    generate_logs.main(["--warehouse", wh, "--start-date", dates[0], "--num-days", str(days), "--history-days", "8",
                        "--num-users", str(users), "--num-items", str(items), "--num-topics", str(topics),
                        "--min-events", "100", "--max-events", str(l_max), "--seed", "1"])
    build_user_history.main(["--warehouse", wh, "--date", "2025-12-31", "--state-len", str(l_max)])
    for day in dates:
        build_request_samples.main(["--warehouse", wh, "--date", day, "--l-max", str(l_max), "--output", "request_samples"])
        build_user_history.main(["--warehouse", wh, "--date", day, "--state-len", str(l_max)])
    return REQUEST_SAMPLES.location(wh), dates


def oracle(table: str, day: str, lengths: list[int], num_topics: int) -> dict[str, float]:
    rows = pa.concat_tables(pq.read_table(f) for f in resolve_snapshot(table, date_from=day, date_to=day).files).to_pylist()
    out = {}
    for n in lengths:
        feature, labels = [], []
        for r in rows:
            topics = np.asarray(r["hist_item_id"][-n:]) % num_topics
            for item, label in zip(r["tgt_item_id"], r["label_finish"], strict=True):
                feature.append(float((topics == item % num_topics).mean()) if len(topics) else 0.0)
                labels.append(label)
        out[str(n)] = round(auc(np.array(feature), np.array(labels)), 4)
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="benchmarks.quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reuse", action="store_true", help="train on the table a previous run built in --workdir (same data flags)")
    p.add_argument("--workdir", default=".cache/bench-quality")
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--items", type=int, default=60, help="few items: each is seen often enough to learn its topic")
    p.add_argument("--topics", type=int, default=6, help="item topics (topic = item %% topics); users have two")
    p.add_argument("--days", type=int, default=4, help="request days: all but the last train, the last evaluates")
    p.add_argument("--l-max", type=int, default=4_000)
    p.add_argument("--short", type=int, default=32)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--length-mean", type=float, default=500.0)
    p.add_argument("--models", default="stca,mean_pool")
    args = p.parse_args(argv)
    warehouse = str(Path(args.workdir) / "warehouse")
    t0 = time.perf_counter()
    if args.reuse:
        table, dates = REQUEST_SAMPLES.location(warehouse), request_dates(args.days)
    else:
        shutil.rmtree(args.workdir, ignore_errors=True)
        table, dates = build(warehouse, args.users, args.items, args.topics, args.days, args.l_max)
    lengths = sorted({args.short, 512, args.l_max})
    results: dict[str, Any] = {"build_seconds": round(time.perf_counter() - t0, 1),
                               "oracle_topic_share_auc": oracle(table, dates[-1], lengths, args.topics)}
    for model in args.models.split(","):
        cfg = TrainConfig(table=table, out=str(Path(args.workdir) / "runs" / model), model=model, train_to=dates[-2],
                          eval_date=dates[-1], steps=args.steps, batch_size=32, lr=args.lr, warmup=10, length_min=16,
                          length_max=args.l_max, length_mean=args.length_mean, eval_lengths=tuple(lengths),
                          eval_batch_size=128, checkpoint_every=10**9, device="cpu", model_config=MODEL)
        run = train(cfg)
        results[model] = {"finish_auc": {n: round(m["finish"]["auc"], 4) for n, m in run["eval"].items()},
                          "train_seconds": run["train"]["seconds"]}
        print(model, results[model], flush=True)
    out = RESULTS / ("quality-quick.json" if args.quick else "quality.json")
    path = write_result("quality", {"args": vars(args), "results": results}, out)
    print(results)
    return path


if __name__ == "__main__":
    main()
