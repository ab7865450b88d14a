"""Writes checked after the fact and undone together: write -> re-aggregate -> restore on failure.

One replaceWhere commit is atomic, but a job also checks what it wrote (conservation: every row
read is written or quarantined, exactly once) and must then leave the table as it was. A
`TableWrites` remembers, for each table a run writes, its version before the run's first write to
it; a failed check restores every one of them and raises a `ConservationError` that says so.

Tables written through the same `TableWrites` share one outcome: the jobs pass only their output
today (the quarantine rows of a failed run stay); writing the quarantine through it too makes a
failed check undo both, one day one outcome.

    writes = TableWrites(spark)
    row = writes.overwrite_verified(df, contract, path, predicate, measure, check)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Row, SparkSession

from jobs.delta_io import ensure_table, latest_version, overwrite_where
from schemas import TableContract

log = logging.getLogger(__name__)

# Aggregates the rows just written (read back from the table) into one row of counts.
Measure = Callable[[DataFrame], Row | None]
# Says what is wrong with the counts (expected and actual values), or None when they hold.
Check = Callable[[Row], str | None]


class ConservationError(RuntimeError):
    """What a job wrote does not account for what it read (rows lost, duplicated or invented).
    Raised after the tables the run wrote were restored; the message has both counts."""


class TableWrites:
    """The Delta tables one job run writes, each with the version to restore if a check fails."""

    def __init__(self, spark: SparkSession) -> None:
        self._spark = spark
        self._before: dict[str, tuple[str, int]] = {}  # path -> (table name, version before the run)

    @property
    def versions_before(self) -> dict[str, int]:
        """Table name -> its version before this run's first write to it."""
        return {name: version for name, version in self._before.values()}

    def overwrite_where(
        self,
        df: DataFrame,
        contract: TableContract,
        path: str,
        predicate: str | None,
        user_metadata: str | None = None,
    ) -> None:
        """jobs.delta_io.overwrite_where, after noting the table's version (first write only)."""
        if path not in self._before:
            ensure_table(self._spark, contract, path)
            self._before[path] = (contract.name, latest_version(self._spark, path))
        overwrite_where(df, contract, path, predicate, user_metadata)

    def restore(self) -> str:
        """Restores every table written, the latest written first; says which, to what version."""
        done = []
        for path, (name, version) in reversed(self._before.items()):
            DeltaTable.forPath(self._spark, path).restoreToVersion(version)
            log.warning("restored %s at %s to version %d", name, path, version)
            done.append(f"{name} restored to version {version}")
        return ", ".join(done) if done else "nothing written, nothing restored"

    def fail_if(self, failure: str | None, error: type[ConservationError] = ConservationError) -> None:
        """On a failure message: restores every table written, then raises `error` with both."""
        if failure is not None:
            raise error(f"{failure}; {self.restore()}")

    def overwrite_verified(
        self,
        df: DataFrame,
        contract: TableContract,
        path: str,
        predicate: str,
        measure: Measure,
        check: Check,
        user_metadata: str | None = None,
        error: type[ConservationError] = ConservationError,
    ) -> Row:
        """Replaces the rows matching `predicate` with `df`, aggregates what the table now holds
        there with `measure`, and returns that row if `check` passes; otherwise restores every
        table this run wrote and raises `error`."""
        self.overwrite_where(df, contract, path, predicate, user_metadata)
        row = measure(self._spark.read.format("delta").load(path).where(predicate))
        if row is None:
            raise error(f"{contract.name} at {path}: no aggregate over {predicate}; {self.restore()}")
        self.fail_if(check(row), error)
        return row
