"""User-day loader throughput: delivered request-history tokens/s, `UserDayLoader` (per-request
output, the same `RequestBatch`es) vs `RequestLoader` over the same requests, in one run.

    python -m benchmarks.user_day_loader                 # default scale -> results/user_day_loader.json
    python -m benchmarks.user_day_loader --quick         # small, for a smoke run
    python -m benchmarks.user_day_loader --tables W/user_day_samples W/request_samples   # built tables

The synthetic pair (synthetic/user_days.py) holds the same requests in both layouts: by default
1,500 users x 3 days (the demo's default scale), ~5 requests per user-day, histories of mean ~800
events up to 10k, in row groups of LOADER_ROWS_PER_FILE rows as the Spark jobs write them.
A request_samples row stores its whole history; a user-day row stores the day's
window once, so the user-day loader decodes about 1/k of the events and slices the requests'
histories out of the decoded window with numpy. Both loaders then collate the same padded
tensors, so the gain is bounded by the share of decoding in RequestLoader's epoch.

Cases, each timed over epochs of one loader after warm-up epochs (benchmarks/loader.py's `timed`:
best and median epoch, median CPU seconds):
(a) RequestLoader, evaluation (file order, full histories); (b) UserDayLoader, the same;
(c) RequestLoader, training (shuffled, Beta-sampled suffixes); (d) UserDayLoader, the same;
(e) UserDayLoader, grouped output (MRLB batches), training: the history tokens its requests read,
and the window tokens it actually delivers.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.common import RESULTS, write_result
from benchmarks.loader import timed
from jobs.delta_io import LOADER_ROWS_PER_FILE
from loader import (
    GroupedBatch,
    LengthSampling,
    LoaderConfig,
    RequestBatch,
    RequestLoader,
    UserDayLoader,
    UserDayLoaderConfig,
    resolve_snapshot,
)
from schemas.constants import DEFAULT_L_MAX
from synthetic.user_days import SyntheticUserDays, write_synthetic_user_days

DAYS3 = ("2026-01-01", "2026-01-02", "2026-01-03")
# Row groups as the Spark jobs write both tables: LOADER_ROWS_PER_FILE rows each (jobs/delta_io.py),
# so a user_day_samples row group holds ~5x the requests of a request_samples one, and ~5x the
# users (a request_samples row group holds ~100 users' requests, a user-day one 500 users' days).
ROWS = LOADER_ROWS_PER_FILE
SIZES = {
    "quick": SyntheticUserDays(
        num_users=300, dates=DAYS3[:2], mean_hist=800.0, rows_per_group=ROWS, request_rows_per_group=ROWS
    ),
    "default": SyntheticUserDays(
        num_users=1_500, dates=DAYS3, mean_hist=800.0, rows_per_group=ROWS, request_rows_per_group=ROWS
    ),
}


def one_epoch(
    loader: Iterable[RequestBatch | GroupedBatch], windows: list[int] | None = None
) -> tuple[int, int]:
    """(requests, history tokens) of one epoch; `windows` collects grouped batches' window tokens."""
    requests = tokens = 0
    for batch in loader:
        requests += batch.size
        tokens += batch.num_history_tokens
        if windows is not None and isinstance(batch, GroupedBatch):
            windows.append(batch.num_window_tokens)
    return requests, tokens


def _stored_events(path: str, column: str) -> int:
    """Events stored in a table: the sum of its length column (hist_len or window_len)."""
    return sum(int(pq.read_table(f, columns=[column]).column(column).to_numpy().sum())
               for f in resolve_snapshot(path).files)  # fmt: skip


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(
        prog="benchmarks.user_day_loader", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--quick", action="store_true", help="small synthetic tables (a smoke run)")
    p.add_argument(
        "--tables", nargs=2, metavar=("USER_DAY_SAMPLES", "REQUEST_SAMPLES"), default=None,
        help="existing tables holding the same requests, instead of the synthetic pair",
    )  # fmt: skip
    p.add_argument("--workdir", default=".cache/bench-user-day-loader", help="scratch folder (deleted first)")
    p.add_argument("--batch-size", type=int, default=64, help="requests per batch (a and b, c and d)")
    p.add_argument("--group-batch-size", type=int, default=16, help="user-days per grouped batch (e)")
    p.add_argument("--workers", type=int, default=2, help="petastorm reader threads")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per case, after 2 warm-up epochs")
    p.add_argument(
        "--train-mean", type=float, default=500.0,
        help="mean sampled history length in training (the demo's default scale uses 500)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--note", default="", help="written into the JSON as is: e.g. how busy the machine was")
    args = p.parse_args(argv)
    size = "quick" if args.quick else "default"
    if args.tables:
        user_days, requests = args.tables
    else:
        shutil.rmtree(args.workdir, ignore_errors=True)
        user_days, requests = (str(Path(args.workdir) / n) for n in ("user_day_samples", "request_samples"))
        t0 = time.perf_counter()
        write_synthetic_user_days(user_days, requests, SIZES[size])
        print(f"wrote {user_days} and {requests} ({time.perf_counter() - t0:.1f} s)")
    sampling = LengthSampling(l_max=DEFAULT_L_MAX, mean=args.train_mean)
    common: dict[str, Any] = {"batch_size": args.batch_size, "workers": args.workers}
    eval_cfg: dict[str, Any] = {**common, "shuffle": False}
    train_cfg: dict[str, Any] = {**common, "seed": 1, "length_sampling": sampling}
    t0 = time.perf_counter()
    ud_eval = UserDayLoader(user_days, UserDayLoaderConfig(**eval_cfg))
    startup_s = time.perf_counter() - t0
    loaders: dict[str, Any] = {
        "a_request_loader_eval": RequestLoader(requests, LoaderConfig(**eval_cfg)),
        "b_user_day_loader_eval": ud_eval,
        "c_request_loader_train": RequestLoader(requests, LoaderConfig(**train_cfg)),
        "d_user_day_loader_train": UserDayLoader(user_days, UserDayLoaderConfig(**train_cfg)),
    }
    results: dict[str, Any] = {}
    for name, loader in loaders.items():
        print(f"{name}: {args.repeats} epochs ...")
        results[name] = timed(args.repeats, functools.partial(one_epoch, loader))
    windows: list[int] = []
    group_cfg = UserDayLoaderConfig(**{**train_cfg, "batch_size": args.group_batch_size}, output="groups")
    grouped = UserDayLoader(user_days, group_cfg)
    print(f"e_user_day_loader_grouped_train: {args.repeats} epochs ...")
    results["e_user_day_loader_grouped_train"] = timed(args.repeats, lambda: one_epoch(grouped, windows))
    per_epoch = len(windows) // (args.repeats + 2)
    results["e_user_day_loader_grouped_train"]["window_tokens"] = sum(windows[:per_epoch])
    checks = {k: (v["requests"], v["history_tokens"]) for k, v in results.items() if k[0] in "ab"}
    if len(set(checks.values())) != 1:
        raise SystemExit(f"the two loaders delivered different requests or tokens: {checks}")

    def ratio(num: str, den: str, key: str) -> float:
        return round(results[num][key] / results[den][key], 3)

    ratios = {
        "eval_tokens_per_s": ratio("b_user_day_loader_eval", "a_request_loader_eval", "tokens_per_s"),
        "eval_median_seconds": ratio("a_request_loader_eval", "b_user_day_loader_eval", "median_seconds"),
        "train_tokens_per_s": ratio("d_user_day_loader_train", "c_request_loader_train", "tokens_per_s"),
        "train_median_seconds": ratio("c_request_loader_train", "d_user_day_loader_train", "median_seconds"),
    }
    stored = {"request_samples_events": _stored_events(requests, "hist_len"),
              "user_day_samples_events": _stored_events(user_days, "window_len")}  # fmt: skip
    payload = {
        "size": size if not args.tables else "tables",
        "tables": {"user_day_samples": user_days, "request_samples": requests},
        "requests": results["a_request_loader_eval"]["requests"],
        "user_days": ud_eval.snapshot.num_records,
        "stored_events": {
            **stored,
            "ratio": round(stored["user_day_samples_events"] / max(stored["request_samples_events"], 1), 3),
        },
        "batch_size": args.batch_size,
        "group_batch_size": args.group_batch_size,
        "train_mean": args.train_mean,
        "repeats": args.repeats,
        "workers": args.workers,
        "user_day_loader_startup_s": round(startup_s, 4),
        "results": results,
        "ratios": ratios,
        "targets": {"train_tokens_per_s": ">= 2.5", "eval_tokens_per_s": ">= 2.5"},
        **({"note": args.note} if args.note else {}),
    }
    default = "user_day_loader-quick.json" if args.quick and not args.tables else "user_day_loader.json"
    path = write_result("user_day_loader", payload, args.out or RESULTS / default)
    for k, v in results.items():
        print(f"{k:34s} {v['requests_per_s']:>10.1f} req/s {v['tokens_per_s']:>14,} tokens/s")
    print("ratios (user-day / request loader):", ratios)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
