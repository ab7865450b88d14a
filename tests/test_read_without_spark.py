"""loader.read_delta: a Delta table read with pyarrow from its log (the pinned pyarrow 14 breaks
deltalake's own to_pyarrow_table), at a pinned version, with partition columns and date bounds;
and the docs/loader.md snippet that shows it, executed as written. No Spark: synthetic tables
are written with delta-rs. The deletion-vector refusal needs Spark (tests/test_maintenance.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loader import SnapshotError, active_pins, read_delta, register_pin, resolve_snapshot
from synthetic.tables import SyntheticSamples, write_synthetic_samples

REPO = Path(__file__).resolve().parent.parent
SMALL = SyntheticSamples(
    num_requests=60, dates=("2026-01-01", "2026-01-02"), l_max=50, mean_hist=10.0, rows_per_group=25
)


def snippet() -> str:
    """The python block under docs/loader.md's "Reading a table without Spark" heading."""
    text = (REPO / "docs" / "loader.md").read_text()
    section = text.split("## Reading a table without Spark", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/loader.md: no python block under 'Reading a table without Spark'"
    return match.group(1)


def test_docs_snippet_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_synthetic_samples("warehouse/request_samples", SMALL)
    scope: dict[str, object] = {}
    exec(compile(snippet(), "docs/loader.md", "exec"), scope)
    day = scope["day"]
    assert day.num_rows == 60  # type: ignore[attr-defined]
    assert set(day.column("date").to_pylist()) == {"2026-01-01"}  # type: ignore[attr-defined]


def test_reads_every_row_of_the_pinned_version_with_partition_columns(tmp_path: Path) -> None:
    path = tmp_path / "request_samples"
    v0 = write_synthetic_samples(path, SMALL)
    v1 = write_synthetic_samples(
        path, SyntheticSamples(num_requests=10, dates=("2026-01-03",), l_max=50), mode="append"
    )
    old, new = read_delta(path, version=v0), read_delta(path)
    assert (old.num_rows, new.num_rows) == (120, 130) and v1 == v0 + 1
    files = resolve_snapshot(path, v0).files
    direct = sum(pq.read_metadata(f).num_rows for f in files)
    assert old.num_rows == direct
    assert sorted(set(old.column("date").to_pylist())) == ["2026-01-01", "2026-01-02"]
    ids = read_delta(path, columns=["request_id", "date"], date_from="2026-01-02", date_to="2026-01-03")
    assert ids.column_names == ["request_id", "date"] and ids.num_rows == 70
    with pytest.raises(SnapshotError, match="latest version is 1"):
        read_delta(path, version=7)


def test_pins_are_registered_and_expire(tmp_path: Path) -> None:
    path = tmp_path / "request_samples"
    write_synthetic_samples(path, SMALL)
    assert active_pins(path) == []
    register_pin(path, 1, "expired", ttl_days=1, now_ms=0)
    register_pin(path, 0, "run-b", ttl_days=None)
    register_pin(tmp_path / "other", 5, "run-c")
    assert (tmp_path / "training_pins" / "_delta_log").is_dir()
    assert active_pins(path) == [0]
    assert active_pins(path, now_ms=1_000) == [0, 1]
    with pytest.raises(ValueError, match="run_id is empty"):
        register_pin(path, 0, "")
