"""Registering the table versions a training run reads, so table maintenance keeps them.

A run pins the version its snapshot resolved (RequestLoader.snapshot.version) before its first
epoch; jobs/maintain_tables.py then vacuums with a retention that keeps that version's files, and
refuses when it could not. The pins live in a small Delta table (schemas/training_pins.py), by
default `training_pins` beside the pinned table under the same warehouse root; appends only
(delta-rs), so concurrent runs never conflict on an update."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from schemas.constants import DAY_MS
from schemas.training_pins import TRAINING_PINS

from .delta_read import read_delta
from .snapshot import _local_path

DEFAULT_PIN_DAYS = 30.0  # a run longer than this re-pins (or passes ttl_days)


def pins_location(table_path: str | Path) -> str:
    """The pins table of the warehouse `table_path` belongs to: `<root>/training_pins`."""
    local = _local_path(str(table_path)).rstrip("/")
    root = local.rsplit("/", 1)[0] if "://" in local else str(Path(local).resolve().parent)
    return f"{root}/{TRAINING_PINS.name}"


def table_key(table_path: str | Path) -> str:
    """The form a table path is stored and compared in: absolute, without a trailing slash."""
    local = _local_path(str(table_path)).rstrip("/")
    return local if "://" in local else str(Path(local).resolve())


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
    target = str(pins_path) if pins_path is not None else pins_location(table_path)
    write_deltalake(target, row, mode="append")
    return target


def active_pins(
    table_path: str | Path, pins_path: str | Path | None = None, now_ms: int | None = None
) -> list[int]:
    """The versions of `table_path` pinned by an unexpired pin, ascending; [] without a pins table."""
    target = str(pins_path) if pins_path is not None else pins_location(table_path)
    if not (Path(_local_path(target)) / "_delta_log").is_dir() and "://" not in target:
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
