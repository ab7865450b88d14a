"""Fault hook: named points where a job can be made to die or fail on purpose, to test recovery.

`RLB_FAULT=<job>:<point>[:<how>]` arms one point of one job; unset (production), every hook is a
no-op that reads one environment variable. The points, in the order a writing job reaches them:

    before_write      inputs read and checked, nothing written yet
    after_quarantine  the quarantine rows committed, the output not yet written
    mid_write         inside the output write: a task of the write kills the driver (or raises)
    after_commit      the output committed, its conservation check not yet run

`how` is `kill` (default: the driver process dies as with `kill -9`, exit status 137, no Python
cleanup, its JVM exits when its stdin closes), `raise` (an `InjectedFault`, for in-process tests),
or `barrier=<dir>` (at the point, wait until two processes have reached it, then go on: two runs
started together then write at the same moment, which makes a commit conflict reproducible;
`barrier3=<dir>` waits for three).

This is a hook in the jobs' own code, not a mock of Delta: what follows a kill (files written but
never committed, a commit never checked) is what a real crash leaves.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from pyspark.sql import DataFrame

ENV = "RLB_FAULT"
POINTS = ("before_write", "after_quarantine", "mid_write", "after_commit")
KILLED_STATUS = 137  # what a shell reports for a process ended by SIGKILL (128 + 9)


class InjectedFault(RuntimeError):
    """Raised at an armed point with `how` = raise: a stand-in for any failure at that point."""


def _armed(job: str, point: str) -> str | None:
    """`how` when RLB_FAULT arms this job's point, else None; refuses an unknown point."""
    spec = os.environ.get(ENV)
    if not spec:
        return None
    parts = spec.split(":", 2)
    if len(parts) < 2 or parts[1] not in POINTS:
        raise ValueError(
            f"{ENV}={spec!r}: expected <job>:<point>[:kill|raise|barrier=<dir>], point in {POINTS}"
        )
    if (parts[0], parts[1]) != (job, point):
        return None
    return parts[2] if len(parts) == 3 else "kill"


def _barrier(directory: str, parties: int = 2, timeout_s: float = 300.0) -> None:
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout_s
    while len(list(folder.iterdir())) < parties:
        if time.monotonic() > deadline:
            raise InjectedFault(f"{ENV} barrier {directory}: under {parties} runs arrived in {timeout_s} s")
        time.sleep(0.05)


def fault(job: str, point: str) -> None:
    """At `point` of `job`: nothing, unless RLB_FAULT arms it; then dies, raises or waits."""
    how = _armed(job, point)
    if how is None:
        return
    if how == "raise":
        raise InjectedFault(f"{ENV}: injected failure at {job}:{point}")
    if how.startswith("barrier"):
        name, _, directory = how.partition("=")
        parties = name.removeprefix("barrier")
        if not directory or not (parties == "" or parties.isdigit()):
            raise ValueError(f"{ENV}: expected barrier=<dir> or barrier<n>=<dir>, got {how!r}")
        _barrier(directory, int(parties or 2))
        return
    os._exit(KILLED_STATUS)


def fault_in_write(job: str, df: DataFrame) -> DataFrame:
    """`df`, or, when RLB_FAULT arms `job`:mid_write, `df` with a pass-through step whose tasks
    kill the driver process (or raise) once they have handed their rows to the file writer: the
    write dies with part files on disk that no commit names."""
    how = _armed(job, "mid_write")
    if how is None:
        return df
    driver = os.getpid()

    def die_after_rows(batches: Iterator[object]) -> Iterator[object]:
        yield from batches
        if how == "raise":
            raise InjectedFault(f"{ENV}: injected failure at {job}:mid_write")
        time.sleep(0.5)  # let the writer flush what it has: a crash leaves partial files
        os.kill(driver, signal.SIGKILL)

    return df.mapInArrow(die_after_rows, df.schema)  # type: ignore[arg-type]
