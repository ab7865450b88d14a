"""Writes checked after the fact and undone together: one day, one outcome.

Delta commits one table atomically but has no transaction across tables, and a job writes several
for a date: `quarantine`, then its output (or the `user_history` state). So a run orders its writes
(quarantine first, the output last, the conservation check on what was committed) and undoes them
with compensating RESTOREs: a `TableWrites` remembers, for each table a run writes, its version
before the run's first write to it and the version the run committed, and on failure restores
every table, the latest written first, to the version before, naming both versions in its message.

Used as a context manager, any exception after the first write (a failed check, a contract error,
a lost commit race, Ctrl-C) restores every table written and re-raises, so the tables of a failed
run agree with each other again: one day, one outcome. A table another writer committed to since
this run's own commit is not restored (that would undo the other run) and the message says so.

A process killed between two writes cannot run its restore: it leaves committed writes the next
run of the same date replaces (every write is an idempotent replaceWhere or MERGE of the date), and
that run's own check covers what the table then holds; a job that dies exits non-zero, so the
scheduler reruns it before anything downstream reads the date.

    with TableWrites(spark, "build_request_samples", "date 2026-01-05") as writes:
        writes.overwrite_where(quarantine_rows, QUARANTINE, q_path, q_predicate)
        row = writes.overwrite_verified(df, contract, path, predicate, measure, check)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Row, SparkSession

from jobs.delta_io import ensure_table, latest_version, overwrite_where
from jobs.faults import fault
from schemas import TableContract

log = logging.getLogger(__name__)

# Aggregates the rows just written (read back from the table) into one row of counts.
Measure = Callable[[DataFrame], Row | None]
# Says what is wrong with the counts (expected and actual values), or None when they hold.
Check = Callable[[Row], str | None]

# Delta's commit conflicts: another transaction committed to the same files or partition first.
_CONFLICTS: tuple[type[BaseException], ...] = (
    DeltaConcurrentModificationException,
    ConcurrentWriteException,
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    ConcurrentTransactionException,
    MetadataChangedException,
    ProtocolChangedException,
)


class ConservationError(RuntimeError):
    """What a job wrote does not account for what it read (rows lost, duplicated or invented).
    Raised after the tables the run wrote were restored; the message has both counts."""


class ConcurrentRunError(RuntimeError):
    """Another run wrote the same date of the same table at the same time and committed first.
    Raised (from None: the Delta/Py4J trace says nothing more) after this run's writes were undone;
    the message names the date, the table and what to do."""


def is_commit_conflict(error: BaseException) -> bool:
    """True for Delta's concurrent-modification errors, however PySpark surfaced them."""
    return isinstance(error, _CONFLICTS) or "ConcurrentModification" in type(error).__name__ or any(
        name in str(error)[:2000] for name in ("ConcurrentAppendException", "ConcurrentDeleteReadException",
                                               "ConcurrentDeleteDeleteException", "DELTA_CONCURRENT_")
    )  # fmt: skip


class TableWrites:
    """The Delta tables one job run writes, each with the version to restore if the run fails.

    `job` names the run for the fault hook (jobs/faults.py) and `what` (e.g. "date 2026-01-05")
    goes into the messages of errors that ask a person to act."""

    def __init__(self, spark: SparkSession, job: str = "", what: str = "") -> None:
        self._spark = spark
        self._job = job
        self._what = what
        # path -> (table name, version before the run, version this run last committed or None)
        self._before: dict[str, tuple[str, int, int | None]] = {}

    def __enter__(self) -> TableWrites:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        """On any exception: restores every table written (errors that already did are left alone)
        and adds which to the exception's notes; the exception goes on."""
        if error is None or getattr(error, "_rlb_restored", False) or not self._committed():
            return
        try:
            done = self.restore()
        except Exception as restore_error:  # the original error matters more; say both
            log.error("restoring after %r failed: %s", error, restore_error)
            error.add_note(f"restoring the tables written failed too: {restore_error}")
            return
        error.add_note(done)

    @property
    def versions_before(self) -> dict[str, int]:
        """Table name -> its version before this run's first write to it."""
        return {name: version for name, version, _ in self._before.values()}

    def _committed(self) -> bool:
        return any(mine is not None for _, _, mine in self._before.values())

    def track(self, contract: TableContract, path: str) -> None:
        """Notes the table's version before a write made elsewhere (a MERGE), first write only;
        call `committed` after that write."""
        if path not in self._before:
            ensure_table(self._spark, contract, path)
            self._before[path] = (contract.name, latest_version(self._spark, path), None)

    def committed(self, path: str) -> None:
        """Records the version this run just committed to `path` (tracked before)."""
        name, before, _ = self._before[path]
        self._before[path] = (name, before, latest_version(self._spark, path))

    @contextmanager
    def _write(self, contract: TableContract, path: str) -> Iterator[None]:
        """Tracks the table around one write and turns a lost commit race into ConcurrentRunError."""
        self.track(contract, path)
        try:
            yield
        except Exception as e:
            if not is_commit_conflict(e):
                raise
            what = self._what or "these rows"
            undone = self.restore()
            error = ConcurrentRunError(
                f"{self._job or 'job'}: another run wrote {what} of table {contract.name} at {path} at the "
                f"same time and committed first; this run changed nothing ({undone}). Wait for the other "
                f"run to finish and check its summary; rerun this one only if that run failed."
            )
            error._rlb_restored = True  # type: ignore[attr-defined]
            raise error from None
        self.committed(path)

    def overwrite_where(
        self,
        df: DataFrame,
        contract: TableContract,
        path: str,
        predicate: str | None,
        user_metadata: str | None = None,
    ) -> None:
        """jobs.delta_io.overwrite_where, after noting the table's version (first write only)."""
        with self._write(contract, path):
            overwrite_where(df, contract, path, predicate, user_metadata)

    def restore(self) -> str:
        """Restores every table this run committed to, the latest written first, unless another
        writer committed after it; says which, from and to what version."""
        done = []
        for path, (name, version, mine) in reversed(self._before.items()):
            if mine is None:
                continue
            now = latest_version(self._spark, path)
            if now != mine:
                log.warning("%s at %s: version %d is not this run's %d; not restored", name, path, now, mine)
                done.append(f"{name} not restored: another writer committed version {now} after {mine}")
                continue
            DeltaTable.forPath(self._spark, path).restoreToVersion(version)
            log.warning("restored %s at %s from version %d to version %d", name, path, mine, version)
            done.append(f"{name} restored to version {version}")
            self._before[path] = (name, version, None)
        return ", ".join(done) if done else "nothing written, nothing restored"

    def fail_if(self, failure: str | None, error: type[ConservationError] = ConservationError) -> None:
        """On a failure message: restores every table written, then raises `error` with both."""
        if failure is not None:
            raised = error(f"{failure}; {self.restore()}")
            raised._rlb_restored = True  # type: ignore[attr-defined]
            raise raised

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
        fault(self._job, "after_commit")
        row = measure(self._spark.read.format("delta").load(path).where(predicate))
        if row is None:
            self.fail_if(f"{contract.name} at {path}: no aggregate over {predicate}", error)
        assert row is not None
        self.fail_if(check(row), error)
        return row
