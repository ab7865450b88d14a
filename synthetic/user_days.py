"""Synthetic `user_day_samples` and the `request_samples` rows it implies, written without Spark.

For the user-day loader's tests and benchmark: both tables hold exactly the same requests (each
request_samples row is its user-day's window[hist_start:hist_end] and its slice of the flat
targets), so a loader over one can be compared with a loader over the other. Per user-day: a
history of `h0` events before the first request (heavy-tailed, at most l_max; 0 for a cold
start), 1 + Poisson(mean_requests - 1) requests at increasing times, and Poisson(mean_new_events)
new events between two requests; request j reads the last <= l_max events before its
request_ts. Values are random (this module shapes tensors; the Spark pipeline builds real
tables from the synthetic logs, synthetic/logs.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import Field, Schema, convert_to_deltalake
from deltalake.schema import PrimitiveType

from schemas.constants import DAY_MS, DEFAULT_L_MAX, MINUTE_MS, SECOND_MS
from schemas.fields import HISTORY_COLUMNS, LABEL_COLUMN_NAMES
from schemas.request_samples import REQUEST_SAMPLES, TARGET_COLUMNS
from schemas.user_day_samples import DELTA_ENCODED_COLUMNS, USER_DAY_SAMPLES

HISTORY_NAMES: tuple[str, ...] = tuple(c.name for c in HISTORY_COLUMNS)
TARGET_NAMES: tuple[str, ...] = (*(c.name for c in TARGET_COLUMNS), *LABEL_COLUMN_NAMES)


@dataclass(frozen=True)
class SyntheticUserDays:
    num_users: int = 200  # user-days per date
    dates: tuple[str, ...] = ("2026-01-01",)
    l_max: int = DEFAULT_L_MAX  # longest request history
    mean_hist: float = 2_000.0  # mean events before a day's first request (lognormal, <= l_max)
    mean_requests: float = 5.0  # requests per user-day (1 + Poisson)
    mean_new_events: float = 10.0  # events between two requests of a day (Poisson)
    max_targets: int = 16  # targets per request: 1 .. max_targets
    rows_per_group: int = 100  # user-days per Parquet row group of user_day_samples
    request_rows_per_group: int = 500  # requests per row group of request_samples (loader-sized)
    seed: int = 0


def _lists(lengths: np.ndarray, values: np.ndarray, arrow_type: pa.DataType) -> pa.ListArray:
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, arrow_type.value_type))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """concat(arange(s, s + n) for s, n): the flat index of several slices, without a loop."""
    total = int(lengths.sum())
    first = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return first + np.arange(total)


def synthetic_user_days(cfg: SyntheticUserDays, date: str, date_index: int) -> tuple[pa.Table, pa.Table]:
    """(user_day_samples, request_samples) of one date, both in their contracts' column order."""
    rng = np.random.default_rng([cfg.seed, date_index])
    g = cfg.num_users
    day0 = int(np.datetime64(date, "ms").astype(np.int64))
    sigma = 1.2
    h0 = np.clip(rng.lognormal(np.log(cfg.mean_hist) - sigma**2 / 2, sigma, g).astype(np.int64), 0, cfg.l_max)
    h0[rng.random(g) < 0.05] = cfg.l_max  # heavy users at the cap: later requests drop old events
    h0[rng.random(g) < 0.02] = 0  # cold starts: the first request has no history
    k = 1 + rng.poisson(max(cfg.mean_requests - 1, 0), g)
    r = int(k.sum())
    day = np.repeat(np.arange(g), k)  # user-day of each request
    first_req = np.concatenate([[0], np.cumsum(k)[:-1]])
    j = np.arange(r) - first_req[day]  # index of the request within its day
    new = np.where(j > 0, rng.poisson(cfg.mean_new_events, r), 0)  # events just before request j
    hist_end = h0[day] + (np.cumsum(new) - np.cumsum(new)[first_req][day])
    hist_start = np.maximum(hist_end - cfg.l_max, 0)
    window_len = h0 + np.add.reduceat(new, first_req)
    # Times: requests spread over the day; window events strictly before the request reading them.
    slot = DAY_MS // (int(k.max()) + 1)
    request_ts = day0 + (j + 1) * slot - rng.integers(0, slot // 2, r)
    w_day = np.repeat(np.arange(g), window_len)
    w_off = np.concatenate([[0], np.cumsum(window_len)])
    w_pos = np.arange(int(window_len.sum())) - w_off[w_day]
    # The next request after event p of day d is the first one whose history ends past p.
    nxt = _next_request(hist_end, k, w_day, w_pos)
    ahead = np.where(w_pos < h0[w_day], h0[w_day] - w_pos, 0)  # prior events: spaced back from request 1
    hist_ts = np.where(
        ahead > 0,
        request_ts[first_req[w_day]] - ahead * MINUTE_MS,
        # Between requests j-1 and j: a second apart from request_ts[j-1] on, in window order.
        request_ts[np.maximum(nxt - 1, 0)] + (1 + w_pos - hist_end[np.maximum(nxt - 1, 0)]) * SECOND_MS,
    ).astype(np.int64)
    hist_ts = np.minimum(hist_ts, request_ts[nxt] - 1)
    total_w = len(w_day)
    window = {
        "hist_item_id": rng.zipf(1.3, total_w) % 1_000_000,
        "hist_author_id": rng.zipf(1.5, total_w) % 50_000,
        "hist_action": rng.integers(0, 128, total_w),
        "hist_ts": hist_ts,
        "hist_watch_ms": rng.integers(0, MINUTE_MS, total_w),
        "hist_duration_ms": rng.integers(SECOND_MS, MINUTE_MS, total_w),
    }
    m = rng.integers(1, cfg.max_targets + 1, r)
    total_m = int(m.sum())
    targets = {
        "tgt_item_id": rng.zipf(1.3, total_m) % 1_000_000,
        "tgt_author_id": rng.zipf(1.5, total_m) % 50_000,
        "tgt_position": _ranges(np.zeros(r, np.int64), m),
        "tgt_duration_ms": rng.integers(SECOND_MS, MINUTE_MS, total_m),
        **{name: (rng.random(total_m) < 0.3).astype(np.int32) for name in LABEL_COLUMN_NAMES},
    }
    request_id = np.array([f"{date}-u{d:06d}-{i:03d}" for d, i in zip(day.tolist(), j.tolist(), strict=True)])
    user_id = rng.permutation(10 * g)[:g].astype(np.int64)  # distinct users, not in row order
    m_day = np.add.reduceat(m, first_req)

    ud_schema = USER_DAY_SAMPLES.arrow_schema()
    ud: dict[str, pa.Array] = {
        "user_id": pa.array(user_id, pa.int64()),
        "date": pa.array([date] * g),
        "window_len": pa.array(window_len, pa.int32()),
        "num_requests": pa.array(k, pa.int32()),
        "request_id": _lists(k, request_id, ud_schema.field("request_id").type),
        "request_ts": _lists(k, request_ts, ud_schema.field("request_ts").type),
        "hist_start": _lists(k, hist_start, ud_schema.field("hist_start").type),
        "hist_end": _lists(k, hist_end, ud_schema.field("hist_end").type),
        "num_targets": _lists(k, m, ud_schema.field("num_targets").type),
        "total_targets": pa.array(m_day, pa.int32()),
        **{n: _lists(window_len, v, ud_schema.field(n).type) for n, v in window.items()},
        **{n: _lists(m_day, v, ud_schema.field(n).type) for n, v in targets.items()},
    }
    # request_samples: request j's history is its window slice, its targets its share of the flat ones.
    hist_len = hist_end - hist_start
    take = _ranges(w_off[day] + hist_start, hist_len)
    rs_schema = REQUEST_SAMPLES.arrow_schema()
    rs: dict[str, pa.Array] = {
        "request_id": pa.array(request_id),
        "user_id": pa.array(user_id[day], pa.int64()),
        "request_ts": pa.array(request_ts, pa.int64()),
        "date": pa.array([date] * r),
        "hist_len": pa.array(hist_len, pa.int32()),
        "num_targets": pa.array(m, pa.int32()),
        **{n: _lists(hist_len, v[take], rs_schema.field(n).type) for n, v in window.items()},
        **{n: _lists(m, v, rs_schema.field(n).type) for n, v in targets.items()},
    }
    return (
        pa.table([ud[f.name] for f in ud_schema], schema=ud_schema),
        pa.table([rs[f.name] for f in rs_schema], schema=rs_schema),
    )


def _next_request(hist_end: np.ndarray, k: np.ndarray, w_day: np.ndarray, w_pos: np.ndarray) -> np.ndarray:
    """For each window event, the first request of its day whose history ends past it."""
    # Events of a day are in window order and hist_end is non-decreasing within a day, so one
    # searchsorted over a key that orders days first finds every event's request at once.
    day_of_req = np.repeat(np.arange(len(k)), k)
    big = int(max(int(hist_end.max(initial=0)), int(w_pos.max(initial=0)))) + 1
    keys = day_of_req * big + hist_end
    return np.searchsorted(keys, w_day * big + w_pos, side="right")


def write_synthetic_user_days(
    user_day_path: str | Path, request_path: str | Path | None, cfg: SyntheticUserDays
) -> None:
    """Writes user_day_samples (and, unless request_path is None, request_samples with the same
    requests), replacing what is there: one file per date, ZSTD and encoded like the Spark jobs'."""
    pairs = [synthetic_user_days(cfg, d, i) for i, d in enumerate(cfg.dates)]
    for path in (user_day_path, request_path):
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
    for date, (user_days, requests) in zip(cfg.dates, pairs, strict=True):
        _write_partition(user_day_path, date, user_days, cfg.rows_per_group, DELTA_ENCODED_COLUMNS)
        if request_path is not None:
            _write_partition(request_path, date, requests, cfg.request_rows_per_group, ())
    for path in (user_day_path, request_path):
        if path is not None:
            # One commit adding every file; the date is in the path, as Delta keeps partition values.
            convert_to_deltalake(
                str(path),
                partition_by=Schema([Field("date", PrimitiveType("string"))]),
                partition_strategy="hive",
            )


def _write_partition(
    path: str | Path, date: str, table: pa.Table, rows_per_group: int, delta_encoded: tuple[str, ...]
) -> None:
    """One date's Parquet file under path/date=D.

    Written with pyarrow, not delta-rs: delta-rs 1.6's column properties do not reach list
    elements, and the Spark jobs write `delta_encoded` list columns DELTA_BINARY_PACKED on v2 pages
    without a dictionary (schemas/user_day_samples.DELTA_ENCODED_COLUMNS), dictionaries elsewhere.
    The loaders' tests and benchmarks then decode what production tables hold."""
    folder = Path(path) / f"date={date}"
    folder.mkdir(parents=True)
    table = table.drop(["date"])
    encoded = [f"{c}.list.element" for c in delta_encoded]
    pq.write_table(
        table,
        folder / "part-00000.zstd.parquet",
        row_group_size=rows_per_group,
        compression="zstd",
        use_dictionary=[
            f"{f.name}.list.element" if pa.types.is_list(f.type) else f.name
            for f in table.schema
            if f.name not in delta_encoded
        ],
        column_encoding=dict.fromkeys(encoded, "DELTA_BINARY_PACKED"),
        data_page_version="2.0" if delta_encoded else "1.0",
    )
