"""Publication through the gate on real Delta tables: build into staging -> validate -> publish.
A failed gate leaves request_samples untouched; publish refuses without a passing verdict for the
current staging version; a passing one is published with its provenance in the commit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import build_request_samples, build_user_history, publish, validate
from jobs.delta_io import table_exists
from jobs.gate import read_record
from jobs.validate import QualityGateError
from schemas import REQUEST_SAMPLES, REQUEST_SAMPLES_STAGING
from tests.test_build_jobs import DAYS, L_MAX, STATE_LEN

pytestmark = pytest.mark.spark

# The test logs carry a few bad rows per day on purpose (they are quarantined); loose drift bands
# because a day has ~10 requests.
GATE = ["--l-max", str(L_MAX), "--input-valid-share", "0.8", "--max-label-rate-delta", "1", "--min-row-count-ratio", "0.1",
        "--max-row-count-ratio", "10", "--min-mean-hist-len-ratio", "0.1", "--max-mean-hist-len-ratio", "10"]


def _published(spark: SparkSession, warehouse: str) -> tuple[int | None, dict[str, int]]:
    path = REQUEST_SAMPLES.location(warehouse)
    if not table_exists(spark, path):
        return None, {}
    version = int(DeltaTable.forPath(spark, path).history(1).first()["version"])  # type: ignore[index]
    counts = {r["date"]: int(r["count"]) for r in spark.read.format("delta").load(path).groupBy("date").count().collect()}
    return version, counts


def test_gate_blocks_then_publishes_with_provenance(spark: SparkSession, warehouse: str, logs_warehouse: Any) -> None:
    logs_warehouse()
    wh = ["--warehouse", warehouse]
    day = DAYS[1]
    build_user_history.main([*wh, "--date", DAYS[0], "--state-len", str(STATE_LEN)])
    built = build_request_samples.main([*wh, "--date", day, "--l-max", str(L_MAX)])
    assert built["table"] == REQUEST_SAMPLES_STAGING.name
    assert _published(spark, warehouse) == (None, {})  # the build alone publishes nothing

    with pytest.raises(publish.PublishRefusedError, match=f"no quality gate record for request_samples_staging date {day}"):
        publish.main([*wh, "--date", day])

    # An impossible threshold fails the gate: nothing is published, publish refuses.
    with pytest.raises(QualityGateError, match=rf"quality gate failed for request_samples_staging date {day} \(version 1"):
        validate.main([*wh, "--date", day, *GATE, "--max-targets", "1"])
    with pytest.raises(publish.PublishRefusedError, match="the quality gate failed for request_samples_staging version 1"):
        publish.main([*wh, "--date", day])
    assert _published(spark, warehouse) == (None, {})

    passed = validate.main([*wh, "--date", day, *GATE])
    assert passed["success"] is True and passed["staging_version"] == 1
    root = Path(warehouse) / "_quality"
    assert (root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    assert any((root / "gx" / "uncommitted" / "validations").rglob("*.json"))  # GX's own results

    out = publish.main([*wh, "--date", day])
    assert out["rows"] == built["requests"] == read_record(root, day).rows
    version, counts = _published(spark, warehouse)
    assert counts == {day: built["requests"]}
    meta = DeltaTable.forPath(spark, REQUEST_SAMPLES.location(warehouse)).history(1).first()["userMetadata"]  # type: ignore[index]
    assert json.loads(meta) | {"gate_record": None} == {"date": day, "staging_version": 1, "gate": "passed", "gate_record": None}
    staged = spark.read.format("delta").load(REQUEST_SAMPLES_STAGING.location(warehouse)).where(F.col("date") == day)
    live = spark.read.format("delta").load(REQUEST_SAMPLES.location(warehouse))
    assert sorted(map(tuple, staged.collect())) == sorted(map(tuple, live.collect()))

    # Staging changed after the verdict (a rebuild): the old verdict no longer publishes.
    build_request_samples.main([*wh, "--date", day, "--l-max", str(L_MAX)])
    with pytest.raises(publish.PublishRefusedError, match="validated request_samples_staging version 1 but the table is now at version 2"):
        publish.main([*wh, "--date", day])
    assert _published(spark, warehouse) == (version, counts)

