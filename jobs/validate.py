"""The quality gate: validates day D of `request_samples_staging` (and D's inputs) with the Great
Expectations suites of schemas/quality.py, and records the verdict that jobs/publish.py needs.

Suites: request_samples (schema, ids, unique request_id, 1 <= num_targets <= max, hist_len <=
L_max, and the per-row array rules as `qc_*` columns: lengths, no null elements, sorted hist_ts,
every hist_ts < request_ts, 0/1 labels), impressions and user_actions (schema, ids, labels),
conservation (impressions read = targets written + quarantined) and drift against the latest
earlier published partition of `request_samples` (row count, mean hist_len, label rates; skipped,
with a note, when there is none). Pins the staging version it reads; writes GX's validation
results and the HTML Data Docs under the quality root (default `<warehouse>/_quality/gx`), the
gate record under `<quality root>/gate/`, prints a short summary, and fails (non-zero exit) when
any expectation fails.

    spark-submit jobs/validate.py --warehouse warehouse --date 2026-01-05 --l-max 10000
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.cli import exit_on_job_error, job_parser
from jobs.delta_io import MissingTableError, latest_version, read_table, table_exists
from jobs.gate import GateRecord, quality_root, write_record
from jobs.partitions import previous_date
from jobs.runner import Summary, run_job
from pipelines.quality import conservation_frame, drift_frame, profile, with_row_checks
from schemas import (
    DEFAULT_WAREHOUSE,
    IMPRESSIONS,
    QUARANTINE,
    REQUEST_SAMPLES,
    REQUEST_SAMPLES_STAGING,
    USER_ACTIONS,
)
from schemas.quality import (
    SUITE_CONSERVATION,
    SUITE_DRIFT,
    SUITE_IMPRESSIONS,
    SUITE_REQUEST_SAMPLES,
    SUITE_USER_ACTIONS,
    GateThresholds,
    conservation_suite,
    drift_suite,
    impressions_suite,
    request_samples_suite,
    user_actions_suite,
)

log = logging.getLogger("validate")

GX_DATASOURCE = "rlb_spark"
DATA_DOCS_INDEX = Path("gx") / "uncommitted" / "data_docs" / "local_site" / "index.html"
MAX_LISTED_FAILURES = 10


class QualityGateError(RuntimeError):
    """The gate failed: the partition must not be published."""


@dataclass(frozen=True)
class Args:
    date: str
    warehouse: str = DEFAULT_WAREHOUSE
    quality_root: str | None = None  # default: <warehouse>/_quality
    thresholds: GateThresholds = field(default_factory=GateThresholds)


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("validate", __doc__)
    p.add_argument(
        "--quality-root",
        default=None,
        help="folder for GX results, Data Docs and gate records (default: <warehouse>/_quality)",
    )
    defaults = GateThresholds()
    for f in dataclasses.fields(GateThresholds):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f"{f.metadata['help']} (default: %(default)s)"
        p.add_argument(flag, type=type(default), default=default, help=help_text)
    p.add_argument(
        "--thresholds-json",
        default="{}",
        help='thresholds as a JSON object over the flags above, e.g. \'{"max_targets": 30}\' '
        "(what the Airflow DAG passes)",
    )
    ns = p.parse_args(argv)
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(GateThresholds)}
    try:
        overrides = json.loads(ns.thresholds_json)
        if not isinstance(overrides, dict) or set(overrides) - set(values):
            raise ValueError(
                f"expected a JSON object with keys from {sorted(values)}, got {ns.thresholds_json}"
            )
        thresholds = GateThresholds(**{**values, **overrides})
    except (ValueError, TypeError) as err:
        p.error(f"--thresholds-json / threshold flags: {err}")
    return Args(date=ns.date, warehouse=ns.warehouse, quality_root=ns.quality_root, thresholds=thresholds)


@dataclass(frozen=True)
class Batch:
    """One GX validation: a suite and the (lazy) frame it checks."""

    suite: Any  # gx.ExpectationSuite (GX is imported lazily: it is slow to import)
    frame: DataFrame
    # One-row frames are validated with details (observed values) straight away; big frames
    # first with pass/fail only, about 3x faster in GX on Spark, and again with details only
    # when something failed, so the stored result and the summary say what and how many.
    small: bool = False


def _failure(r: Any) -> dict[str, Any]:
    """A failed GX ExpectationValidationResult, reduced to what the summary and record show."""
    config = r.expectation_config
    info = r.exception_info or {}
    return {
        "expectation": config.type if config else None,
        "column": config.kwargs.get("column") if config else None,
        "observed": r.result.get("observed_value"),
        "unexpected_count": r.result.get("unexpected_count"),
        "exception": info.get("exception_message") if info.get("raised_exception") else None,
    }


def run_suites(
    root: Path, run_name: str, batches: list[Batch], parameters: dict[str, float | int]
) -> dict[str, dict[str, Any]]:
    """Runs each batch through GX in the file-backed project at `root/gx` (suites are
    re-registered from code each run, so the code is the source of truth), stores the
    validation results there, rebuilds the Data Docs, and returns per suite: success, counts and
    the failed expectations."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no telemetry calls from jobs
    import great_expectations as gx
    from great_expectations.core.result_format import ResultFormat
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    ctx = gx.get_context(mode="file", project_root_dir=str(root))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_or_update_spark(name=GX_DATASOURCE)
    run_id = RunIdentifier(run_name=run_name)
    out: dict[str, dict[str, Any]] = {}
    for batch in batches:
        name = batch.suite.name
        asset = next((a for a in source.assets if a.name == name), None)
        asset = asset or source.add_dataframe_asset(name=name)
        definition = next(
            (d for d in asset.batch_definitions if d.name == "whole"), None
        ) or asset.add_batch_definition_whole_dataframe("whole")
        suite = ctx.suites.add_or_update(batch.suite)
        validation = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=definition, suite=suite)
        )
        formats = [ResultFormat.SUMMARY] if batch.small else [ResultFormat.BOOLEAN_ONLY, ResultFormat.SUMMARY]
        for result_format in formats:
            result = validation.run(
                batch_parameters={"dataframe": batch.frame},
                expectation_parameters=parameters,
                result_format=result_format,
                run_id=run_id,
            )
            if result.success:
                break
        failed = [_failure(r) for r in result.results if not r.success]
        out[name] = {"success": bool(result.success), "evaluated": len(result.results), "failed": failed}
    ctx.build_data_docs()
    return out


def run(spark: SparkSession, args: Args) -> Summary:
    """Validates day D of the staging table and writes the gate record; raises QualityGateError
    (after writing the failed record and logging the summary) when any expectation fails."""
    root = quality_root(args.warehouse, args.quality_root)
    staging = REQUEST_SAMPLES_STAGING.location(args.warehouse)
    notes: list[str] = []
    if not table_exists(spark, staging):
        raise MissingTableError(
            f"no {REQUEST_SAMPLES_STAGING.name} table at {staging}: "
            f"run build_request_samples --date {args.date} first"
        )
    version = latest_version(spark, staging)  # validated and recorded: publish copies exactly this version
    day = F.col("date") == args.date
    keep = StorageLevel.MEMORY_AND_DISK
    staged = spark.read.format("delta").option("versionAsOf", version).load(staging).where(day)
    checked = staged.transform(with_row_checks).persist(keep)
    rows = checked.count()
    # GX runs a Spark job per metric bundle: keep the day's inputs in memory for all of them.
    impressions = read_table(spark, IMPRESSIONS, IMPRESSIONS.location(args.warehouse)).where(day)
    impressions = impressions.persist(keep)
    actions = read_table(spark, USER_ACTIONS, USER_ACTIONS.location(args.warehouse)).where(day).persist(keep)
    quarantined = read_table(spark, QUARANTINE, QUARANTINE.location(args.warehouse)).where(
        day & (F.col("source_table") == IMPRESSIONS.name)
    )
    batches = [
        Batch(request_samples_suite(), checked),
        Batch(impressions_suite(), impressions),
        Batch(user_actions_suite(), actions),
        Batch(conservation_suite(), conservation_frame(impressions, checked, quarantined), small=True),
    ]
    baseline = previous_date(REQUEST_SAMPLES, args.warehouse, args.date)
    if baseline is None:
        notes.append(f"drift not checked: request_samples has no published partition before {args.date}")
    else:
        published = spark.read.format("delta").load(REQUEST_SAMPLES.location(args.warehouse))
        drift = profile(checked).transform(drift_frame(profile(published.where(F.col("date") == baseline))))
        batches.append(Batch(drift_suite(), drift, small=True))
        notes.append(f"drift checked against request_samples date {baseline}")
    run_name = f"{REQUEST_SAMPLES_STAGING.name}-{args.date}-v{version}"
    suites = run_suites(root, run_name, batches, args.thresholds.parameters())
    for frame in (checked, impressions, actions):
        frame.unpersist()
    success = rows > 0 and all(s["success"] for s in suites.values())
    record = GateRecord(
        table=REQUEST_SAMPLES_STAGING.name,
        date=args.date,
        staging_version=version,
        success=success,
        suites=suites,
        thresholds=args.thresholds.parameters(),
        data_docs=str(root / DATA_DOCS_INDEX),
        rows=rows,
        notes=notes,
    )
    record_file = write_record(root, record)
    print_summary(record)
    summary = {
        "date": args.date,
        "success": success,
        "staging_version": version,
        "rows": rows,
        "suites": {n: f"{s['evaluated'] - len(s['failed'])}/{s['evaluated']}" for n, s in suites.items()},
        "record": str(record_file),
        "data_docs": record.data_docs,
    }
    if not success:
        # The summary line of a failed run; run_job logs that of a passed one, with its seconds.
        log.info("validate: %s", json.dumps(summary))
        raise QualityGateError(_failure_message(record))
    return summary


def _failure_message(record: GateRecord) -> str:
    failed = [
        f"{name}: {f['expectation']}({f['column'] or ''}) "
        f"observed={f['observed']} unexpected={f['unexpected_count']}"
        for name, s in record.suites.items()
        for f in s["failed"]
    ]
    return (
        f"quality gate failed for {record.table} date {record.date} (version {record.staging_version}, "
        f"{record.rows} rows): {len(failed)} expectation(s) failed: {failed[:MAX_LISTED_FAILURES]}; "
        f"see {record.data_docs}; the partition is not published. Fix the data (or, for a legitimate shift, "
        f"the thresholds), rebuild and validate again."
    )


def main(argv: list[str] | None = None) -> Summary:
    return run_job("validate", run, parse_args(argv))


def print_summary(record: GateRecord) -> None:
    verdict = "PASSED" if record.success else "FAILED"
    print(
        f"quality gate {verdict}: {record.table} date {record.date} version {record.staging_version}, "
        f"{record.rows} rows"
    )
    order = (SUITE_REQUEST_SAMPLES, SUITE_IMPRESSIONS, SUITE_USER_ACTIONS, SUITE_CONSERVATION, SUITE_DRIFT)
    for name in order:
        s = record.suites.get(name)
        if s is None:
            continue
        failed = s["failed"]
        print(f"  {name:<30} {s['evaluated'] - len(failed)}/{s['evaluated']} expectations passed")
        for f in failed[:MAX_LISTED_FAILURES]:
            print(
                f"    FAILED {f['expectation']}({f['column'] or ''}): "
                f"observed={f['observed']} unexpected={f['unexpected_count']}"
            )
    for note in record.notes:
        print(f"  note: {note}")
    print(f"  data docs: {record.data_docs}")


if __name__ == "__main__":
    try:
        exit_on_job_error("validate", main, sys.argv[1:])
    except QualityGateError as err:
        logging.getLogger("validate").error("%s", err)
        sys.exit(1)
