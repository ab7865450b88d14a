"""Synthetic `request_samples` tables written without Spark (delta-rs), for loader tests,
benchmarks and smoke-testing training code on a laptop.

Rows follow the contract exactly (schemas/request_samples.py) with heavy-tailed history lengths
up to `l_max`. For realistic end-to-end data use the Spark pipeline (synthetic/logs.py via
jobs/generate_logs.py, then jobs/build_request_samples.py); this module only shapes tensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, WriterProperties, write_deltalake

from schemas.constants import DAY_MS, DEFAULT_L_MAX, MINUTE_MS, SECOND_MS
from schemas.fields import HISTORY_COLUMNS, LABEL_COLUMN_NAMES
from schemas.request_samples import REQUEST_SAMPLES, TARGET_COLUMNS


@dataclass(frozen=True)
class SyntheticSamples:
    num_requests: int = 1_000  # rows per date
    dates: tuple[str, ...] = ("2026-01-01",)
    l_max: int = DEFAULT_L_MAX  # longest history
    mean_hist: float = 2_000.0  # mean history length (lognormal, clipped to [1, l_max])
    max_targets: int = 16  # targets per request: 1 .. max_targets
    num_users: int = 200
    rows_per_group: int = 256  # Parquet row-group size (rows): the loader's unit of scheduling
    seed: int = 0


def _lists(lengths: np.ndarray, values: np.ndarray, arrow_type: pa.DataType) -> pa.ListArray:
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, arrow_type.value_type))


def synthetic_table(cfg: SyntheticSamples, date: str, date_index: int) -> pa.Table:
    rng = np.random.default_rng([cfg.seed, date_index])
    n = cfg.num_requests
    schema = REQUEST_SAMPLES.arrow_schema()
    sigma = 1.2
    mu = np.log(cfg.mean_hist) - sigma**2 / 2
    hist_len = np.clip(rng.lognormal(mu, sigma, n).astype(np.int64), 1, cfg.l_max)
    hist_len[rng.random(n) < 0.05] = cfg.l_max  # a tail of heavy users at the cap
    num_targets = rng.integers(1, cfg.max_targets + 1, n)
    user_id = np.sort(rng.integers(0, cfg.num_users, n))  # clustered by user, like the pipeline
    day0 = int(np.datetime64(date, "ms").astype(np.int64))
    request_ts = day0 + np.sort(rng.integers(0, DAY_MS, n))
    total_h, total_t = int(hist_len.sum()), int(num_targets.sum())
    columns: dict[str, pa.Array] = {
        "request_id": pa.array([f"{date}-{i:07d}" for i in range(n)]),
        "user_id": pa.array(user_id, pa.int64()),
        "request_ts": pa.array(request_ts, pa.int64()),
        "date": pa.array([date] * n),
        "hist_len": pa.array(hist_len.astype(np.int32), pa.int32()),
        "num_targets": pa.array(num_targets.astype(np.int32), pa.int32()),
    }
    # Times: each history ends before its request; ascending within a row.
    gaps = rng.exponential(float(MINUTE_MS), total_h).astype(np.int64) + 1
    starts = np.repeat(np.cumsum(hist_len) - hist_len, hist_len)
    rev = np.cumsum(gaps[::-1])[::-1]  # per-event distance to the end, reset per row below
    row_end = np.repeat(np.cumsum(hist_len) - 1, hist_len)
    dist = rev - np.append(rev, 0)[row_end + 1]
    hist_ts = np.repeat(request_ts, hist_len) - dist
    del starts
    hist_values = {
        "hist_item_id": rng.zipf(1.3, total_h) % 1_000_000,
        "hist_author_id": rng.zipf(1.5, total_h) % 50_000,
        "hist_action": rng.integers(0, 128, total_h),
        "hist_ts": hist_ts,
        "hist_watch_ms": rng.integers(0, MINUTE_MS, total_h),
        "hist_duration_ms": rng.integers(SECOND_MS, MINUTE_MS, total_h),
    }
    for col in HISTORY_COLUMNS:
        columns[col.name] = _lists(hist_len, hist_values[col.name], schema.field(col.name).type)
    tgt_values = {
        "tgt_item_id": rng.zipf(1.3, total_t) % 1_000_000,
        "tgt_author_id": rng.zipf(1.5, total_t) % 50_000,
        "tgt_position": np.concatenate([np.arange(m) for m in num_targets]),
        "tgt_duration_ms": rng.integers(SECOND_MS, MINUTE_MS, total_t),
    }
    for col in TARGET_COLUMNS:
        columns[col.name] = _lists(num_targets, tgt_values[col.name], schema.field(col.name).type)
    for name in LABEL_COLUMN_NAMES:
        labels = (rng.random(total_t) < 0.3).astype(np.int32)
        columns[name] = _lists(num_targets, labels, schema.field(name).type)
    return pa.table([columns[f.name] for f in schema], schema=schema)


def write_synthetic_samples(
    path: str | Path, cfg: SyntheticSamples, mode: Literal["overwrite", "append"] = "overwrite"
) -> int:
    """Writes one partition per date (one Delta commit); returns the table version."""
    props = WriterProperties(compression="ZSTD", max_row_group_size=cfg.rows_per_group)
    tables = [synthetic_table(cfg, d, i) for i, d in enumerate(cfg.dates)]
    data = pa.concat_tables(tables)
    if mode == "overwrite":
        write_deltalake(str(path), data, partition_by=["date"], mode="overwrite", writer_properties=props)
    else:
        write_deltalake(str(path), data, partition_by=["date"], mode="append", writer_properties=props)
    return int(DeltaTable(str(path)).version())
