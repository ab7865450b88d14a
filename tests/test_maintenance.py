"""jobs/maintain_tables.py on real local Delta tables: VACUUM keeps a pinned old version readable
and deletes an unpinned one, refuses when its retention would not cover a pin; OPTIMIZE cuts the
file count and keeps the rows; REORG purges user_history's deletion vectors, which read_delta
refuses until then. And the loader-facing write layout (jobs/delta_io.py): a multi-day backfill
writes ceil(rows / LOADER_ROWS_PER_FILE) files per date, one row group each, not one per task."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

import jobs.delta_io as delta_io
from jobs import build_request_samples, import_public_logs, maintain_tables
from jobs.build_user_history import STATE_PROPERTIES
from jobs.delta_io import ensure_table, latest_version, overwrite_where
from loader import DeletionVectorError, read_delta, register_pin, resolve_snapshot
from pipelines.public_logs import MOVIELENS
from schemas import (
    IMPRESSIONS,
    QUARANTINE,
    REQUEST_SAMPLES,
    REQUEST_SAMPLES_STAGING,
    USER_ACTIONS,
    USER_HISTORY,
    TableContract,
)

pytestmark = pytest.mark.spark


def _value(dtype: T.DataType, i: int) -> Any:
    if isinstance(dtype, T.ArrayType):
        return [_value(dtype.elementType, i + k) for k in range(i % 3 + 1)]
    return str(i) if isinstance(dtype, T.StringType) else i


def rows(spark: SparkSession, contract: TableContract, n: int, partitions: int, **fixed: Any) -> DataFrame:
    """n contract-shaped rows spread over `partitions` tasks; `fixed` columns take a value or a
    function of the row index."""
    schema = contract.spark_schema()
    data = [
        tuple(
            (fixed[f.name](i) if callable(fixed[f.name]) else fixed[f.name])
            if f.name in fixed
            else _value(f.dataType, i)
            for f in schema
        )
        for i in range(n)
    ]
    return spark.createDataFrame(data, schema).repartition(partitions)


def _quarantine(spark: SparkSession, warehouse: str, reason: str, partitions: int = 6) -> str:
    path = QUARANTINE.location(warehouse)
    df = rows(spark, QUARANTINE, 60, partitions, source_table="impressions", date="2026-01-01", reason=reason)
    overwrite_where(df, QUARANTINE, path, None)
    return path


def _maintain(spark: SparkSession, warehouse: str, tables: tuple[str, ...], **kw: Any) -> dict[str, Any]:
    args = maintain_tables.Args(warehouse=warehouse, tables=tables, retain_hours=0, **kw)
    return maintain_tables.run(spark, args)


def test_vacuum_keeps_a_pinned_version_and_deletes_an_unpinned_one(
    spark: SparkSession, tmp_path: Path
) -> None:
    pinned_wh, free_wh = str(tmp_path / "pinned"), str(tmp_path / "free")
    for wh in (pinned_wh, free_wh):
        _quarantine(spark, wh, "old")
        _quarantine(spark, wh, "new")  # replaces every file of the first version
    pinned, free = QUARANTINE.location(pinned_wh), QUARANTINE.location(free_wh)
    old_version = resolve_snapshot(pinned).version - 1
    register_pin(pinned, old_version, "run-1")
    before = read_delta(pinned, version=old_version)

    summary = _maintain(spark, pinned_wh, ("quarantine", "user_history"), vacuum=True)
    _maintain(spark, free_wh, ("quarantine",), vacuum=True)

    assert summary["absent"] == ["user_history"]
    assert summary["tables"]["quarantine"]["vacuum"]["pinned_versions"] == [old_version]
    assert summary["tables"]["quarantine"]["vacuum"]["retain_hours"] >= 1
    after = read_delta(pinned, version=old_version)
    assert after.sort_by("row_json").equals(before.sort_by("row_json"))
    assert set(after.column("reason").to_pylist()) == {"old"}
    gone = resolve_snapshot(free, old_version).files
    assert gone and not any(Path(f).exists() for f in gone)
    assert set(read_delta(free).column("reason").to_pylist()) == {"new"}


def test_vacuum_refuses_when_its_retention_would_break_a_pin(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = str(tmp_path)
    _quarantine(spark, wh, "old")
    path = _quarantine(spark, wh, "new")
    old_version = resolve_snapshot(path).version - 1  # version 0 is the empty table ensure_table made
    register_pin(path, old_version, "run-1")
    monkeypatch.setattr(maintain_tables, "retention_hours", lambda *a: 0.0)  # a wrong retention
    with pytest.raises(
        maintain_tables.PinError, match=f"pinned versions \\[{old_version}\\].*nothing deleted"
    ):
        _maintain(spark, wh, ("quarantine",), vacuum=True)
    kept = resolve_snapshot(path, old_version).files
    assert kept and all(Path(f).exists() for f in kept)


def test_optimize_compacts_and_purges_deletion_vectors(spark: SparkSession, tmp_path: Path) -> None:
    wh = str(tmp_path)
    q = _quarantine(spark, wh, "r", partitions=6)
    history = USER_HISTORY.location(wh)
    ensure_table(spark, USER_HISTORY, history, STATE_PROPERTIES)
    rows(spark, USER_HISTORY, 40, 4, as_of_date="2026-01-01").write.format("delta").mode("append").save(
        history
    )
    spark.sql(f"DELETE FROM delta.`{history}` WHERE user_id < 5")
    with pytest.raises(DeletionVectorError, match="maintain_tables"):
        read_delta(history)
    q_rows = read_delta(q).sort_by("row_json")

    summary = _maintain(spark, wh, ("quarantine", "user_history", "request_samples"), optimize=True)

    assert summary["tables"]["quarantine"]["optimize"]["files_before"] == 6
    assert summary["tables"]["quarantine"]["optimize"]["files_after"] == 1
    assert read_delta(q).sort_by("row_json").equals(q_rows)
    users = sorted(read_delta(history, columns=["user_id"]).column("user_id").to_pylist())
    assert users == list(range(5, 40))
    assert summary["tables"]["user_history"]["optimize"]["files_after"] == 1


def test_loader_facing_backfill_writes_row_groups_of_the_set_size_per_date(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delta_io, "LOADER_ROWS_PER_FILE", 40)
    days = ("2026-01-01", "2026-01-02", "2026-01-03")
    sizes = {"2026-01-01": 100, "2026-01-02": 30, "2026-01-03": 70}
    day_of = [d for d in days for _ in range(sizes[d])]
    df = rows(
        spark,
        REQUEST_SAMPLES_STAGING,
        len(day_of),
        8,
        date=lambda i: day_of[i],
        user_id=lambda i: (i * 7919) % 13,
    )
    path = REQUEST_SAMPLES_STAGING.location(str(tmp_path))
    overwrite_where(df, REQUEST_SAMPLES_STAGING, path, delta_io.date_range_predicate(days[0], days[-1]))
    snapshot = resolve_snapshot(path)
    for day, n in sizes.items():
        files = [f.path for f in snapshot.data_files if f.partition["date"] == day]
        metas = [pq.read_metadata(f) for f in files]
        assert len(files) == -(-n // 40), (day, len(files))  # ceil: one task per date, not 8
        assert all(m.num_row_groups == 1 and m.num_rows <= 40 for m in metas)
        assert sum(m.num_rows for m in metas) == n
        for f in files:
            users = pq.read_table(f, columns=["user_id"]).column("user_id").to_pylist()
            assert users == sorted(users)  # clustered by user within a file


def test_sparse_log_backfill_writes_one_file_per_active_date_in_one_commit(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A generated MovieLens log of 240 ratings on 60 days scattered over six years, imported and
    built with one --to-date backfill: each table gets one commit for the range and exactly one
    file per date that has rows (the date partition's floor), none for the 2,100 empty days."""
    rng = random.Random(7)
    start = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    days = sorted(rng.sample(range(6 * 365), 60))
    lines = [
        f"{rng.randrange(1, 9)}\t{rng.randrange(1, 50)}\t{rng.randrange(1, 6)}\t"
        f"{int((start + dt.timedelta(days=rng.choice(days), seconds=rng.randrange(86_400))).timestamp())}"
        for _ in range(240)
    ]
    log = tmp_path / "u.data"
    log.write_text("\n".join(lines) + "\n")
    wh = str(tmp_path / "warehouse")
    imported = import_public_logs.run(
        spark, import_public_logs.Args(fmt=MOVIELENS, inputs=(str(log),), warehouse=wh)
    )
    first, last = imported["dates"]
    backfill = build_request_samples.Args(
        date=first, to_date=last, warehouse=wh, allow_no_state=True, output=REQUEST_SAMPLES
    )
    built = build_request_samples.run(spark, backfill)
    assert built["requests"] == imported["requests"]
    for contract in (IMPRESSIONS, USER_ACTIONS, REQUEST_SAMPLES):
        path = contract.location(wh)
        dates = {r["date"] for r in spark.read.format("delta").load(path).select("date").distinct().collect()}
        files = Counter(f.partition["date"] for f in resolve_snapshot(path).data_files)
        assert 40 <= len(dates) <= 60 and files == dict.fromkeys(dates, 1), (contract.name, files)
        assert latest_version(spark, path) == 1, contract.name  # created (0), then one commit for the range


def test_command_line_needs_an_operation_and_a_sane_retention() -> None:
    args = maintain_tables.parse_args(["--optimize", "--vacuum", "--date", "2026-01-04"])
    assert args.optimize and args.vacuum and args.retain_hours == maintain_tables.DEFAULT_RETAIN_HOURS
    for argv in ([], ["--vacuum", "--retain-hours", "-1"]):
        with pytest.raises(SystemExit):
            maintain_tables.parse_args(argv)
    assert maintain_tables.retention_hours(168, [], 0) == 168
    assert maintain_tables.retention_hours(0, [0, 3_600_000], 10 * 3_600_000) == 11  # oldest pin + 1 h
