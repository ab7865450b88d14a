"""The VISTA summary path on Spark: the point-in-time join (pipelines/summary_join.py), the
summarize_users and build_compact_samples jobs on a tiny warehouse, and the compact loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession

from jobs import build_compact_samples, summarize_users
from jobs.history_state import state_metadata
from loader.compact import CompactLoader, CompactLoaderConfig
from loader.snapshot import resolve_snapshot
from pipelines.summary_join import join_latest_summary
from schemas import REQUEST_SAMPLES, REQUEST_SAMPLES_COMPACT, USER_HISTORY, USER_SUMMARIES
from schemas.constants import DAY_MS
from schemas.fields import HISTORY_COLUMNS, LABEL_COLUMN_NAMES
from schemas.request_samples import TARGET_COLUMNS
from synthetic.batches import tiny_config
from synthetic.tables import SyntheticSamples, write_synthetic_samples
from trainer.checkpoint import save_checkpoint
from trainer.config import VISTAConfig
from trainer.quantize import dequantize, error_bound, from_bytes
from trainer.registry import build_model
from trainer.vista import VistaRanker

pytestmark = [pytest.mark.spark, pytest.mark.timeout(600), pytest.mark.usefixtures("torch_single_thread")]

HIST = [c.name for c in HISTORY_COLUMNS]
PER_TARGET = [*(c.name for c in TARGET_COLUMNS), *LABEL_COLUMN_NAMES]
DAY0 = 1_767_225_600_000  # 2026-01-01 UTC




def request_row(
    request_id: str, user_id: int, request_ts: int, hist_ts: list[int], m: int = 2
) -> dict[str, Any]:
    n = len(hist_ts)
    return {
        "request_id": request_id,
        "user_id": user_id,
        "request_ts": request_ts,
        "date": "2026-01-01",
        "hist_len": n,
        "hist_item_id": [1000 + i for i in range(n)],
        "hist_author_id": [7] * n,
        "hist_action": [1] * n,
        "hist_ts": hist_ts,
        "hist_watch_ms": [5] * n,
        "hist_duration_ms": [9] * n,
        "num_targets": m,
        "tgt_item_id": list(range(m)),
        "tgt_author_id": [3] * m,
        "tgt_position": list(range(m)),
        "tgt_duration_ms": [10] * m,
        **{name: [i % 2 for i in range(m)] for name in LABEL_COLUMN_NAMES},
    }


def summary_row(user_id: int, as_of_ts: int, model_version: str = "v1", tag: int = 0) -> dict[str, Any]:
    return {"user_id": user_id, "as_of_ts": as_of_ts, "model_version": model_version, "quantization": "int8",
            "num_tokens": 1, "dim": 2, "summary": bytes([tag % 256, 0]), "scale": [1.0], "num_events": 0,
            "date": "2026-01-01"}


def frames(
    spark: SparkSession, requests: list[dict[str, Any]], summaries: list[dict[str, Any]]
) -> tuple[DataFrame, DataFrame]:
    req = spark.createDataFrame(
        [tuple(r[c] for c in REQUEST_SAMPLES.column_names) for r in requests], REQUEST_SAMPLES.spark_schema()
    )
    summ = spark.createDataFrame(
        [tuple(s[c] for c in USER_SUMMARIES.column_names) for s in summaries], USER_SUMMARIES.spark_schema()
    )
    return req, summ


def expected_suffix(hist_ts: list[int], as_of: int | None, cap: int) -> tuple[int, int]:
    """(start, length) of the raw events the summary has not seen, capped to the most recent `cap`."""
    seen = 0 if as_of is None else sum(t < as_of for t in hist_ts)
    start = max(seen, len(hist_ts) - cap)
    return start, len(hist_ts) - start


# -- the join ------------------------------------------------------------------------------------------
times = st.integers(min_value=0, max_value=40)  # a small range: many equal timestamps
# One scenario: requests (user, request_ts, event times) and summaries (user, as_of_ts, model_version).
scenario = st.tuples(
    st.lists(st.tuples(st.integers(0, 2), times, st.lists(times, max_size=6)), min_size=1, max_size=8),
    st.lists(
        st.tuples(st.integers(0, 2), times, st.sampled_from(["v1", "v2"])), max_size=8, unique_by=lambda s: s
    ),
)


# Each example runs several independent scenarios (users namespaced per scenario) through one
# Spark job: the property gets many random cases for a few Spark round trips.
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenarios=st.lists(scenario, min_size=1, max_size=8), cap=st.integers(0, 4))
def test_join_latest_summary_attaches_the_newest_strictly_earlier_summary(
    spark: SparkSession,
    scenarios: list[tuple[list[tuple[int, int, list[int]]], list[tuple[int, int, str]]]],
    cap: int,
) -> None:
    rows, summ, all_summaries = [], [], []
    for j, (requests, summaries) in enumerate(scenarios):
        for i, (user, ts, hist) in enumerate(requests):
            rows.append(request_row(f"s{j}-r{i}", 10 * j + user, ts, sorted(h for h in hist if h < ts)))
        for u, t, v in summaries:
            summ.append(summary_row(10 * j + u, t, v, tag=t))
            all_summaries.append((10 * j + u, t, v))
    # The boundary itself: a summary as of exactly the request time is never attached.
    rows.append(request_row("edge", 99, 20, [5, 19]))
    summ += [
        summary_row(99, 20, "v1", tag=20),
        summary_row(99, 19, "v2", tag=19),
        summary_row(99, 4, "v1", tag=4),
    ]
    all_summaries += [(99, 20, "v1"), (99, 19, "v2"), (99, 4, "v1")]
    req_df, summ_df = frames(spark, rows, summ)
    out = {r["request_id"]: r for r in req_df.transform(join_latest_summary(summ_df, "v1", cap)).collect()}
    assert len(out) == len(rows) and out["edge"]["summary_as_of_ts"] == 4
    for r in rows:
        got = out[r["request_id"]]
        earlier = [t for u, t, v in all_summaries if u == r["user_id"] and v == "v1" and t < r["request_ts"]]
        want = max(earlier) if earlier else None
        assert got["summary_as_of_ts"] == want, r
        # never from the future
        assert got["summary_as_of_ts"] is None or got["summary_as_of_ts"] < got["request_ts"]
        assert got["summary"] == (None if want is None else bytes([want % 256, 0]))
        start, length = expected_suffix(r["hist_ts"], want, cap)
        assert got["hist_len"] == length and got["source_hist_len"] == r["hist_len"]
        for name in HIST:
            assert list(got[name]) == r[name][start:], name
        for name in ("user_id", "request_ts", "num_targets", *PER_TARGET):
            assert got[name] == r[name], name
        assert got["model_version"] == "v1"


def test_join_latest_summary_names_missing_columns(spark: SparkSession) -> None:
    req_df, summ_df = frames(spark, [request_row("r", 1, 10, [1])], [summary_row(1, 5)])
    with pytest.raises(ValueError, match=r"join_latest_summary \(summaries\): missing columns \['summary'\]"):
        req_df.transform(join_latest_summary(summ_df.drop("summary"), "v1", 3))
    with pytest.raises(ValueError, match="max_recent must be >= 0, got -1"):
        join_latest_summary(summ_df, "v1", -1)


# -- jobs on a tiny warehouse ------------------------------------------------------------------------------
STATE_DATE, REQUEST_DATE = "2026-01-01", "2026-01-02"
USERS = 6


def write_state(spark: SparkSession, warehouse: str) -> dict[int, list[int]]:
    """A user_history state as of STATE_DATE (what build_user_history commits), and each user's hist_ts."""
    rng = np.random.default_rng(3)
    rows, ts_by_user = [], {}
    for user in range(USERS):
        n = int(rng.integers(0, 60)) if user else 0  # user 0 has no events
        ts = sorted(int(t) for t in DAY0 - rng.integers(1, 5 * DAY_MS, n))
        ts_by_user[user] = ts
        items, authors = [int(x) for x in rng.integers(1, 500, n)], [int(x) for x in rng.integers(1, 50, n)]
        rows.append((user, STATE_DATE, n, items, authors, [1] * n, ts, [1000] * n, [2000] * n))
    df = spark.createDataFrame(rows, USER_HISTORY.spark_schema())
    (df.write.format("delta").mode("overwrite").option("userMetadata", state_metadata(STATE_DATE))
     .save(USER_HISTORY.location(warehouse)))
    return ts_by_user


def vista_checkpoint(tmp_path: Path) -> tuple[str, VistaRanker]:
    torch.manual_seed(0)
    config = VISTAConfig.from_dict(
        {**tiny_config(layers=1).to_dict(), "summary_tokens": 4, "recent_events": 8, "recon_items": 4}
    )
    model = build_model("vista", config)
    assert isinstance(model, VistaRanker)
    path = save_checkpoint(tmp_path / "vista.pt", model=model, config=config, step=0, model_name="vista")
    return str(path), model


def test_summarize_then_compact_then_load(spark: SparkSession, warehouse: str, tmp_path: Path) -> None:
    checkpoint, model = vista_checkpoint(tmp_path)
    ts_by_user = write_state(spark, warehouse)
    argv = ["--warehouse", warehouse, "--date", STATE_DATE, "--checkpoint", checkpoint,
            "--model-version", "v1", "--l-max", "40", "--batch-size", "4"]  # fmt: skip
    args = summarize_users.Args(date=STATE_DATE, checkpoint=checkpoint, model_version="v1",
                                warehouse=warehouse, l_max=40, batch_size=4)  # fmt: skip
    assert summarize_users.parse_args(argv) == args  # the CLI maps onto the typed core
    first = summarize_users.run(spark, args)
    as_of = DAY0 + DAY_MS
    # version 1: the create commit, then one refresh commit
    assert first["users"] == USERS and first["as_of_ts"] == as_of and first["version"] == 1
    summaries = spark.read.format("delta").load(USER_SUMMARIES.location(warehouse)).collect()
    assert len(summaries) == USERS and {r["date"] for r in summaries} == {STATE_DATE}
    last_commit = spark.sql(f"DESCRIBE HISTORY delta.`{USER_SUMMARIES.location(warehouse)}`").first()
    assert last_commit is not None
    history = json.loads(last_commit["userMetadata"])
    assert history["as_of_ts"] == as_of and history["model_version"] == "v1"
    # The stored summary is the model's summary of the user's last l_max events, within int8's bound.
    state = {
        r["user_id"]: r for r in spark.read.format("delta").load(USER_HISTORY.location(warehouse)).collect()
    }
    for row in summaries:
        assert row["num_events"] == min(40, len(ts_by_user[row["user_id"]]))
        q = from_bytes([row["summary"]], "int8", row["num_tokens"], row["dim"])
        stored = dequantize(q, torch.tensor([row["scale"]]))[0]
        expected = model.summarize(history_batch(state[row["user_id"]], 40, as_of))[0]
        assert bool(((stored - expected).abs() <= error_bound(expected) + 1e-5).all())

    samples = REQUEST_SAMPLES.location(warehouse)
    write_synthetic_samples(
        samples,
        SyntheticSamples(
            num_requests=30,
            dates=(REQUEST_DATE,),
            l_max=120,
            mean_hist=50,
            max_targets=3,
            num_users=USERS + 2,
            rows_per_group=8,
        ),
    )
    compact_args = build_compact_samples.Args(
        date=REQUEST_DATE, model_version="v1", warehouse=warehouse, max_recent=16
    )
    result = build_compact_samples.run(spark, compact_args)
    assert result["requests"] == 30
    source = {r["request_id"]: r for r in pq.read_table(resolve_snapshot(samples).files).to_pylist()}
    compact_files = resolve_snapshot(REQUEST_SAMPLES_COMPACT.location(warehouse)).files
    compact = {r["request_id"]: r for r in pq.read_table(compact_files).to_pylist()}
    assert set(compact) == set(source)
    with_summary = 0
    for rid, row in compact.items():
        src = source[rid]
        for name in ("user_id", "request_ts", "num_targets", *PER_TARGET):
            assert row[name] == src[name], name
        has = src["user_id"] < USERS  # users USERS.. have no summary
        with_summary += has
        assert row["summary_as_of_ts"] == (as_of if has else None)
        start, length = expected_suffix(src["hist_ts"], as_of if has else None, 16)
        assert row["hist_len"] == length and row["source_hist_len"] == src["hist_len"]
        for name in HIST:
            assert row[name] == src[name][start:], name
    assert result["with_summary"] == with_summary > 0

    batches = list(
        CompactLoader(REQUEST_SAMPLES_COMPACT.location(warehouse), CompactLoaderConfig(batch_size=8, seed=1))
    )
    assert sorted(rid for b in batches for rid in b.requests.request_id) == sorted(compact)
    batch = batches[0]
    assert batch.summary.shape[1:] == (4, 16) and batch.quantization == "int8"
    for i, rid in enumerate(batch.requests.request_id):
        assert bool(batch.has_summary[i]) == (compact[rid]["summary"] is not None)
        assert batch.requests.hist_ts[i, : compact[rid]["hist_len"]].tolist() == compact[rid]["hist_ts"]
    logits, loss = model(batch)
    assert logits.shape[:2] == batch.requests.tgt_item_id.shape and bool(torch.isfinite(loss))
    assert_compact_loader_resumes_exactly(REQUEST_SAMPLES_COMPACT.location(warehouse))


def assert_compact_loader_resumes_exactly(table: str) -> None:
    """Stop after 2 batches of epoch 1, resume in a new loader from the saved state: the rest of
    that epoch, then the next one, equal an uninterrupted run's (no request repeated or skipped)."""
    cfg = CompactLoaderConfig(batch_size=4, seed=3, shuffle_buffer=6)

    def ids(batches: list[Any]) -> list[str]:
        return [rid for b in batches for rid in b.requests.request_id]

    full = CompactLoader(table, cfg)
    epochs = []
    for _ in range(3):
        batches_before = len(full)  # this epoch's count: row groups are dealt in a seeded order
        epochs.append(list(full))
        assert len(epochs[-1]) == batches_before
    assert len(epochs[1]) > 3 and ids(epochs[0]) != ids(epochs[1])  # a new order per epoch
    first = CompactLoader(table, cfg)
    list(first)
    it = iter(first)
    taken = [next(it), next(it)]
    state = json.loads(json.dumps(first.state_dict()))
    assert state["epoch"] == 1 and state["sample_in_epoch"] == sum(b.size for b in taken)
    resumed = CompactLoader(table, cfg)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert ids(taken) + ids(rest) == ids(epochs[1])
    for got, want in zip(rest, epochs[1][2:], strict=True):
        for name, tensor in got.tensors().items():
            torch.testing.assert_close(tensor, want.tensors()[name], msg=name)
    assert ids(list(resumed)) == ids(epochs[2])
    with pytest.raises(ValueError, match="seed"):
        CompactLoader(table, CompactLoaderConfig(batch_size=4, seed=4)).load_state_dict(state)


def history_batch(row: Any, l_max: int, as_of: int) -> Any:
    from loader.batch import RequestBatch

    n = min(l_max, row["hist_len"])
    hist = {
        name: torch.tensor(
            [row[name][len(row[name]) - n :]],
            dtype=torch.int64 if name in ("hist_item_id", "hist_author_id", "hist_ts") else torch.int32,
        )
        for name in HIST
    }
    empty = torch.zeros((1, 0), dtype=torch.int64)
    return RequestBatch(
        request_id=[""],
        user_id=torch.tensor([row["user_id"]]),
        request_ts=torch.tensor([as_of]),
        hist_len=torch.tensor([n]),
        num_targets=torch.zeros(1, dtype=torch.int64),
        tgt_item_id=empty,
        tgt_author_id=empty,
        tgt_position=empty.int(),
        tgt_duration_ms=empty.int(),
        labels=torch.zeros((1, 0, 6)),
        **hist,
    )
