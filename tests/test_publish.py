"""Publication through the gate on real Delta tables: build into staging -> validate -> publish.
A failed gate leaves request_samples untouched; publish refuses without a passing verdict for the
current staging version; a passing one is published with its provenance in the commit."""

from __future__ import annotations

import dataclasses
import json
import runpy
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import build_request_samples, build_user_history, publish, runner, validate
from jobs.delta_io import table_exists
from jobs.gate import read_record, record_path
from schemas import REQUEST_SAMPLES, REQUEST_SAMPLES_STAGING
from schemas.quality import GateThresholds
from tests.test_build_jobs import DAYS, L_MAX, STATE_LEN

STAGING = REQUEST_SAMPLES_STAGING.name

pytestmark = pytest.mark.spark

# The test logs carry a few bad rows per day on purpose (they are quarantined); loose drift bands
# because a day has ~10 requests.
GATE = GateThresholds(
    l_max=L_MAX,
    input_valid_share=0.8,
    max_label_rate_delta=1,
    min_row_count_ratio=0.1,
    max_row_count_ratio=10,
    min_mean_hist_len_ratio=0.1,
    max_mean_hist_len_ratio=10,
)
GATE_FLAGS = ["--l-max", str(L_MAX), "--input-valid-share", "0.8", "--max-label-rate-delta", "1",
              "--min-row-count-ratio", "0.1", "--max-row-count-ratio", "10",
              "--min-mean-hist-len-ratio", "0.1", "--max-mean-hist-len-ratio", "10"]  # fmt: skip


def _published(spark: SparkSession, warehouse: str) -> tuple[int | None, dict[str, int]]:
    path = REQUEST_SAMPLES.location(warehouse)
    if not table_exists(spark, path):
        return None, {}
    version = int(DeltaTable.forPath(spark, path).history(1).first()["version"])  # type: ignore[index]
    rows = spark.read.format("delta").load(path).groupBy("date").count().collect()
    counts = {r["date"]: int(r["count"]) for r in rows}
    return version, counts


def _command_line(job: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Runs `python -m jobs.<job> argv` in this process (its `__main__` block, on the test session):
    the exit status and the lines it wrote to stderr."""
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is imported already
        mp.setattr(sys, "argv", [job, *argv])
        with pytest.raises(SystemExit) as exited:
            runpy.run_module(f"jobs.{job}", run_name="__main__")
    return int(exited.value.code or 0), capsys.readouterr().err.splitlines()


def test_validate_and_publish_flags_map_to_args() -> None:
    """The command lines the DAG runs: threshold flags and --thresholds-json into GateThresholds."""
    day = DAYS[1]
    got = validate.parse_args(["--warehouse", "wh", "--date", day, *GATE_FLAGS])
    assert got == validate.Args(date=day, warehouse="wh", thresholds=GATE)
    as_json = validate.parse_args(["--date", day, *GATE_FLAGS, "--thresholds-json", '{"max_targets": 1}'])
    assert as_json.thresholds == dataclasses.replace(GATE, max_targets=1)
    got_publish = publish.parse_args(["--date", day, "--quality-root", "q"])
    assert got_publish == publish.Args(date=day, quality_root="q")


def test_gate_blocks_then_publishes_with_provenance(
    spark: SparkSession,
    warehouse: str,
    logs_warehouse: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logs_warehouse()
    monkeypatch.setattr(runner, "get_spark", lambda: spark)  # the command lines below use this session
    day = DAYS[1]
    boot = build_user_history.Args(date=DAYS[0], warehouse=warehouse, state_len=STATE_LEN)
    build_user_history.run(spark, boot)
    stage = build_request_samples.Args(date=day, warehouse=warehouse, l_max=L_MAX)
    built = build_request_samples.run(spark, stage)
    assert built["table"] == REQUEST_SAMPLES_STAGING.name
    assert _published(spark, warehouse) == (None, {})  # the build alone publishes nothing

    # Through the command lines: a refusal or a failed gate is one line naming what and what to
    # do, and exit status 1, as for every job (jobs/cli.exit_on_job_error).
    common = ["--warehouse", warehouse, "--date", day]
    status, err = _command_line("publish", common, capsys)
    assert status == 1 and [line for line in err if "error" in line.lower()] == [
        f"publish: error: refusing to publish {day}: no quality gate record for request_samples_staging "
        f"date {day} at {record_path(Path(warehouse) / '_quality', day)}: "
        f"run jobs/validate.py --date {day} first"
    ], err

    # An impossible threshold fails the gate: nothing is published, publish refuses.
    status, err = _command_line("validate", [*common, *GATE_FLAGS, "--max-targets", "1"], capsys)
    errors = [line for line in err if line.startswith("validate: error: ")]
    assert status == 1 and len(errors) == 1, err
    assert errors[0].startswith(f"validate: error: quality gate failed for {STAGING} date {day} (version 1")
    assert errors[0].endswith("the thresholds), rebuild and validate again.")
    assert "Traceback" not in "\n".join(err)
    publish_day = publish.Args(date=day, warehouse=warehouse)
    with pytest.raises(
        publish.PublishRefusedError, match="the quality gate failed for request_samples_staging version 1"
    ):
        publish.run(spark, publish_day)
    assert _published(spark, warehouse) == (None, {})

    passed = validate.run(spark, validate.Args(date=day, warehouse=warehouse, thresholds=GATE))
    assert passed["success"] is True and passed["staging_version"] == 1
    root = Path(warehouse) / "_quality"
    assert (root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    assert any((root / "gx" / "uncommitted" / "validations").rglob("*.json"))  # GX's own results

    out = publish.run(spark, publish_day)
    assert out["rows"] == built["requests"] == read_record(root, day).rows
    version, counts = _published(spark, warehouse)
    assert counts == {day: built["requests"]}
    history = DeltaTable.forPath(spark, REQUEST_SAMPLES.location(warehouse)).history(1)
    meta = history.first()["userMetadata"]  # type: ignore[index]
    assert json.loads(meta) | {"gate_record": None} == {
        "date": day, "staging_version": 1, "gate": "passed", "gate_record": None
    }  # fmt: skip
    staging = spark.read.format("delta").load(REQUEST_SAMPLES_STAGING.location(warehouse))
    staged = staging.where(F.col("date") == day)
    live = spark.read.format("delta").load(REQUEST_SAMPLES.location(warehouse))
    assert sorted(map(tuple, staged.collect())) == sorted(map(tuple, live.collect()))

    # Staging changed after the verdict (a rebuild): the old verdict no longer publishes.
    build_request_samples.run(spark, stage)
    with pytest.raises(
        publish.PublishRefusedError,
        match="validated request_samples_staging version 1 but the table is now at version 2",
    ):
        publish.run(spark, publish_day)
    assert _published(spark, warehouse) == (version, counts)
    # GX logged no Data Docs rendering error (a KeyError 'observed_value' traceback per suite
    # when big batches were stored with BOOLEAN_ONLY results), on the failed run or the passed one.
    assert "Traceback" not in caplog.text and "data docs rendering" not in caplog.text, caplog.text[-3000:]
