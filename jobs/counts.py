"""Counts the jobs log and check, computed with one Spark aggregation each."""

from __future__ import annotations

from collections import Counter

from pyspark.sql import DataFrame

from pipelines.validity import REJECT_REASON


def reason_counts(tagged: DataFrame) -> Counter[str | None]:
    """Rows per reject reason of a tagged input (None: valid rows); empty for an empty input."""
    rows = tagged.groupBy(REJECT_REASON).count().collect()
    return Counter({r[REJECT_REASON]: int(r["count"]) for r in rows})
