"""The user-day loader: over one epoch the same requests and tensors as RequestLoader on the same
requests (per-request output), whole user-days with consistent offsets (grouped output), rank
balance, seeded order, exact resume, and a table with inconsistent offsets refused by file and
row group."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from deltalake import WriterProperties, write_deltalake
from pyspark.sql import SparkSession

from benchmarks import user_day_encodings
from jobs import build_user_day_samples
from jobs.build_user_day_samples import Args as BuildArgs
from loader import (
    HISTORY_FIELDS,
    TARGET_FIELDS,
    GroupedBatch,
    LengthSampling,
    LoaderConfig,
    LoaderError,
    RequestBatch,
    RequestLoader,
    SchemaMismatchError,
    UserDayLoader,
    UserDayLoaderConfig,
    UserDayOffsetsError,
    resolve_snapshot,
)
from schemas import REQUEST_SAMPLES, USER_DAY_SAMPLES
from schemas.user_day_samples import DELTA_ENCODED_COLUMNS
from synthetic.user_days import SyntheticUserDays, synthetic_user_days, write_synthetic_user_days

pytestmark = pytest.mark.timeout(120)

SMALL = SyntheticUserDays(
    num_users=40,
    dates=("2026-01-01", "2026-01-02"),
    l_max=300,
    mean_hist=120,
    mean_requests=4,
    max_targets=5,
    rows_per_group=10,
    request_rows_per_group=40,
)
SAMPLING = LengthSampling(l_min=8, l_max=300, mean=60)

Row = tuple[tuple[int, ...], ...]


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(user_day_samples, request_samples) holding the same requests."""
    root = tmp_path_factory.mktemp("user_days")
    write_synthetic_user_days(root / "user_day_samples", root / "request_samples", SMALL)
    return str(root / "user_day_samples"), str(root / "request_samples")


def test_the_synthetic_tables_are_encoded_as_the_jobs_write_them(tables: tuple[str, str]) -> None:
    """So the loaders' tests and benchmark decode what production tables hold: user_day_samples'
    DELTA_ENCODED_COLUMNS delta-encoded without a dictionary, everything else dictionary-encoded."""
    for path, delta in zip(tables, (DELTA_ENCODED_COLUMNS, ()), strict=True):
        for file in resolve_snapshot(path).files:
            chunks = pq.ParquetFile(file).metadata.row_group(0)
            encodings = {chunks.column(i).path_in_schema: set(chunks.column(i).encodings)
                         for i in range(chunks.num_columns)}  # fmt: skip
            for name in HISTORY_FIELDS:
                used = encodings[f"{name}.list.element"]
                assert ("DELTA_BINARY_PACKED" in used) == (name in delta), (file, name, used)
                assert ("RLE_DICTIONARY" in used or "PLAIN_DICTIONARY" in used) != (name in delta), (
                    file,
                    name,
                )


def test_the_encodings_benchmark_copies_the_contracts_names() -> None:
    """benchmarks/user_day_encodings.py runs without the project's packages, so it copies them."""
    assert user_day_encodings.HIST == HISTORY_FIELDS
    assert user_day_encodings.DELTA_ENCODED == DELTA_ENCODED_COLUMNS


def rows_of(batches: Iterable[RequestBatch]) -> dict[str, Row]:
    """request_id -> every real (unpadded) value of the request; a request seen twice fails."""
    out: dict[str, Row] = {}
    for b in batches:
        for i, rid in enumerate(b.request_id):
            assert rid not in out, f"request {rid} yielded twice"
            h, m = int(b.hist_len[i]), int(b.num_targets[i])
            assert not b.hist_item_id[i, h:].any() and not b.tgt_item_id[i, m:].any(), "padding must be 0"
            out[rid] = (
                *(tuple(getattr(b, n)[i, :h].tolist()) for n in HISTORY_FIELDS),
                *(tuple(getattr(b, n)[i, :m].tolist()) for n in TARGET_FIELDS),
                tuple(b.labels[i, :m].flatten().to(torch.int64).tolist()),
                (int(b.user_id[i]), int(b.request_ts[i])),
            )
    return out


def grouped(path: str, **kw: object) -> UserDayLoader:
    return UserDayLoader(path, UserDayLoaderConfig(output="groups", **kw))  # type: ignore[arg-type]


def as_requests(batches: Iterable[RequestBatch | GroupedBatch]) -> list[RequestBatch]:
    out = []
    for b in batches:
        if isinstance(b, GroupedBatch):
            b.validate()
            b = b.to_request_batch()
        out.append(b)
    return out


def test_per_request_epoch_equals_request_loader_on_every_rank_split(tables: tuple[str, str]) -> None:
    user_days, requests = tables
    expected = rows_of(RequestLoader(requests, LoaderConfig(batch_size=16, seed=2)))
    for world_size in (1, 2):
        got: dict[str, Row] = {}
        counts = []
        for rank in range(world_size):
            loader = UserDayLoader(
                user_days, UserDayLoaderConfig(batch_size=16, seed=2, rank=rank, world_size=world_size)
            )
            batches = as_requests(loader)
            assert all(isinstance(b, RequestBatch) and b.size <= 16 for b in batches)
            assert len(loader) == len(batches), "len() is the epoch's batch count"
            counts.append(len(batches))
            mine = rows_of(batches)
            assert not set(mine) & set(got), "a request reached two ranks"
            got |= mine
        assert len(set(counts)) == 1, f"ranks yield different batch counts: {counts}"
        assert got == expected


def test_grouped_batches_hold_whole_user_days_and_expand_to_the_same_requests(
    tables: tuple[str, str],
) -> None:
    user_days, requests = tables
    expected = rows_of(RequestLoader(requests, LoaderConfig(batch_size=16, seed=2)))
    per_day = Counter(rid.rsplit("-", 1)[0] for rid in expected)  # date-user part of the id
    for world_size in (1, 2):
        got: dict[str, Row] = {}
        counts = []
        for rank in range(world_size):
            loader = grouped(user_days, batch_size=6, seed=4, rank=rank, world_size=world_size)
            batches = list(loader)
            assert all(isinstance(b, GroupedBatch) and b.num_groups <= 6 for b in batches)
            assert len(loader) == len(batches)
            counts.append(len(batches))
            for b in batches:
                assert isinstance(b, GroupedBatch)
                days = Counter(rid.rsplit("-", 1)[0] for rid in b.request_id)
                assert len(days) == b.num_groups and all(per_day[d] == n for d, n in days.items()), (
                    "a user-day was split across batches"
                )
                assert b.num_window_tokens <= b.num_history_tokens or b.size == 1
            got |= rows_of(as_requests(batches))
        assert len(set(counts)) == 1, f"ranks yield different batch counts: {counts}"
        assert got == expected


def test_the_same_seed_gives_the_same_batches_and_batches_mix_users(tables: tuple[str, str]) -> None:
    user_days, _ = tables

    def ids(seed: int, batch_size: int, output: str) -> list[list[str]]:
        cfg = UserDayLoaderConfig(seed=seed, batch_size=batch_size, output=output)
        return [b.request_id for b in UserDayLoader(user_days, cfg)]

    for output in ("requests", "groups"):
        first = ids(11, 8, output)
        assert first == ids(11, 8, output)
        assert first != ids(12, 8, output)
    per_request = ids(11, 16, "requests")
    users = [len({rid.rsplit("-", 1)[0] for rid in batch}) for batch in per_request]
    assert np.mean(users) > 8, f"per-request batches should mix user-days, got {users}"


@pytest.mark.parametrize("output", ["requests", "groups"])
def test_resume_mid_epoch_continues_exactly(tables: tuple[str, str], output: str) -> None:
    user_days, _ = tables
    cfg = UserDayLoaderConfig(batch_size=5, seed=9, output=output, length_sampling=SAMPLING)
    whole = rows_of(as_requests(UserDayLoader(user_days, cfg)))
    first = UserDayLoader(user_days, cfg)
    it = iter(first)
    head = [next(it) for _ in range(3)]
    state = first.state_dict()
    first.close()
    assert state["sample_in_epoch"] == sum(b.size for b in head) and state["output"] == output
    again = UserDayLoader(user_days, cfg)
    again.load_state_dict(state)
    tail = list(again)
    assert rows_of(as_requests(head)) | rows_of(as_requests(tail)) == whole, "resume repeated or skipped"
    other = UserDayLoader(user_days, UserDayLoaderConfig(batch_size=5, seed=9))
    if output == "groups":
        with pytest.raises(ValueError, match="output='groups'"):
            other.load_state_dict(state)


def test_sampled_lengths_keep_the_most_recent_suffix_of_each_requests_own_slice(
    tables: tuple[str, str],
) -> None:
    user_days, requests = tables
    full = rows_of(RequestLoader(requests, LoaderConfig(batch_size=16, seed=2)))
    trimmed = 0
    for output in ("requests", "groups"):
        loader = UserDayLoader(
            user_days, UserDayLoaderConfig(batch_size=6, seed=1, output=output, length_sampling=SAMPLING)
        )
        batches = list(loader)
        for b in batches:
            if isinstance(b, GroupedBatch):
                trimmed += b.num_window_tokens
        got = rows_of(as_requests(batches))
        assert got.keys() == full.keys()
        cut = 0
        for rid, row in got.items():
            h = len(row[0])
            history = zip(row[:6], full[rid][:6], strict=True)
            assert all(part == whole[len(whole) - h :] for part, whole in history), "not the last h events"
            assert row[6:] == full[rid][6:], "targets and labels are never cut"
            cut += h < len(full[rid][0])
        assert cut > len(got) / 4, "sampling (mean 60 of up to 300) should shorten many histories"
    windows = sum(len(r[0]) for r in full.values())
    assert 0 < trimmed < windows, "grouped windows are trimmed to the events their requests keep"


def test_config_rejects_what_it_cannot_do(tables: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="output must be one of"):
        UserDayLoaderConfig(output="days")
    with pytest.raises(ValueError, match="token_budget is not supported"):
        UserDayLoaderConfig(token_budget=1_000)
    with pytest.raises(LoaderError, match="row groups for 99 ranks"):
        UserDayLoader(tables[0], UserDayLoaderConfig(rank=0, world_size=99))


def write_user_days(path: Path, table: pa.Table) -> str:
    props = WriterProperties(compression="ZSTD", max_row_group_size=SMALL.rows_per_group)
    write_deltalake(str(path), table, partition_by=["date"], mode="overwrite", writer_properties=props)
    return str(path)


def with_list_value(table: pa.Table, column: str, row: int, index: int, value: int) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row][index] = value
    i = table.schema.get_field_index(column)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


@pytest.mark.parametrize(
    ("column", "index", "value", "rule"),
    [
        ("hist_end", -1, 10**6, "hist_end > window_len"),
        ("hist_start", 0, -1, r"hist_start < 0 or hist_end < hist_start"),
        ("num_targets", 0, 99, "num_targets sum to"),
    ],
)
def test_inconsistent_offsets_are_refused_naming_file_and_row_group(
    tmp_path: Path, column: str, index: int, value: int, rule: str
) -> None:
    table, _ = synthetic_user_days(SMALL, "2026-01-01", 0)
    row = 13  # in the second row group (10 user-days each)
    table = with_list_value(table, column, row, index, value)
    path = write_user_days(tmp_path / "user_day_samples", table)
    with pytest.raises(UserDayOffsetsError, match=rf"\.parquet \(row group 1\): user \d+.*{rule}"):
        UserDayLoader(path, UserDayLoaderConfig(batch_size=4))


def test_offsets_out_of_order_are_refused_naming_file_and_row_group(tmp_path: Path) -> None:
    """The issue's "offsets out of order": request 0's slice ends after request 1's, every offset
    still inside the window."""
    table, _ = synthetic_user_days(SMALL, "2026-01-01", 0)
    rows = table.to_pylist()
    row = next(
        i
        for i, r in enumerate(rows)
        if i >= 10 and r["num_requests"] >= 3 and r["hist_end"][1] < r["window_len"]
    )
    table = with_list_value(table, "hist_end", row, 0, rows[row]["window_len"])
    path = write_user_days(tmp_path / "user_day_samples", table)
    user = rows[row]["user_id"]
    with pytest.raises(
        UserDayOffsetsError,
        match=rf"\.parquet \(row group 1\): user {user}, request 1 of the user-day: hist_end decreases",
    ):
        UserDayLoader(path, UserDayLoaderConfig(batch_size=4))


def test_a_slice_reaching_its_request_ts_ends_iteration_naming_the_row_group(tmp_path: Path) -> None:
    table, _ = synthetic_user_days(SMALL, "2026-01-01", 0)
    rows = table.to_pylist()
    row = next(i for i, r in enumerate(rows) if i >= 10 and r["hist_end"][0] > 0)
    last_event = rows[row]["hist_end"][0] - 1
    table = with_list_value(table, "hist_ts", row, last_event, rows[row]["request_ts"][0])
    path = write_user_days(tmp_path / "user_day_samples", table)
    loader = UserDayLoader(path, UserDayLoaderConfig(batch_size=4, shuffle=False))
    with pytest.raises(UserDayOffsetsError, match=r"\(row group 1\): request .* reaches its own request"):
        list(loader)
    with pytest.raises(RuntimeError, match="failed earlier"):
        list(loader)


def test_a_file_without_a_contract_column_is_named(tmp_path: Path) -> None:
    table, _ = synthetic_user_days(SMALL, "2026-01-01", 0)
    path = write_user_days(tmp_path / "user_day_samples", table.drop(["hist_end"]))
    missing = r"\.parquet: column 'hist_end' \(list<item: int32>\) is missing"
    with pytest.raises(SchemaMismatchError, match=missing):
        UserDayLoader(path)


@pytest.mark.spark
def test_a_table_built_by_the_job_loads_the_published_requests(spark: SparkSession, warehouse: str) -> None:
    """jobs/build_user_day_samples.py on a published request_samples day, then both loaders."""
    day = SMALL.dates[0]
    _, request_rows = synthetic_user_days(SMALL, day, 0)
    requests = REQUEST_SAMPLES.location(warehouse)
    write_deltalake(requests, request_rows, partition_by=["date"], mode="overwrite")
    build_user_day_samples.run(spark, BuildArgs(date=day, warehouse=warehouse, output=USER_DAY_SAMPLES))
    expected = rows_of(RequestLoader(requests, LoaderConfig(batch_size=16, seed=2)))
    user_days = USER_DAY_SAMPLES.location(warehouse)
    per_request = UserDayLoader(user_days, UserDayLoaderConfig(batch_size=16, seed=3))
    assert rows_of(as_requests(per_request)) == expected
    assert rows_of(as_requests(grouped(user_days, batch_size=4, seed=3))) == expected
