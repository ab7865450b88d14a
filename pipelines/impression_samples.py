"""The flat one-row-per-impression layout, derived from request samples.

Built only to measure what request-level batching saves: the history is copied into each of the
m rows of its request."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from schemas import IMPRESSION_SAMPLES, REQUEST_SAMPLES
from schemas.fields import LABEL_COLUMN_NAMES
from schemas.request_samples import TARGET_SOURCE

from .checks import require_columns


def explode_to_impressions(request_samples: DataFrame) -> DataFrame:
    """request_samples (grain: request) -> impression_samples (grain: request_id, item_id)."""
    require_columns(request_samples, REQUEST_SAMPLES.column_names, "explode_to_impressions")
    per_target = (*TARGET_SOURCE, *LABEL_COLUMN_NAMES)
    shared = [c for c in REQUEST_SAMPLES.column_names if c not in per_target and c != "num_targets"]
    exploded = request_samples.select(*shared, F.inline(F.arrays_zip(*[F.col(c) for c in per_target])))
    renamed = exploded.select(
        *shared,
        *[F.col(tgt).alias(src) for tgt, src in TARGET_SOURCE.items()],
        *LABEL_COLUMN_NAMES,
    )
    return renamed.select(*IMPRESSION_SAMPLES.column_names)
