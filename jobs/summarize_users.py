"""Refreshes `user_summaries` for one day: every user's history as of the end of D, summarized by
a frozen VISTA model into k quantized tokens (DESIGN.md §2, §4 `summarize_users`).

Reads the `user_history` state version that completed day D (time travel; nothing else), runs
the summarizer of a `trainer.train --model vista` checkpoint over each user's most recent
`--l-max` events with ages measured from as_of_ts = the end of D (ms), quantizes (int8 per token
with an fp32 scale, or fp16), and replaces the (date D, model_version) rows of `user_summaries` in
one Delta commit whose userMetadata records date, as_of_ts, model_version and the state version.
A rerun gives the same rows; the refresh cadence is one run (one commit) per day.

Why mapInArrow on the executors rather than collecting users to the driver: the state holds one
row per user with up to 10k events each (hundreds of KB), so the work and the data scale with the
user count; each Spark task loads the checkpoint once per Python worker and streams its
partition through the model in Arrow batches of `--batch-size` users, so a cluster adds
throughput by adding executors and the driver never holds more than the plan. Each task pins
torch to `--torch-threads` threads so tasks do not oversubscribe the executor's cores.

    spark-submit jobs/summarize_users.py --warehouse warehouse --date 2026-01-02 \\
        --checkpoint runs/vista/checkpoint.pt --model-version vista-20260102
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import functions as F

from jobs.cli import configure_logging, job_parser, timed
from jobs.delta_io import latest_version, overwrite_where
from jobs.history_state import StateOrderError, read_state, state_versions, version_as_of
from jobs.spark_session import get_spark
from schemas import USER_HISTORY, USER_SUMMARIES
from schemas.fields import HISTORY_COLUMNS, TASKS
from schemas.user_summaries import QUANTIZATION_DTYPES

log = logging.getLogger("summarize_users")

DAY_MS = 86_400_000
DEFAULT_L_MAX = 10_000


@dataclass(frozen=True)
class Args:
    warehouse: str
    date: str
    checkpoint: str
    model_version: str
    l_max: int = DEFAULT_L_MAX
    quantization: str = "int8"
    batch_size: int = 64  # users per torch forward
    torch_threads: int = 1  # per Spark task
    partitions: int | None = None  # repartition the state into this many tasks (default: as read)


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("summarize_users", __doc__)
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt of a `trainer.train --model vista` run")
    p.add_argument("--model-version", required=True, help="name recorded with every summary (rankers read only theirs)")
    p.add_argument("--l-max", type=int, default=DEFAULT_L_MAX, help="most recent events summarized per user (default: %(default)s)")
    p.add_argument("--quantization", choices=sorted(QUANTIZATION_DTYPES), default="int8",
                   help="storage type of the cached summaries, with a per-vector scale (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="users per forward pass (default: %(default)s)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads per Spark task (default: %(default)s)")
    p.add_argument("--partitions", type=int, default=None, help="repartition the state into this many tasks")
    ns = p.parse_args(argv)
    for name in ("l_max", "batch_size", "torch_threads"):
        if getattr(ns, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(ns, name)}")
    return Args(ns.warehouse, ns.date, ns.checkpoint, ns.model_version, ns.l_max, ns.quantization, ns.batch_size,
                ns.torch_threads, ns.partitions)


def end_of_day_ms(date: str) -> int:
    """The first ms after UTC day `date`: a summary as of it covers every event of the day."""
    day = dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC)
    return int(day.timestamp() * 1000) + DAY_MS


# -- executor side: Arrow batches of user_history rows -> Arrow batches of user_summaries rows ------
_MODEL_CACHE: dict[tuple[str, float], Any] = {}


def load_frozen(checkpoint: str) -> Any:
    """The VistaRanker of a checkpoint in eval mode, cached per Python worker (path, mtime)."""
    from trainer.checkpoint import load_checkpoint
    from trainer.registry import build_model
    from trainer.vista import VistaRanker

    key = (checkpoint, os.path.getmtime(checkpoint))
    if key not in _MODEL_CACHE:
        meta = load_checkpoint(checkpoint)
        if meta.model_name != "vista":
            raise ValueError(f"{checkpoint} holds a {meta.model_name!r} model; summarize_users needs a 'vista' checkpoint")
        model = build_model("vista", meta.config)
        load_checkpoint(checkpoint, model=model)
        assert isinstance(model, VistaRanker)
        model.eval().requires_grad_(False)
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = model
    return _MODEL_CACHE[key]


def padded_suffix(column: pa.ListArray, keep: np.ndarray) -> np.ndarray:
    """The last keep[i] elements of each list, left-aligned and zero-padded: (rows, max(keep))."""
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False)
    width = int(keep.max(initial=0))
    if width == 0 or len(values) == 0:
        return np.zeros((len(keep), width), values.dtype)
    pos = np.arange(width)[None, :]
    idx = (offsets[1:] - keep)[:, None] + pos  # (rows, width)
    return np.where(pos < keep[:, None], values[np.clip(idx, 0, len(values) - 1)], 0).astype(values.dtype)


def summarize_record_batch(batch: pa.RecordBatch, args: Args, as_of_ts: int) -> pa.RecordBatch:
    """user_history rows -> user_summaries rows (the frozen model's summaries, quantized)."""
    import torch

    from loader.batch import RequestBatch
    from trainer.quantize import quantize, to_bytes

    model = load_frozen(args.checkpoint)
    n = batch.num_rows
    keep = np.minimum(batch.column("hist_len").to_numpy(zero_copy_only=False).astype(np.int64), args.l_max)
    hist = {c.name: torch.from_numpy(padded_suffix(batch.column(c.name), keep)) for c in HISTORY_COLUMNS}
    empty_targets = torch.zeros((n, 0), dtype=torch.int64)
    requests = RequestBatch(
        request_id=[""] * n,
        user_id=torch.from_numpy(batch.column("user_id").to_numpy().astype(np.int64)),
        request_ts=torch.full((n,), as_of_ts, dtype=torch.int64),  # ages from the refresh time
        hist_len=torch.from_numpy(keep),
        num_targets=torch.zeros(n, dtype=torch.int64),
        tgt_item_id=empty_targets, tgt_author_id=empty_targets,
        tgt_position=empty_targets.int(), tgt_duration_ms=empty_targets.int(),
        labels=torch.zeros((n, 0, len(TASKS))),
        **hist,
    )
    q, scale = quantize(model.summarize(requests), args.quantization)  # (n, k, d), (n, k)
    k, d = q.shape[1], q.shape[2]
    columns = {
        "user_id": pa.array(requests.user_id.numpy(), pa.int64()),
        "as_of_ts": pa.array(np.full(n, as_of_ts, np.int64)),
        "model_version": pa.array([args.model_version] * n, pa.string()),
        "quantization": pa.array([args.quantization] * n, pa.string()),
        "num_tokens": pa.array(np.full(n, k, np.int32)),
        "dim": pa.array(np.full(n, d, np.int32)),
        "summary": pa.array(to_bytes(q), pa.binary()),
        "scale": pa.array(list(scale.numpy()), pa.list_(pa.float32())),
        "num_events": pa.array(keep.astype(np.int32)),
        "date": pa.array([args.date] * n, pa.string()),
    }
    return pa.RecordBatch.from_arrays([columns[c] for c in USER_SUMMARIES.column_names], names=USER_SUMMARIES.column_names)


def summarize_partition(batches: Iterable[pa.RecordBatch], args: Args, as_of_ts: int) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: re-chunks a partition into forward passes of args.batch_size users."""
    import torch

    torch.set_num_threads(args.torch_threads)
    for batch in batches:
        for start in range(0, batch.num_rows, args.batch_size):
            yield summarize_record_batch(batch.slice(start, args.batch_size), args, as_of_ts)


# -- driver ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, object]:
    configure_logging()
    args = parse_args(argv)
    if not os.path.exists(args.checkpoint):
        raise FileNotFoundError(f"--checkpoint {args.checkpoint} does not exist (train one with trainer.train --model vista)")
    spark = get_spark()
    state_path = USER_HISTORY.location(args.warehouse)
    out_path = USER_SUMMARIES.location(args.warehouse)
    as_of_ts = end_of_day_ms(args.date)
    with timed() as t:
        load_frozen(args.checkpoint)  # fail on the driver, before any task, if the checkpoint is wrong
        state_version = version_as_of(spark, state_path, args.date)
        if state_version is None:
            have = [v.as_of_date for v in state_versions(spark, state_path)]
            raise StateOrderError(
                f"no user_history state as of {args.date} in {state_path} (states: {have[-5:]}); "
                f"run build_user_history --date {args.date} first"
            )
        state = read_state(spark, state_path, state_version).select("user_id", "hist_len", *[c.name for c in HISTORY_COLUMNS])
        if args.partitions:
            state = state.repartition(args.partitions, "user_id")
        # By reference from the importable module (not __main__ under spark-submit), so executors
        # import it and its per-worker model cache instead of unpickling a copy per task.
        from jobs.summarize_users import summarize_partition as run_partition

        summaries = state.mapInArrow(lambda it: run_partition(it, args, as_of_ts), USER_SUMMARIES.spark_schema())
        predicate = f"date = '{args.date}' AND model_version = '{args.model_version}'"
        meta = json.dumps({"date": args.date, "as_of_ts": as_of_ts, "model_version": args.model_version,
                           "state_version": state_version.version, "l_max": args.l_max,
                           "quantization": args.quantization, "checkpoint": args.checkpoint}, sort_keys=True)
        overwrite_where(summaries, USER_SUMMARIES, out_path, predicate, user_metadata=meta)
        written = (
            spark.read.format("delta").load(out_path).where(predicate)
            .agg(F.count("*").alias("users"), F.sum("num_events").alias("events"))
            .first()
        )
    if written is None:
        raise RuntimeError(f"user_summaries at {out_path}: aggregate over {predicate} returned nothing")
    summary = {
        "date": args.date,
        "as_of_ts": as_of_ts,
        "model_version": args.model_version,
        "users": int(written["users"]),
        "events_summarized": int(written["events"] or 0),
        "state_version": state_version.version,
        "version": latest_version(spark, out_path),
        "seconds": round(t["seconds"], 1),
    }
    log.info("summarize_users: %s", json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
