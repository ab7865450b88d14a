"""Input checks shared by the pipelines: fail early with what is missing and what is there."""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import DataFrame


class MissingColumnsError(ValueError):
    """A DataFrame lacks columns a transformation needs."""


def require_columns(df: DataFrame, required: Iterable[str], where: str) -> None:
    present = df.columns
    missing = [c for c in required if c not in present]
    if missing:
        raise MissingColumnsError(f"{where}: missing columns {missing}; present columns: {sorted(present)}")
