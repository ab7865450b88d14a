"""The quality gate's record: what jobs/validate.py decided about one staged partition, and what
jobs/publish.py requires before it copies that partition into `request_samples`.

The record names the staging table version it validated. Publication is refused unless the
record passed *and* the staging table is still at that version, so a partition rebuilt (or
touched in any way) after its validation is never published on an old verdict. GX's own results
and the HTML Data Docs sit next to the records, under the quality root (`<warehouse>/_quality`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from schemas import REQUEST_SAMPLES_STAGING

QUALITY_DIR = "_quality"


class GateRecordError(RuntimeError):
    """A gate record is missing or unreadable."""


def quality_root(warehouse: str, override: str | None = None) -> Path:
    """Where GX's project (suites, results, Data Docs) and the gate records live: `override`, or
    `<warehouse>/_quality`. GX's file-backed context needs a local (or mounted) folder."""
    root = override or f"{warehouse.rstrip('/')}/{QUALITY_DIR}"
    if "://" in root:
        raise ValueError(
            f"quality root {root!r} is a URI; the gate keeps GX results and Data Docs on a local or mounted "
            f"folder: pass --quality-root /path/to/folder"
        )
    return Path(root).resolve()


@dataclass(frozen=True)
class GateRecord:
    table: str  # the staged table that was validated
    date: str
    staging_version: int  # Delta version of `table` that was read and validated
    success: bool
    suites: dict[str, dict[str, Any]]  # per suite: success, evaluated, failed expectations
    thresholds: dict[str, float | int]
    data_docs: str  # index.html of the Data Docs site
    rows: int = 0  # rows of the validated partition
    notes: list[str] = field(default_factory=list)


def record_path(root: Path, date: str, table: str = REQUEST_SAMPLES_STAGING.name) -> Path:
    return root / "gate" / table / f"date={date}.json"


def write_record(root: Path, record: GateRecord) -> Path:
    """Writes the record atomically (temp file + rename), replacing an older verdict."""
    path = record_path(root, record.date, record.table)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def read_record(root: Path, date: str, table: str = REQUEST_SAMPLES_STAGING.name) -> GateRecord:
    path = record_path(root, date, table)
    if not path.exists():
        raise GateRecordError(
            f"no quality gate record for {table} date {date} at {path}: "
            f"run jobs/validate.py --date {date} first"
        )
    try:
        return GateRecord(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise GateRecordError(
            f"gate record {path} is unreadable ({err}): rerun jobs/validate.py --date {date}"
        ) from err
