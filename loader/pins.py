"""Registering the table versions a training run reads, so table maintenance keeps them.

A run pins the version its snapshot resolved (RequestLoader.snapshot.version) before its first
epoch; jobs/maintain_tables.py then vacuums with a retention that keeps that version's files, and
refuses when it could not. The pins live in a small Delta table (schemas/training_pins.py), by
default `training_pins` beside the pinned table under the same warehouse root, local or on an
object store (`s3://` / `s3a://`: one spelling is stored, so a trainer reading `s3://` and
maintain_tables given `s3a://` agree); appends only (delta-rs), so concurrent runs never conflict
on an update (on S3, with a locking provider configured: docs/cluster.md)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from schemas.constants import DAY_MS
from schemas.training_pins import TRAINING_PINS
from storage.object_store import (
    ObjectStoreError,
    check_access,
    is_remote,
    local_path,
    storage_options_for,
    to_arrow_uri,
)

from .delta_read import read_delta
from .snapshot import SnapshotError

DEFAULT_PIN_DAYS = 30.0  # a run longer than this re-pins (or passes ttl_days)


def pins_location(table_path: str | Path) -> str:
    """The pins table of the warehouse `table_path` belongs to: `<root>/training_pins`."""
    local = table_key(table_path)
    root = local.rsplit("/", 1)[0] if "://" in local else str(Path(local).resolve().parent)
    return f"{root}/{TRAINING_PINS.name}"


def table_key(table_path: str | Path) -> str:
    """The form a table path is stored and compared in: absolute, without a trailing slash; the
    `s3://` spelling for an object store."""
    if is_remote(str(table_path)):
        return to_arrow_uri(str(table_path))
    local = local_path(str(table_path)).rstrip("/")
    return local if "://" in local else str(Path(local).resolve())


def _check_store(target: str) -> None:
    """Wrong keys or a dead endpoint: one SnapshotError naming the pins table and what to set."""
    if is_remote(target):
        try:
            check_access(target)
        except ObjectStoreError as e:
            raise SnapshotError(f"training pins {target}: {e}") from None


def register_pin(
    table_path: str | Path,
    version: int,
    run_id: str,
    ttl_days: float | None = DEFAULT_PIN_DAYS,
    pins_path: str | Path | None = None,
    now_ms: int | None = None,
) -> str:
    """Records that `run_id` reads `version` of `table_path` until now + ttl_days (None: until
    removed by hand); returns the pins table's path."""
    if version < 0:
        raise ValueError(f"version must be >= 0, got {version}")
    if not run_id:
        raise ValueError("run_id is empty: pass the training run's id or output folder")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    expires = None if ttl_days is None else now + int(ttl_days * DAY_MS)
    row = pa.table(
        {
            "table_path": [table_key(table_path)],
            "version": [int(version)],
            "run_id": [run_id],
            "pinned_at_ms": [now],
            "expires_at_ms": pa.array([expires], pa.int64()),
        },
        schema=TRAINING_PINS.arrow_schema(),
    )
    target = to_arrow_uri(str(pins_path)) if pins_path is not None else pins_location(table_path)
    _check_store(target)
    write_deltalake(target, row, mode="append", storage_options=storage_options_for(target))
    return target


def active_pins(
    table_path: str | Path, pins_path: str | Path | None = None, now_ms: int | None = None
) -> list[int]:
    """The versions of `table_path` pinned by an unexpired pin, ascending; [] without a pins table."""
    target = to_arrow_uri(str(pins_path)) if pins_path is not None else pins_location(table_path)
    _check_store(target)  # else a refused read would look like "no pins" and VACUUM would go on
    if not DeltaTable.is_deltatable(target, storage_options=storage_options_for(target)):
        return []
    now = int(time.time() * 1000) if now_ms is None else now_ms
    pins = read_delta(target).to_pylist()
    key = table_key(table_path)
    return sorted(
        {
            int(p["version"])
            for p in pins
            if p["table_path"] == key and (p["expires_at_ms"] is None or p["expires_at_ms"] > now)
        }
    )
