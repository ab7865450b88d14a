"""The request loader: exactly-once epochs equal to a pyarrow read, pinned versions, sampled
lengths, rank balance, resume, and failures that end iteration with an error (never a hang)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from deltalake import write_deltalake

from loader import (
    HISTORY_FIELDS,
    TARGET_FIELDS,
    CompactLoader,
    CompactLoaderConfig,
    DataFileError,
    LengthSampling,
    LoaderConfig,
    LoaderError,
    RequestBatch,
    RequestLoader,
    SchemaMismatchError,
    SnapshotError,
    batch_sizes,
    resolve_snapshot,
)
from loader.collate import RowGroupArrays, ShuffleBuffer, collate, stack_histories
from loader.petastorm_io import ArrowRowGroupWorker
from schemas import REQUEST_SAMPLES_COMPACT
from schemas.fields import LABEL_COLUMN_NAMES
from synthetic.tables import SyntheticSamples, write_synthetic_samples

pytestmark = pytest.mark.timeout(120)  # a hang is a failure, not a stuck CI run

SMALL = SyntheticSamples(
    num_requests=150,
    dates=("2026-01-01", "2026-01-02"),
    l_max=400,
    mean_hist=80,
    max_targets=6,
    rows_per_group=40,
)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("loader") / "request_samples")
    write_synthetic_samples(path, SMALL)
    return path


def rows_of(batches: Iterator[RequestBatch] | list[RequestBatch]) -> dict[str, dict[str, list[int]]]:
    """request_id -> field -> the real (unpadded) values, from loader batches."""
    out: dict[str, dict[str, list[int]]] = {}
    for b in batches:
        for i, rid in enumerate(b.request_id):
            assert rid not in out, f"request {rid} yielded twice"
            h, m = int(b.hist_len[i]), int(b.num_targets[i])
            row = {n: getattr(b, n)[i, :h].tolist() for n in HISTORY_FIELDS}
            row |= {n: getattr(b, n)[i, :m].tolist() for n in TARGET_FIELDS}
            row |= {n: b.labels[i, :m, t].to(torch.int64).tolist() for t, n in enumerate(LABEL_COLUMN_NAMES)}
            row["user_id"], row["request_ts"] = [int(b.user_id[i])], [int(b.request_ts[i])]
            assert not b.hist_item_id[i, h:].any(), "padding must be zero"
            out[rid] = row
    return out


def rows_of_pyarrow(path: str, version: int | None = None) -> dict[str, dict[str, list[int]]]:
    snap = resolve_snapshot(path, version)
    t = pa.concat_tables([pq.read_table(f) for f in snap.files])
    out = {}
    for r in t.to_pylist():
        row = {n: r[n] for n in (*HISTORY_FIELDS, *TARGET_FIELDS, *LABEL_COLUMN_NAMES)}
        row["user_id"], row["request_ts"] = [r["user_id"]], [r["request_ts"]]
        out[r["request_id"]] = row
    return out


def test_epoch_over_all_ranks_yields_every_request_once_equal_to_pyarrow(table: str) -> None:
    expected = rows_of_pyarrow(table)
    for world_size in (1, 2, 3):
        got: dict[str, dict[str, list[int]]] = {}
        counts = []
        for rank in range(world_size):
            loader = RequestLoader(
                table, LoaderConfig(batch_size=32, seed=5, rank=rank, world_size=world_size)
            )
            batches = list(loader)
            counts.append(len(batches))
            assert len(loader) == len(batches) == len(list(loader)), "len() is every epoch's batch count"
            assert all(b.hist_item_id.shape[1] == int(b.hist_len.max()) for b in batches), (
                "L is the batch maximum"
            )
            mine = rows_of(batches)
            assert not set(mine) & set(got), "a request reached two ranks"
            got |= mine
        assert len(set(counts)) == 1, f"ranks yield different batch counts: {counts}"
        assert got == expected


def test_batches_mix_users_and_the_same_seed_gives_the_same_batches(table: str) -> None:
    first = [b.request_id for b in RequestLoader(table, LoaderConfig(batch_size=32, seed=11))]
    again = [b.request_id for b in RequestLoader(table, LoaderConfig(batch_size=32, seed=11))]
    other = [b.request_id for b in RequestLoader(table, LoaderConfig(batch_size=32, seed=12))]
    assert first == again
    assert first != other
    # Rows are drawn across row groups and dates, not in the table's user-clustered order.
    assert any(len({rid[:10] for rid in ids}) > 1 for ids in first)
    ordered = [
        rid for b in RequestLoader(table, LoaderConfig(batch_size=32, shuffle=False)) for rid in b.request_id
    ]
    assert [rid for ids in first for rid in ids] != ordered


def test_evaluation_groups_similar_lengths_within_its_window_and_keeps_every_request(table: str) -> None:
    """Evaluation batches similar history lengths (fewer padded slots than file order) within
    `length_window` rows, and still yields each request once, unchanged."""

    def padded_slots(cfg: LoaderConfig) -> tuple[int, dict[str, dict[str, list[int]]]]:
        batches = list(RequestLoader(table, cfg))
        return sum(b.hist_item_id.numel() for b in batches), rows_of(batches)

    file_order, rows = padded_slots(LoaderConfig(batch_size=16, shuffle=False, group_by_length=False))
    small_window, rows_small = padded_slots(LoaderConfig(batch_size=16, shuffle=False, length_window=32))
    whole_table, rows_whole = padded_slots(LoaderConfig(batch_size=16, shuffle=False, length_window=10_000))
    assert whole_table < small_window < file_order
    assert rows == rows_small == rows_whole == rows_of_pyarrow(table)


def test_second_iteration_is_the_next_epoch_in_a_new_order(table: str) -> None:
    loader = RequestLoader(table, LoaderConfig(batch_size=32, seed=1))
    epoch0 = [rid for b in loader for rid in b.request_id]
    epoch1 = [rid for b in loader for rid in b.request_id]
    assert sorted(epoch0) == sorted(epoch1) and epoch0 != epoch1
    assert loader.state_dict()["epoch"] == 2


@pytest.mark.parametrize("sampling", [None, LengthSampling(l_min=8, l_max=400, mean=60)])
def test_resume_mid_epoch_continues_exactly(table: str, sampling: LengthSampling | None) -> None:
    cfg = LoaderConfig(batch_size=16, seed=3, length_sampling=sampling)
    full = list(RequestLoader(table, cfg))
    loader = RequestLoader(table, cfg)
    head = []
    for i, b in enumerate(loader):
        head.append(b)
        if i == 6:
            break
    state = loader.state_dict()
    assert state["sample_in_epoch"] == sum(b.size for b in head)
    resumed = RequestLoader(table, cfg)
    resumed.load_state_dict(state)
    tail = list(resumed)
    assert [b.request_id for b in head + tail] == [b.request_id for b in full]
    assert rows_of(head + tail) == rows_of(full)


def test_load_state_dict_refuses_a_different_snapshot_or_sharding(table: str) -> None:
    state = RequestLoader(table, LoaderConfig(seed=3)).state_dict()
    with pytest.raises(ValueError, match="state has seed=3, this loader has 4"):
        RequestLoader(table, LoaderConfig(seed=4)).load_state_dict(state)


def test_sampled_lengths_have_the_chosen_mean_and_are_multiples_of_8() -> None:
    s = LengthSampling(l_min=64, l_max=10_000, mean=2_000, alpha=0.2)
    assert s.beta < 1, "U-shaped"
    lengths = s.sample(np.random.default_rng(0), 200_000)
    assert abs(lengths.mean() - 2_000) < 40
    assert (lengths % 8 == 0).all() and lengths.min() >= 64 and lengths.max() <= 10_000
    # U-shaped: the density rises toward both ends (the full length is trained on too).
    middle = ((lengths > 5_000) & (lengths <= 6_000)).mean()
    assert (lengths <= 1_064).mean() > 5 * middle and (lengths > 9_000).mean() > middle
    with pytest.raises(ValueError, match="need l_min < mean < l_max"):
        LengthSampling(l_min=64, l_max=100, mean=200)


def test_training_histories_are_the_most_recent_suffix(table: str) -> None:
    full = rows_of(RequestLoader(table, LoaderConfig(batch_size=32, shuffle=False)))
    sampled = RequestLoader(
        table,
        LoaderConfig(batch_size=32, seed=2, length_sampling=LengthSampling(l_min=8, l_max=400, mean=40)),
    )
    cut = 0
    for rid, row in rows_of(sampled).items():
        n = len(row["hist_item_id"])
        for name in HISTORY_FIELDS:
            assert row[name] == full[rid][name][len(full[rid][name]) - n :], f"{rid} {name} is not a suffix"
        cut += n < len(full[rid]["hist_item_id"])
    assert cut > 50, "length sampling should shorten many histories"
    capped = rows_of(RequestLoader(table, LoaderConfig(batch_size=32, shuffle=False, max_history=16)))
    assert max(len(r["hist_ts"]) for r in capped.values()) == 16


def test_token_budget_balances_batches_by_history_tokens(table: str) -> None:
    budget = 600
    loader = RequestLoader(table, LoaderConfig(batch_size=64, seed=1, token_budget=budget))
    batches = list(loader)
    with pytest.raises(TypeError, match="token_budget has no len"):
        len(loader)
    assert all(b.num_history_tokens <= budget or b.size == 1 for b in batches)
    assert len({b.size for b in batches}) > 1
    assert sorted(rows_of(batches)) == sorted(rows_of_pyarrow(table))
    with pytest.raises(ValueError, match="token_budget needs world_size == 1"):
        LoaderConfig(token_budget=100, world_size=2)


def test_more_ranks_than_row_groups_is_refused_with_what_to_do(table: str) -> None:
    row_groups = sum(pq.read_metadata(f).num_row_groups for f in resolve_snapshot(table).files)
    with pytest.raises(
        LoaderError, match=f"has {row_groups} row groups for {row_groups + 1} ranks; use fewer ranks"
    ):
        RequestLoader(table, LoaderConfig(rank=0, world_size=row_groups + 1))


def test_batch_sizes_are_equal_in_count_across_ranks() -> None:
    assert batch_sizes([100, 37], 32, 0) == [25, 25, 25, 25]
    assert batch_sizes([100, 37], 32, 1) == [10, 9, 9, 9]
    with pytest.raises(LoaderError, match="rank 1 holds 2 requests but every rank must yield 4 batches"):
        batch_sizes([100, 2], 32, 1)


def test_pinned_old_version_reads_correctly_after_overwrite(tmp_path: Path) -> None:
    path = str(tmp_path / "rs")
    v0 = write_synthetic_samples(
        path, SyntheticSamples(num_requests=60, l_max=50, mean_hist=10, rows_per_group=30, seed=1)
    )
    old = rows_of_pyarrow(path, v0)
    v1 = write_synthetic_samples(
        path, SyntheticSamples(num_requests=90, l_max=50, mean_hist=10, rows_per_group=30, seed=2)
    )
    on_disk = {str(p) for p in Path(path).rglob("*.parquet")}
    assert len(on_disk) > len(resolve_snapshot(path).files), "the overwritten files are still in the folder"
    pinned = RequestLoader(path, LoaderConfig(batch_size=16), version=v0)
    assert pinned.version == v0
    assert rows_of(pinned) == old
    latest = RequestLoader(path, LoaderConfig(batch_size=16))
    assert latest.version == v1 and len(rows_of(latest)) == 90


def test_date_range_selects_partitions(table: str) -> None:
    loader = RequestLoader(table, LoaderConfig(batch_size=64), date_from="2026-01-02", date_to="2026-01-02")
    assert {rid[:10] for rid in rows_of(loader)} == {"2026-01-02"}
    with pytest.raises(LoaderError, match="has no data files for dates 2027-01-01"):
        RequestLoader(table, date_from="2027-01-01")
    # Bounds compare as strings, so an unpadded date would select the wrong days: refused.
    with pytest.raises(ValueError, match="date_to must be a date as YYYY-MM-DD.*'2026-1-1'"):
        RequestLoader(table, date_to="2026-1-1")
    with pytest.raises(ValueError, match="date_from 2026-01-02 is after date_to 2026-01-01"):
        RequestLoader(table, date_from="2026-01-02", date_to="2026-01-01")
    as_date = RequestLoader(table, LoaderConfig(batch_size=64), date_to=dt.date(2026, 1, 1))
    assert {rid[:10] for rid in rows_of(as_date)} == {"2026-01-01"}


def test_snapshot_errors_say_what_to_pass(table: str) -> None:
    with pytest.raises(SnapshotError, match="has no _delta_log folder; pass the table's own folder"):
        RequestLoader(str(Path(table).parent))
    with pytest.raises(
        LoaderError, match="at version 99; the latest version is 0"
    ):  # a SnapshotError is a LoaderError
        RequestLoader(table, version=99)
    with pytest.raises(ValueError, match="version must be >= 0"):
        RequestLoader(table, version=-1)


def copy_table(src: str, dst: Path) -> str:
    import shutil

    shutil.copytree(src, dst)
    return str(dst)


def test_missing_data_file_is_named(table: str, tmp_path: Path) -> None:
    path = copy_table(table, tmp_path / "t")
    victim = resolve_snapshot(path).files[0]
    os.remove(victim)
    with pytest.raises(DataFileError, match=f"data file {victim} of .* is missing"):
        RequestLoader(path)


def test_corrupt_data_file_is_named(table: str, tmp_path: Path) -> None:
    path = copy_table(table, tmp_path / "t")
    victim = resolve_snapshot(path).files[-1]
    Path(victim).write_bytes(b"not parquet at all")
    with pytest.raises(DataFileError, match=f"data file {victim} cannot be read as Parquet"):
        RequestLoader(path)


def test_file_removed_during_iteration_ends_with_an_error_naming_it(table: str, tmp_path: Path) -> None:
    path = copy_table(table, tmp_path / "t")
    loader = RequestLoader(path, LoaderConfig(batch_size=8, shuffle=False, workers=1, prefetch=1))
    for f in resolve_snapshot(path).files[1:]:
        os.remove(f)
    with pytest.raises(DataFileError, match="opening the data files of .* failed: .*part-.*parquet"):
        for _ in loader:
            pass
    with pytest.raises(RuntimeError, match="this loader failed earlier"):
        iter(loader).__next__()


def test_schema_that_does_not_match_the_contract_is_named(table: str, tmp_path: Path) -> None:
    good = pq.read_table(resolve_snapshot(table).files[0])
    t = good.set_column(
        good.schema.get_field_index("hist_len"), "hist_len", good.column("hist_len").cast(pa.int64())
    )
    write_deltalake(str(tmp_path / "bad"), t)
    with pytest.raises(
        SchemaMismatchError, match="column 'hist_len' has type int64, the contract says int32"
    ):
        RequestLoader(str(tmp_path / "bad"))
    write_deltalake(str(tmp_path / "missing"), good.drop(["hist_ts"]))
    with pytest.raises(SchemaMismatchError, match="column 'hist_ts' .* is missing"):
        RequestLoader(str(tmp_path / "missing"))


def test_worker_exception_ends_iteration_without_hanging(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: ArrowRowGroupWorker, *args: object) -> None:
        raise MemoryError("simulated worker failure")

    monkeypatch.setattr(ArrowRowGroupWorker, "_parquet_file", boom)
    with pytest.raises(DataFileError, match=r"reading row group \d+ of .*\.parquet failed: MemoryError"):
        list(RequestLoader(table, LoaderConfig(batch_size=8, workers=2)))


def test_batch_forms() -> None:
    h = torch.tensor([3, 1])
    hist = torch.tensor([[1, 2, 3], [4, 0, 0]])
    zeros = torch.zeros(2, 2, dtype=torch.int64)
    batch = RequestBatch(
        ["a", "b"],
        torch.tensor([1, 2]),
        torch.tensor([9, 9]),
        h,
        *(hist.clone() for _ in HISTORY_FIELDS),
        torch.tensor([2, 1]),
        *(zeros.clone() for _ in TARGET_FIELDS),
        torch.zeros(2, 2, 6),
    )
    packed = batch.packed_history()
    assert packed.offsets.tolist() == [0, 3, 4]
    assert packed.values["hist_item_id"].tolist() == [1, 2, 3, 4]
    cut = batch.with_history_suffix(2)
    assert cut.hist_item_id.tolist() == [[2, 3], [4, 0]] and cut.hist_len.tolist() == [2, 1]
    assert batch.target_mask.tolist() == [[True, True], [True, False]]


# -- a resolved snapshot, and what both loaders share (loader/epochs.py) ------------------------------
def test_a_resolved_snapshot_is_narrowed_by_date_without_resolving_again(table: str) -> None:
    snapshot = resolve_snapshot(table)
    day = RequestLoader(snapshot, date_from="2026-01-02", date_to="2026-01-02")
    assert day.snapshot == resolve_snapshot(table, date_from="2026-01-02", date_to="2026-01-02")
    assert day.snapshot.files and len(day.snapshot.files) < len(snapshot.files)
    assert RequestLoader(snapshot, version=snapshot.version).snapshot == snapshot
    with pytest.raises(ValueError, match=f"the snapshot given is version {snapshot.version} of .*, not 7"):
        RequestLoader(snapshot, version=7)
    with pytest.raises(LoaderError, match="has no data files for dates 2026-02-01 .. \\+inf"):
        RequestLoader(snapshot, date_from="2026-02-01")


@pytest.fixture(scope="module")
def compact_table(table: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A request_samples_compact table without summaries (null summary columns), written with
    delta-rs from the synthetic table: enough for what the loaders share."""
    files = resolve_snapshot(table).data_files
    parts = [pq.read_table(f.path) for f in files]
    samples = pa.concat_tables(parts)
    schema = REQUEST_SAMPLES_COMPACT.arrow_schema()
    n = samples.num_rows
    dates = [f.partition["date"] for f, part in zip(files, parts, strict=True) for _ in range(part.num_rows)]
    extra = {"model_version": pa.array(["v0"] * n), "source_hist_len": samples.column("hist_len"),
             "date": pa.array(dates)}  # fmt: skip
    columns = [
        samples.column(f.name) if f.name in samples.schema.names else extra.get(f.name, pa.nulls(n, f.type))
        for f in schema
    ]
    path = str(tmp_path_factory.mktemp("compact") / "request_samples_compact")
    write_deltalake(path, pa.table(columns, schema=schema), partition_by=["date"])
    return path


@pytest.mark.parametrize("kind", ["request", "compact"])
def test_the_context_manager_stops_an_iteration_in_progress(
    table: str, compact_table: str, kind: str
) -> None:
    make = (
        (lambda: RequestLoader(table, LoaderConfig(batch_size=8, workers=1, prefetch=1)))
        if kind == "request"
        else (lambda: CompactLoader(compact_table, CompactLoaderConfig(batch_size=8)))
    )
    with make() as loader:
        assert isinstance(loader, RequestLoader | CompactLoader)
        it = iter(loader)
        assert next(it).size == 8
        with pytest.raises(RuntimeError, match="already being iterated"):
            next(iter(loader))
    with pytest.raises(LoaderError, match="the loader was closed during epoch 0"):
        next(it)
    with pytest.raises(RuntimeError, match="this loader failed earlier"):
        next(iter(loader))
    assert make().state_dict()["sample_in_epoch"] == 0
    assert loader.state_dict()["sample_in_epoch"] == 8  # what was handed out before the close


def test_compact_loader_refuses_to_iterate_again_after_a_failure(compact_table: str, tmp_path: Path) -> None:
    path = copy_table(compact_table, tmp_path / "t")
    loader = CompactLoader(path, CompactLoaderConfig(batch_size=8, shuffle=False))
    os.remove(resolve_snapshot(path).files[-1])
    with pytest.raises(FileNotFoundError):
        list(loader)
    with pytest.raises(RuntimeError, match="this loader failed earlier"):
        iter(loader).__next__()


# -- the shuffle buffer and the collate (loader/collate.py) ---------------------------------------


def _group(source: str, lengths: list[int]) -> RowGroupArrays:
    """A row group of len(lengths) rows whose history is 1, 2, ... (hist_len events each)."""
    n = len(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = {name: np.arange(1, offsets[-1] + 1, dtype=np.int64) for name in HISTORY_FIELDS}
    t_off = np.arange(n + 1)
    values |= {name: np.arange(n, dtype=np.int64) for name in TARGET_FIELDS}
    values |= {name: np.ones(n, np.int32) for name in LABEL_COLUMN_NAMES}
    scalars = {"user_id": np.arange(n), "request_ts": np.arange(n), "hist_len": np.asarray(lengths),
               "num_targets": np.ones(n, np.int64)}  # fmt: skip
    names = (*HISTORY_FIELDS, *TARGET_FIELDS, *LABEL_COLUMN_NAMES)
    offsets_by = {name: offsets if name in HISTORY_FIELDS else t_off for name in names}
    return RowGroupArrays(source, n, [f"{source}-{i}" for i in range(n)], scalars, offsets_by, values)


def test_shuffle_buffer_draws_every_row_once_and_uniformly() -> None:
    rows = set()
    buffer = ShuffleBuffer(100, np.random.default_rng(0))
    for g in range(4):
        buffer.add(_group(f"g{g}", [1] * 60))
        while buffer.full:
            rows.update((view.source, r) for view, r in buffer.take(7))
    while len(buffer):
        rows.update((view.source, r) for view, r in buffer.take(7))
    assert len(rows) == 240
    # Row 0 of the first group is in the first batch of 10 drawn from 100 rows with p = 0.1.
    hits = 0
    for seed in range(2_000):
        buffer = ShuffleBuffer(100, np.random.default_rng(seed))
        buffer.add(_group("a", [1] * 50))
        buffer.add(_group("b", [1] * 50))
        hits += any(view.source == "a" and r == 0 for view, r in buffer.take(10))
    assert 200 - 4 * 13 < hits < 200 + 4 * 13  # binomial(2000, 0.1): sd 13.4


def test_shuffle_buffer_by_length_takes_the_shortest_rows_held_in_insertion_order() -> None:
    rng = np.random.default_rng(1)
    buffer = ShuffleBuffer(50, None, by_length=True)
    held: list[tuple[int, str, int]] = []  # (length, group, row) in insertion order
    taken: list[tuple[str, int]] = []
    for g in range(5):
        lengths = rng.integers(0, 6, 40).tolist()
        buffer.add(_group(f"g{g}", lengths))
        held += [(n, f"g{g}", r) for r, n in enumerate(lengths)]
        while buffer.full:
            batch = buffer.take(16)
            expected = sorted(held, key=lambda x: x[0])[:16]  # stable: ties in insertion order
            assert sorted((v.source, r) for v, r in batch) == sorted((g_, r) for _, g_, r in expected)
            held = [h for h in held if h not in expected]
            taken += [(v.source, r) for v, r in batch]
    assert len(taken) + len(held) == 200


def test_collate_of_stacked_history_fields_equals_the_field_by_field_collate() -> None:
    plain = [_group("a", [3, 0, 5, 2]), _group("b", [1, 4])]
    stacked = [_group("a", [3, 0, 5, 2]), _group("b", [1, 4])]
    for group in stacked:
        group.history_stacks = stack_histories(group.values)
    keep = np.array([2, 9, 3, 1, 9, 3])
    for cut in (None, keep):
        one = collate(
            [(plain[0], 0), (plain[0], 1), (plain[0], 2), (plain[0], 3), (plain[1], 0), (plain[1], 1)], cut
        )
        two = collate(
            [
                (stacked[0], 0),
                (stacked[0], 1),
                (stacked[0], 2),
                (stacked[0], 3),
                (stacked[1], 0),
                (stacked[1], 1),
            ],
            cut,
        )
        for name, tensor in one.tensors().items():
            assert torch.equal(tensor, getattr(two, name)), name
        assert two.hist_ts[2].tolist() == ([4, 5, 6, 7, 8] if cut is None else [6, 7, 8])
