"""The quality gate's rules on tiny hand-made frames: the per-row checks, and the GX suites catch
each violation kind (one failing row per rule), conservation and the drift bands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from jobs.validate import Batch, run_suites
from pipelines.quality import conservation_frame, drift_frame, profile, with_row_checks
from schemas import IMPRESSIONS, QUARANTINE, REQUEST_SAMPLES
from schemas.quality import (
    ROW_CHECKS,
    SUITE_CONSERVATION,
    SUITE_DRIFT,
    SUITE_REQUEST_SAMPLES,
    GateThresholds,
    conservation_suite,
    drift_suite,
    request_samples_suite,
)

pytestmark = pytest.mark.spark

THRESHOLDS = GateThresholds(l_max=3, max_targets=2, max_label_rate_delta=0.2)
REQUEST_TS = 10_000


def _row(
    request_id: str, hist_ts: list[int | None] | None = None, targets: int = 2, **override: Any
) -> dict[str, Any]:
    hist = [1_000, 2_000] if hist_ts is None else hist_ts
    row: dict[str, Any] = {
        "request_id": request_id, "user_id": 1, "request_ts": REQUEST_TS, "date": "2026-03-01",
        "hist_len": len(hist), "hist_item_id": [7] * len(hist), "hist_author_id": [1] * len(hist),
        "hist_action": [1] * len(hist), "hist_ts": hist, "hist_watch_ms": [5] * len(hist),
        "hist_duration_ms": [9] * len(hist),
        "num_targets": targets, "tgt_item_id": [3] * targets, "tgt_author_id": [1] * targets,
        "tgt_position": list(range(targets)), "tgt_duration_ms": [9] * targets,
        **{name: [1, 0, 1][:targets] + [0] * max(targets - 3, 0)
           for name in ("label_finish", "label_skip", "label_like")},
        **{name: [0] * targets for name in ("label_comment", "label_share", "label_follow")},
    }
    row.update(override)
    return row


# One clean row, then one row breaking each rule (and only that rule), keyed by the rule.
BAD_ROWS: dict[str, dict[str, Any]] = {
    "null_user_id": _row("null_user_id", user_id=None),
    "duplicate_request_id": _row("ok"),
    "zero_targets": _row("zero_targets", targets=0),
    "too_many_targets": _row("too_many_targets", targets=3),
    "hist_longer_than_l_max": _row("hist_longer_than_l_max", hist_ts=[1, 2, 3, 4]),
    "qc_hist_lengths_match": _row("qc_hist_lengths_match", hist_len=1),
    "qc_target_lengths_match": _row("qc_target_lengths_match", tgt_position=[0]),
    "qc_no_null_elements": _row("qc_no_null_elements", hist_watch_ms=[5, None]),
    "qc_hist_ts_sorted": _row("qc_hist_ts_sorted", hist_ts=[2_000, 1_000]),
    # equal is leakage too
    "qc_hist_before_request": _row("qc_hist_before_request", hist_ts=[1_000, REQUEST_TS]),
    "qc_labels_binary": _row("qc_labels_binary", label_like=[1, 2]),
}


def _frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    # Nullable columns, as Delta reads them back, so the gate can see a null id.
    schema = T.StructType([T.StructField(f.name, f.dataType, True) for f in REQUEST_SAMPLES.spark_schema()])
    return spark.createDataFrame([tuple(r[c] for c in REQUEST_SAMPLES.column_names) for r in rows], schema)


def test_with_row_checks_flags_exactly_the_broken_rule(spark: SparkSession) -> None:
    rows = [_row("ok"), _row("empty_history", hist_ts=[]), _row("one_event", hist_ts=[5])]
    rows += [_row("ties", hist_ts=[5, 5])]
    rows += [r for k, r in BAD_ROWS.items() if k.startswith("qc_")]
    checked = _frame(spark, rows).transform(with_row_checks).collect()
    got = {r["request_id"]: {c for c in ROW_CHECKS if not r[c]} for r in checked}
    assert got == {
        "ok": set(), "empty_history": set(), "one_event": set(), "ties": set(),
        **{rule: {rule} for rule in BAD_ROWS if rule.startswith("qc_")},
    }


def _failures(result: dict[str, Any]) -> dict[tuple[str, str | None], Any]:
    def count(f: dict[str, Any]) -> Any:
        return f["observed"] if f["unexpected_count"] is None else f["unexpected_count"]

    return {(f["expectation"], f["column"]): count(f) for f in result["failed"]}


def _spark_rows(spark: SparkSession, rows: list[tuple[Any, ...]], schema: Any) -> DataFrame:
    return spark.createDataFrame(rows, schema)


def _impression(i: int) -> tuple[Any, ...]:
    return ("r", 1, i, 1, REQUEST_TS, i, 1, 1, 0, 0, 0, 0, 0, 0, "2026-03-01")


def test_suites_catch_each_violation_conservation_and_drift(spark: SparkSession, tmp_path: Path) -> None:
    bad = _frame(spark, [_row("ok"), *BAD_ROWS.values()])
    impressions = _spark_rows(spark, [_impression(i) for i in range(5)], IMPRESSIONS.spark_schema())
    quarantined = spark.createDataFrame([], QUARANTINE.spark_schema())
    # 4 targets + 0 quarantined != 5 read
    samples = _frame(spark, [_row("a", targets=2), _row("b", targets=2)])
    previous = _frame(
        spark, [_row(f"p{i}", targets=1, hist_ts=[1] * 3, hist_len=3, label_finish=[0]) for i in range(5)]
    )
    result = run_suites(
        tmp_path / "q",
        "violations",
        [
            Batch(request_samples_suite(), bad.transform(with_row_checks)),
            Batch(conservation_suite(), conservation_frame(impressions, samples, quarantined), small=True),
            Batch(drift_suite(), profile(samples).transform(drift_frame(profile(previous))), small=True),
        ],
        THRESHOLDS.parameters(),
    )
    assert _failures(result[SUITE_REQUEST_SAMPLES]) == {
        ("expect_column_values_to_not_be_null", "user_id"): 1,
        ("expect_column_values_to_be_unique", "request_id"): 2,
        ("expect_column_values_to_be_between", "num_targets"): 2,
        ("expect_column_values_to_be_between", "hist_len"): 1,
        **{("expect_column_values_to_be_in_set", rule): 1 for rule in ROW_CHECKS},
    }
    assert _failures(result[SUITE_CONSERVATION]) == {("expect_column_pair_values_to_be_equal", None): 1}
    # rows 2 vs 5 (0.4 < 0.5), mean hist_len 2 vs 3 (0.67, inside), finish/skip/like rates 0.5 vs
    # 0/1/1 (off by 0.5 > 0.2), the other tasks 0 vs 0
    assert _failures(result[SUITE_DRIFT]) == {
        ("expect_column_values_to_be_between", c): 1
        for c in ("row_count_ratio", "label_rate_delta_finish", "label_rate_delta_skip",
                  "label_rate_delta_like")  # fmt: skip
    }
    assert (tmp_path / "q" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()


def test_suites_pass_clean_data(spark: SparkSession, tmp_path: Path) -> None:
    samples = _frame(spark, [_row("a", targets=2), _row("b", targets=1, hist_ts=[]), _row("c", targets=2)])
    impressions = _spark_rows(spark, [_impression(i) for i in range(6)], IMPRESSIONS.spark_schema())
    duplicate = ("impressions", "duplicate", "{}", "2026-03-01")
    quarantined = _spark_rows(spark, [duplicate], QUARANTINE.spark_schema())
    result = run_suites(
        tmp_path / "q",
        "clean",
        [
            Batch(request_samples_suite(), samples.transform(with_row_checks)),
            Batch(conservation_suite(), conservation_frame(impressions, samples, quarantined), small=True),
            Batch(drift_suite(), profile(samples).transform(drift_frame(profile(samples))), small=True),
        ],
        THRESHOLDS.parameters(),
    )
    failed = {name: r["failed"] for name, r in result.items()}
    assert failed == {SUITE_REQUEST_SAMPLES: [], SUITE_CONSERVATION: [], SUITE_DRIFT: []}


def test_thresholds_reject_inconsistent_bands() -> None:
    with pytest.raises(ValueError, match=r"0 <= min_row_count_ratio <= max_row_count_ratio \(got 3.0, 2.0\)"):
        GateThresholds(min_row_count_ratio=3.0)
