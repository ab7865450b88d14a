"""Numbers the tables' contracts share: time units (every timestamp is UTC epoch milliseconds)
and the default history length L_max.

One home so that a day or an L_max is typed once: the generator, the jobs, the loader, the
trainer and the tests import them from here. Pure Python (no pyspark, no pyarrow), though
importing it still runs `schemas/__init__.py`, which does import pyspark: the Airflow DAG
therefore repeats DEFAULT_L_MAX as a literal (tests/test_schemas.py checks that the two agree).
"""

from __future__ import annotations

import datetime as dt
from typing import overload

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Most recent events kept per history (the builds' --l-max, the user_history state length, the
# trainer's longest sampled length and the serving length).
DEFAULT_L_MAX = 10_000


def day_start_ms(day: str) -> int:
    """Milliseconds since the epoch of 00:00 UTC on `day` (YYYY-MM-DD)."""
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * SECOND_MS)


def utc_day(ts_ms: int) -> str:
    """The UTC day (YYYY-MM-DD) of an epoch-milliseconds timestamp: the inverse of day_start_ms."""
    return dt.datetime.fromtimestamp(ts_ms / SECOND_MS, dt.UTC).date().isoformat()


@overload
def iso_date(value: str | dt.date, name: str = "date") -> str: ...
@overload
def iso_date(value: None, name: str = "date") -> None: ...
def iso_date(value: str | dt.date | None, name: str = "date") -> str | None:
    """A partition date as YYYY-MM-DD, from a string or a date (None stays None: an open bound).
    Partitions are compared as strings, so an unpadded "2026-1-9" would select 2026-01-10 too:
    anything but a date is a ValueError naming the argument."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    try:
        return value.isoformat() if isinstance(value, dt.date) else dt.date.fromisoformat(value).isoformat()
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a date as YYYY-MM-DD (or a datetime.date), got {value!r}") from e
