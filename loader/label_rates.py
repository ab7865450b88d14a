"""Base rate of each task's label in a snapshot, read from the label columns only.

The trainer starts each task's output bias at logit(rate): a head that starts at p = 0.5 for a task
that fires 2% of the time spends its first steps pushing the shared trunk to say "no", and on
multi-task data that drowned the history signal of the attention models (benchmarks/quality.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from loader.snapshot import DateBound, Snapshot, nonempty_snapshot
from schemas.fields import LABEL_COLUMN_NAMES
from storage.object_store import read_parquet


def label_rates(
    source: str | Path | Snapshot,
    version: int | None = None,
    date_from: DateBound = None,
    date_to: DateBound = None,
    *,
    max_targets: int = 1_000_000,
) -> tuple[float, ...]:
    """Mean of each label column (schemas.fields.TASKS order) over the snapshot's targets, reading
    whole files in snapshot order until at least `max_targets` targets are counted. `source`: the
    table's path, or a Snapshot resolved already (narrowed to the dates)."""
    hint = "pick dates that hold training data"
    snapshot = nonempty_snapshot(source, version, date_from, date_to, hint)
    positives = np.zeros(len(LABEL_COLUMN_NAMES))
    targets = 0
    for path in snapshot.files:
        columns = read_parquet(path, columns=list(LABEL_COLUMN_NAMES))
        for t, name in enumerate(LABEL_COLUMN_NAMES):
            values = pc.list_flatten(columns.column(name))
            positives[t] += pc.sum(values).as_py() or 0
        targets += len(pc.list_flatten(columns.column(LABEL_COLUMN_NAMES[0])))
        if targets >= max_targets:
            break
    return tuple(float(p) / max(targets, 1) for p in positives)
