"""The quality gate's record: what jobs/validate.py decided about one staged partition, and what
jobs/publish.py requires before it copies that partition into `request_samples`.

The record names the staging table version it validated. Publication is refused unless the
record passed *and* the staging table is still at that version, so a partition rebuilt (or
touched in any way) after its validation is never published on an old verdict. GX's own results
and the HTML Data Docs sit next to the records, under the quality root (`<warehouse>/_quality`).

On object storage (`s3a://` warehouse or `--quality-root`) the records live there, beside the
table they certify, so a validate on one machine and a publish on another agree. GX's file-backed
project needs a folder, so GX runs in a local mirror of the root (`.cache/quality/<bucket>/<prefix>`)
inside `quality_project`: the project stored beside the table (suites, earlier results) is pulled
into the mirror first, and what the run wrote (its results, its Data Docs pages, the index) is
pushed back after, so the site on the store lists every day, whichever machine validated it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from schemas import REQUEST_SAMPLES_STAGING
from storage.object_store import S3Settings, arrow_path, is_remote, split_uri

QUALITY_DIR = "_quality"
GX_DIR = "gx"  # GX's project folder under the quality root
_RENDERED = "uncommitted/data_docs/"  # pages: rendered per run, pushed, never pulled back
_CHECKOUT = Path(__file__).resolve().parent.parent
# GX's folder for remote roots. Imported from a --py-files zip (a driver on a cluster) the package's
# parent is the zip file itself: the mirror goes under the working directory instead.
MIRROR_DIR = (_CHECKOUT if _CHECKOUT.is_dir() else Path.cwd()) / ".cache" / "quality"


class GateRecordError(RuntimeError):
    """A gate record is missing or unreadable."""


def quality_root(warehouse: str, override: str | None = None) -> Path:
    """Where GX's project (suites, results, Data Docs) and the gate records live: `override`, or
    `<warehouse>/_quality`. For an `s3a://`/`s3://` root this is its local mirror (GX needs a
    folder); `remote_root` gives the URI back, and the records are read and written there."""
    root = override or f"{warehouse.rstrip('/')}/{QUALITY_DIR}"
    if is_remote(root):
        bucket, key = split_uri(root)
        return MIRROR_DIR / bucket / key
    if "://" in root:
        raise ValueError(
            f"quality root {root!r} is a URI of an unsupported store; pass a local or mounted folder, "
            "or an s3a:// URI, as --quality-root"
        )
    return Path(root).resolve()


def remote_root(root: Path) -> str | None:
    """The `s3://` URI whose local mirror `root` is (see quality_root); None for a local root."""
    try:
        rel = root.resolve().relative_to(MIRROR_DIR.resolve())
    except ValueError:
        return None
    return f"s3://{rel.as_posix()}"


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


def record_path(root: Path, date: str, table: str = REQUEST_SAMPLES_STAGING.name) -> Path | str:
    """The record's file, or its `s3://` URI when `root` mirrors a remote quality root."""
    rel = f"gate/{table}/date={date}.json"
    remote = remote_root(root)
    return f"{remote}/{rel}" if remote else root / rel


def _remote_fs(uri: str) -> pafs.FileSystem:
    return S3Settings.from_env().arrow_filesystem() if is_remote(uri) else pafs.LocalFileSystem()


def write_record(root: Path, record: GateRecord) -> Path | str:
    """Writes the record atomically, replacing an older verdict: temp file + rename locally, one
    PUT on object storage (an S3 object appears whole or not at all)."""
    path = record_path(root, record.date, record.table)
    text = json.dumps(asdict(record), indent=2, sort_keys=True)
    if isinstance(path, str):
        with _remote_fs(path).open_output_stream(arrow_path(path)) as out:
            out.write(text.encode())
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def _read_text(path: Path | str) -> str | None:
    if isinstance(path, Path):
        return path.read_text() if path.exists() else None
    try:
        with _remote_fs(path).open_input_stream(arrow_path(path)) as f:
            return bytes(f.read()).decode()
    except FileNotFoundError:
        return None


def read_record(root: Path, date: str, table: str = REQUEST_SAMPLES_STAGING.name) -> GateRecord:
    path = record_path(root, date, table)
    text = _read_text(path)
    if text is None:
        raise GateRecordError(
            f"no quality gate record for {table} date {date} at {path}: "
            f"run jobs/validate.py --date {date} first"
        )
    try:
        return GateRecord(**json.loads(text))
    except (json.JSONDecodeError, TypeError) as err:
        raise GateRecordError(
            f"gate record {path} is unreadable ({err}): rerun jobs/validate.py --date {date}"
        ) from err


def pull_quality_project(root: Path) -> int:
    """For a remote root: copies the GX project stored beside the table (suites, validation
    results; not the rendered pages) into the local mirror, so the Data Docs index this machine
    renders lists the days validated elsewhere too. Returns the number of files copied."""
    remote = remote_root(root)
    if remote is None:
        return 0
    fs = _remote_fs(remote)
    base = arrow_path(f"{remote}/{GX_DIR}")
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    copied = 0
    for info in infos:
        rel = info.path[len(base) + 1 :]
        if info.type != pafs.FileType.File or rel.startswith(_RENDERED):
            continue
        try:
            with fs.open_input_stream(info.path) as f:
                data = bytes(f.read())
        except (FileNotFoundError, IsADirectoryError):  # a folder marker some S3 servers list
            continue
        dest = root / GX_DIR / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        copied += 1
    return copied


def push_quality_project(root: Path, since: float) -> int:
    """For a remote root: uploads the mirror's GX files written or changed since `since` (epoch
    seconds: this run's results, Data Docs pages and index) beside the table. Returns the count."""
    remote = remote_root(root)
    if remote is None or not (root / GX_DIR).is_dir():
        return 0
    fs = _remote_fs(remote)
    pushed = 0
    for path in sorted((root / GX_DIR).rglob("*")):
        if path.is_file() and path.stat().st_mtime >= since:
            rel = path.relative_to(root).as_posix()
            with fs.open_output_stream(arrow_path(f"{remote}/{rel}")) as out:
                out.write(path.read_bytes())
            pushed += 1
    return pushed


@contextlib.contextmanager
def quality_project(root: Path) -> Iterator[Path]:
    """Around a GX run on `root` (a no-op for a local root): pull the stored project into the
    mirror, yield the folder GX works in, then push what the run wrote. A run that raises pushes
    nothing (its record, written after, is what publish reads)."""
    pull_quality_project(root)
    started = time.time()
    yield root
    push_quality_project(root, started)
