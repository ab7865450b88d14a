"""`user_day_samples`: one row per (user, date), the day's history window stored once.

A user's requests of one day read nearly the same last-L_max events, shifted by the few events
between two requests. `request_samples` stores that history once per request; this table stores
the union once per user-day (the *window*) and, per request, the [hist_start, hist_end) slice of
the window that is exactly that request's `request_samples` history:

* window: `hist_*` arrays (the request_samples history columns, same names, same event order),
  from the first event of the day's first request's history to the last event before the day's
  last request, less any events no request reads (more than L_max events between two requests):
  the union of the day's histories; `window_len` events.
* per request, in request order (request_ts, request_id), arrays of length `num_requests`:
  `request_id`, `request_ts`, `hist_start`, `hist_end` (0 <= start <= end <= window_len,
  end - start <= L_max, starts and ends non-decreasing), `num_targets`.
* targets flat: the `tgt_*` and `label_*` arrays of every request concatenated in request order
  (`total_targets` values each); request j's targets are values[o_j : o_j + num_targets[j]] with
  o_j = num_targets[0] + ... + num_targets[j-1].

Why flat targets with counts instead of nested arrays: it is TorchRec's jagged layout
(values + lengths), Parquet decodes one flat list per column with no second repetition level,
petastorm and numpy handle it without object arrays, and offsets are derived from the counts
so they can never disagree with them. The loader checks sum(num_targets) == total_targets.

Every column is built from the request_samples contract's columns (never a second list)."""

from __future__ import annotations

import dataclasses

from .contract import INT, Column, TableContract, array_of
from .fields import DATE, HISTORY_COLUMNS, LABEL_COLUMN_NAMES
from .request_samples import REQUEST_SAMPLES, TARGET_COLUMNS


def _per_request(name: str, doc: str) -> Column:
    """request_samples' scalar column `name` as an array with one value per request of the day."""
    source = REQUEST_SAMPLES.column(name)
    return Column(name, array_of(source.dtype), doc=doc)


PER_REQUEST_COLUMNS: tuple[Column, ...] = (
    _per_request("request_id", "the day's requests, in (request_ts, request_id) order"),
    _per_request("request_ts", "request_ts of each request"),
    Column("hist_start", array_of(INT), doc="first window event of each request's history"),
    Column("hist_end", array_of(INT), doc="one past the last window event of each request's history"),
    _per_request("num_targets", "m of each request: how many of the flat target values are its"),
)
WINDOW_LEN = Column("window_len", INT, doc="events in the window (length of every hist_* array)")
NUM_REQUESTS = Column("num_requests", INT, doc="requests of the day (length of every per-request array)")
TOTAL_TARGETS = Column("total_targets", INT, doc="sum of num_targets (length of every tgt_*/label_* array)")
# Targets and labels of every request, concatenated in request order (same names as request_samples).
FLAT_TARGET_COLUMNS: tuple[Column, ...] = tuple(
    REQUEST_SAMPLES.column(c.name) for c in TARGET_COLUMNS
) + tuple(REQUEST_SAMPLES.column(n) for n in LABEL_COLUMN_NAMES)

USER_DAY_SAMPLES = TableContract(
    name="user_day_samples",
    version=1,
    doc="A user-day's history window once, with each request's slice of it and its targets.",
    columns=(
        REQUEST_SAMPLES.column("user_id"),
        DATE,
        WINDOW_LEN,
        *HISTORY_COLUMNS,
        NUM_REQUESTS,
        *PER_REQUEST_COLUMNS,
        TOTAL_TARGETS,
        *FLAT_TARGET_COLUMNS,
    ),
    partition_by=("date",),
    keys=("user_id", "date"),
    cluster_by=("user_id",),
)

# Window columns the Spark jobs write DELTA_BINARY_PACKED, without a dictionary
# (jobs/delta_io.PARQUET_WRITER_CONF), and synthetic/user_days.py with pyarrow (delta-rs 1.6's
# column properties do not reach list elements).
# hist_ts is sorted within a window and nearly every value is distinct, so its dictionary
# overflows and parquet-mr falls back to PLAIN: 3.7 bytes per event after zstd, where the delta
# encoding stores the gaps in 2.9 and decodes faster. request_samples keeps the dictionary: its
# repeated histories hit it (docs/user-day-samples.md, "Storage").
DELTA_ENCODED_COLUMNS: tuple[str, ...] = ("hist_ts",)

# Built here, gated (jobs/validate.py), then copied to user_day_samples by jobs/publish.py, like
# request_samples. Same columns by construction.
USER_DAY_SAMPLES_STAGING = dataclasses.replace(
    USER_DAY_SAMPLES,
    name="user_day_samples_staging",
    doc="Unpublished user_day_samples partitions awaiting the quality gate.",
)
