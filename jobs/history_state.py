"""Which version of the `user_history` state holds which day.

Each write of the state records `{"as_of_date": D}` in its commit's userMetadata, so the state as
of the end of day D is a Delta version found from the log; older days are read by time travel,
never by keeping a copy per day."""

from __future__ import annotations

import json
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.delta_io import table_exists
from schemas import USER_HISTORY


class StateOrderError(RuntimeError):
    """The state cannot serve the requested day (days must be built in order)."""


@dataclass(frozen=True)
class StateVersion:
    version: int
    as_of_date: str
    state_len: int | None  # events kept per user, when the writer recorded it


def state_metadata(as_of_date: str, **extra: object) -> str:
    return json.dumps({"as_of_date": as_of_date, **extra}, sort_keys=True)


def state_versions(spark: SparkSession, path: str) -> list[StateVersion]:
    """Versions that completed a day, oldest first (later writes of the same day win)."""
    if not table_exists(spark, path):
        return []
    history = DeltaTable.forPath(spark, path).history().select("version", "userMetadata")
    rows = history.orderBy("version").collect()
    out = []
    for r in rows:
        try:
            meta = json.loads(r["userMetadata"] or "{}")
        except json.JSONDecodeError:
            continue
        if isinstance(meta, dict) and "as_of_date" in meta:
            state_len = int(meta["state_len"]) if "state_len" in meta else None
            out.append(StateVersion(int(r["version"]), str(meta["as_of_date"]), state_len))
    return out


def find_as_of(versions: list[StateVersion], date: str) -> StateVersion | None:
    """The latest of `versions` whose state is as of the end of `date`, if any."""
    matches = [v for v in versions if v.as_of_date == date]
    return matches[-1] if matches else None


def version_as_of(spark: SparkSession, path: str, date: str) -> StateVersion | None:
    """The latest version whose state is as of the end of `date`, if any."""
    return find_as_of(state_versions(spark, path), date)


def read_state(spark: SparkSession, path: str, version: StateVersion | None) -> DataFrame:
    """The state at `version`; an empty state with the contract's schema for None."""
    if version is None:
        return spark.createDataFrame([], USER_HISTORY.spark_schema())
    return spark.read.format("delta").option("versionAsOf", version.version).load(path).select(
        *[F.col(c) for c in USER_HISTORY.column_names]
    )
