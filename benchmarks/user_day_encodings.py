"""What other Parquet encodings would do to user_day_samples' history bytes, BYTE_STREAM_SPLIT above
all: the window columns of a built warehouse rewritten per encoding, bytes read from the footers.

The project's stack cannot use BYTE_STREAM_SPLIT on integer columns: pyarrow 14 (pinned with
petastorm 0.13.1) neither writes nor reads it, Spark 4.0.1's writer has no setting for it and its
vectorized reader refuses it. So this script runs in its own environment with a newer pyarrow,
imports nothing else of the project but benchmarks/common.py, and reads the warehouse that
`python -m benchmarks.user_day_storage --workdir W` leaves behind:

    python3 -m venv /tmp/encodings-venv && /tmp/encodings-venv/bin/pip install "pyarrow>=17"
    .venv/bin/python -m benchmarks.user_day_storage --workdir /tmp/ud-wh --skip-movielens
    PYTHONPATH=. /tmp/encodings-venv/bin/python -m benchmarks.user_day_encodings /tmp/ud-wh

Each rewrite keeps the files' row groups, zstd level 3 (parquet-mr's default) and v2 pages, and is
checked to read back equal to the original. (a) is what the Spark job writes (dictionaries,
DELTA_BINARY_PACKED `hist_ts`), so (a) against the stored bytes shows the two writers' difference.
Writes benchmarks/results/user_day_encodings.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import RESULTS, write_result

# Copies of the contract's names: schemas/ imports pyspark, which this environment lacks;
# tests/test_user_day_loader.py checks that they equal schemas' HISTORY_COLUMNS and
# DELTA_ENCODED_COLUMNS.
HIST = ("hist_item_id", "hist_author_id", "hist_action", "hist_ts", "hist_watch_ms", "hist_duration_ms")
OFFSETS = ("hist_start", "hist_end")
DELTA_ENCODED = ("hist_ts",)
OPTIONS: dict[str, str | None] = {
    "a_as_the_job_writes": None,
    "b_byte_stream_split": "BYTE_STREAM_SPLIT",
    "c_delta_binary_packed": "DELTA_BINARY_PACKED",
    "d_plain": "PLAIN",
}
GOAL = 0.33  # issue 21, with the offsets counted (benchmarks/user_day_storage.py)


def live_files(table: Path) -> list[str]:
    """The data files of the table's latest version, from its JSON commits (no checkpoint at this size).

    This and column_bytes stand in for loader.snapshot.resolve_snapshot and loader.storage.column_bytes,
    which import petastorm and deltalake through the loader package."""
    log = table / "_delta_log"
    if list(log.glob("*.checkpoint.parquet")):
        raise SystemExit(f"{log} has a checkpoint; this script replays JSON commits only")
    live: set[str] = set()
    for commit in sorted(log.glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live.add(action["add"]["path"])
            if "remove" in action:
                live.discard(action["remove"]["path"])
    return sorted(str(table / unquote(p)) for p in live)


def column_bytes(files: list[str], columns: tuple[str, ...]) -> dict[str, int]:
    """Compressed bytes per top-level column, over every row group of the files."""
    out = dict.fromkeys(columns, 0)
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            for j in range(group.num_columns):
                top = group.column(j).path_in_schema.split(".")[0]
                if top in out:
                    out[top] += group.column(j).total_compressed_size
    return out


def rewrite(files: list[str], encoding: str | None, folder: str) -> dict[str, int]:
    """The history columns of `files` rewritten with `encoding` (None: as the job writes them)."""
    written = []
    for k, f in enumerate(files):
        table = pq.read_table(f, columns=list(HIST))
        meta = pq.ParquetFile(f).metadata
        rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        if encoding is None:
            use_dictionary: Any = [f"{c}.list.element" for c in HIST if c not in DELTA_ENCODED]
            encodings = {f"{c}.list.element": "DELTA_BINARY_PACKED" for c in DELTA_ENCODED}
        else:
            use_dictionary, encodings = False, {f"{c}.list.element": encoding for c in HIST}
        path = os.path.join(folder, f"{encoding or 'job'}-{k}.parquet")
        with pq.ParquetWriter(
            path, table.schema, compression="zstd", compression_level=3, data_page_version="2.0",
            use_dictionary=use_dictionary, column_encoding=encodings,
        ) as writer:  # fmt: skip
            start = 0
            for n in rows:  # the original row groups
                writer.write_table(table.slice(start, n), row_group_size=max(n, 1))
                start += n
        if not pq.read_table(path).equals(table):
            raise SystemExit(f"{path} does not read back equal to {f}")
        written.append(path)
    return column_bytes(written, HIST)


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(
        prog="benchmarks.user_day_encodings", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("workdir", help="the --workdir of a benchmarks.user_day_storage run")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    def table(name: str) -> Path:
        found = [Path(d) for d in glob.glob(f"{args.workdir}/**/{name}", recursive=True)
                 if Path(d, "_delta_log").is_dir()]  # fmt: skip
        if len(found) != 1:
            raise SystemExit(f"expected one {name} table under {args.workdir}, found {found}")
        return found[0]

    requests, user_days = live_files(table("request_samples")), live_files(table("user_day_samples"))
    request_bytes = sum(column_bytes(requests, HIST).values())
    stored = column_bytes(user_days, HIST)
    offsets = sum(column_bytes(user_days, OFFSETS).values())
    options: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, encoding in OPTIONS.items():
            print(f"rewriting with {encoding or 'the job encodings'} ...")
            options[name] = rewrite(user_days, encoding, folder)
    best = {c: min((o[c], name) for name, o in options.items()) for c in HIST}
    best_total = sum(min(stored[c], best[c][0]) for c in HIST)

    def ratio(history: int) -> float:
        return round((history + offsets) / request_bytes, 4)

    payload = {
        "workdir": args.workdir,
        "pyarrow": pa.__version__,
        "files": {"request_samples": len(requests), "user_day_samples": len(user_days)},
        "request_samples_history_bytes": request_bytes,
        "user_day_offset_bytes": offsets,
        "user_day_history_bytes": {"stored": stored, **options},
        "best_per_column": {c: best[c][1] if best[c][0] < stored[c] else "stored" for c in HIST},
        "ratios_with_offsets": {
            "stored": ratio(sum(stored.values())),
            **{name: ratio(sum(o.values())) for name, o in options.items()},
            "best_per_column": ratio(best_total),
        },
        "goal_at_most": GOAL,
    }
    path = write_result("user_day_encodings", payload, args.out or RESULTS / "user_day_encodings.json")
    print(json.dumps(payload["ratios_with_offsets"], indent=1))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
