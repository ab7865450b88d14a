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
from jobs.gate import GateRecord, quality_project, quality_root, write_record
from jobs.partitions import previous_date
from jobs.runner import Summary, run_job
from pipelines.quality import (
    conservation_frame,
    drift_frame,
    profile,
    user_day_conservation_frame,
    with_row_checks,
    with_user_day_row_checks,
)
from schemas import (
    DEFAULT_WAREHOUSE,
    IMPRESSIONS,
    QUARANTINE,
    REQUEST_SAMPLES,
    REQUEST_SAMPLES_STAGING,
    USER_ACTIONS,
    USER_DAY_SAMPLES,
    USER_DAY_SAMPLES_STAGING,
    TableContract,
)
from schemas.quality import (
    MAX_SLICE_LEN,
    SUITE_CONSERVATION,
    SUITE_DRIFT,
    SUITE_IMPRESSIONS,
    SUITE_REQUEST_SAMPLES,
    SUITE_USER_ACTIONS,
    SUITE_USER_DAY_CONSERVATION,
    SUITE_USER_DAY_SAMPLES,
    GateThresholds,
    conservation_suite,
    drift_suite,
    impressions_suite,
    request_samples_suite,
    user_actions_suite,
    user_day_conservation_suite,
    user_day_samples_suite,
)

log = logging.getLogger("validate")

GX_DATASOURCE = "rlb_spark"
DATA_DOCS_INDEX = Path("gx") / "uncommitted" / "data_docs" / "local_site" / "index.html"
MAX_LISTED_FAILURES = 10
# --table: the published table whose staging partition is validated -> (staging, key columns a
# failing row is named by, the job that builds it).
GATED: dict[str, tuple[TableContract, tuple[str, ...], str]] = {
    REQUEST_SAMPLES.name: (
        REQUEST_SAMPLES_STAGING,
        ("request_id", "user_id", "date"),
        "build_request_samples",
    ),
    USER_DAY_SAMPLES.name: (USER_DAY_SAMPLES_STAGING, ("user_id", "date"), "build_user_day_samples"),
}


class QualityGateError(RuntimeError):
    """The gate failed: the partition must not be published."""


@dataclass(frozen=True)
class Args:
    date: str
    warehouse: str = DEFAULT_WAREHOUSE
    quality_root: str | None = None  # default: <warehouse>/_quality
    thresholds: GateThresholds = field(default_factory=GateThresholds)
    table: str = REQUEST_SAMPLES.name  # a key of GATED


def parse_args(argv: list[str] | None = None) -> Args:
    p = job_parser("validate", __doc__)
    p.add_argument(
        "--quality-root",
        default=None,
        help="folder for GX results, Data Docs and gate records (default: <warehouse>/_quality)",
    )
    p.add_argument(
        "--table",
        choices=sorted(GATED),
        default=REQUEST_SAMPLES.name,
        help="the table whose staged partition D is validated (default: %(default)s)",
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
        help="thresholds as a JSON object over the flags above, e.g. '{\"max_targets\": 30}' "
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
    return Args(
        date=ns.date,
        warehouse=ns.warehouse,
        quality_root=ns.quality_root,
        thresholds=thresholds,
        table=ns.table,
    )


@dataclass(frozen=True)
class Batch:
    """One GX validation: a suite and the (lazy) frame it checks."""

    suite: Any  # gx.ExpectationSuite (GX is imported lazily: it is slow to import)
    frame: DataFrame
    # One-row frames are validated with every detail straight away; big frames with counts and
    # observed values but no example rows (GATE_FORMAT), and again with examples only when
    # something failed (FAILURE_FORMAT), so the Data Docs show bad values where there are some.
    small: bool = False


# What the gate and the Data Docs need from a big batch: pass/fail, unexpected counts and observed
# values (the Data Docs order columns by expect_table_columns_to_match_ordered_list's observed
# value: a BOOLEAN_ONLY result has none, and rendering it raised KeyError 'observed_value'). No
# example values: their query becomes a limit(0), which Spark answers without running a job, so
# this costs about what BOOLEAN_ONLY costs (benchmarks/gate.py; docs/quality-gate.md).
GATE_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}
# A failed suite is run again with up to 20 example values per failed expectation, for the Data Docs.
FAILURE_FORMAT: dict[str, Any] = {"result_format": "SUMMARY"}


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
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier

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
        # The second run (a failure's details) is stored under the same key: it replaces the first.
        formats = [FAILURE_FORMAT] if batch.small else [GATE_FORMAT, FAILURE_FORMAT]
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
    # Renders this run's results and the index: earlier runs' pages are there already (a bare
    # build_data_docs() renders every stored result again, work that grows with every day run).
    keys = ctx.validation_results_store.list_keys()
    ours = [k for k in keys if isinstance(k, ValidationResultIdentifier) and k.run_id == run_id]
    ctx.build_data_docs(resource_identifiers=ours)
    return out


def _request_samples_batches(
    spark: SparkSession, args: Args, staged: DataFrame, notes: list[str]
) -> tuple[DataFrame, list[Batch], list[DataFrame]]:
    """request_samples D with its row checks, its suites' batches (inputs, conservation, drift)
    and the frames kept in memory for them."""
    day = F.col("date") == args.date
    keep = StorageLevel.MEMORY_AND_DISK
    checked = staged.transform(with_row_checks).persist(keep)
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
    return checked, batches, [checked, impressions, actions]


def _user_day_batches(
    spark: SparkSession, args: Args, staged: DataFrame
) -> tuple[DataFrame, list[Batch], list[DataFrame]]:
    """user_day_samples D with its row checks, and its conservation against the published
    request_samples of D (requests, each once, and targets)."""
    checked = staged.transform(with_user_day_row_checks).persist(StorageLevel.MEMORY_AND_DISK)
    published = read_table(spark, REQUEST_SAMPLES, REQUEST_SAMPLES.location(args.warehouse))
    published = published.where(F.col("date") == args.date)
    conservation = user_day_conservation_frame(checked, published)
    batches = [
        Batch(user_day_samples_suite(), checked),
        Batch(user_day_conservation_suite(), conservation, small=True),
    ]
    return checked, batches, [checked]


def failing_rows(checked: DataFrame, keys: tuple[str, ...], l_max: int) -> list[str]:
    """One sample row (its keys) per per-row rule that some row breaks: which row to look at."""
    rules = [c for c in checked.columns if c.startswith("qc_")]
    broken = [(c, ~F.col(c)) for c in rules]
    if MAX_SLICE_LEN in checked.columns:
        broken.append((f"{MAX_SLICE_LEN} <= l_max", F.col(MAX_SLICE_LEN) > l_max))
    elif "hist_len" in checked.columns:
        broken.append(("hist_len <= l_max", F.col("hist_len") > l_max))
    flags = checked.select(
        *keys, *[F.coalesce(cond, F.lit(True)).alias(f"_bad{i}") for i, (_, cond) in enumerate(broken)]
    )
    out = []
    for i, (rule, _) in enumerate(broken):
        row = flags.where(F.col(f"_bad{i}")).select(*keys).first()
        if row is not None:
            out.append(f"{rule} broken, e.g. by {', '.join(f'{k}={row[k]!r}' for k in keys)}")
    return out


def run(spark: SparkSession, args: Args) -> Summary:
    """Validates day D of the staging table and writes the gate record; raises QualityGateError
    (after writing the failed record and logging the summary) when any expectation fails."""
    root = quality_root(args.warehouse, args.quality_root)
    contract, keys, builder = GATED[args.table]
    staging = contract.location(args.warehouse)
    notes: list[str] = []
    if not table_exists(spark, staging):
        raise MissingTableError(
            f"no {contract.name} table at {staging}: run {builder} --date {args.date} first"
        )
    version = latest_version(spark, staging)  # validated and recorded: publish copies exactly this version
    staged = spark.read.format("delta").option("versionAsOf", version).load(staging)
    staged = staged.where(F.col("date") == args.date)
    if args.table == USER_DAY_SAMPLES.name:
        checked, batches, cached = _user_day_batches(spark, args, staged)
    else:
        checked, batches, cached = _request_samples_batches(spark, args, staged, notes)
    rows = checked.count()
    run_name = f"{contract.name}-{args.date}-v{version}"
    with quality_project(root):  # remote root: GX's results and Data Docs go beside the table too
        suites = run_suites(root, run_name, batches, args.thresholds.parameters())
    success = rows > 0 and all(s["success"] for s in suites.values())
    if not success:
        notes += failing_rows(checked, keys, args.thresholds.l_max)
    for frame in cached:
        frame.unpersist()
    record = GateRecord(
        table=contract.name,
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
    samples = [n for n in record.notes if " broken, e.g. by " in n]
    return (
        f"quality gate failed for {record.table} date {record.date} (version {record.staging_version}, "
        f"{record.rows} rows): {len(failed)} expectation(s) failed: {failed[:MAX_LISTED_FAILURES]}; "
        f"{'; '.join(samples[:MAX_LISTED_FAILURES]) + '; ' if samples else ''}"
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
    order = (
        SUITE_REQUEST_SAMPLES,
        SUITE_IMPRESSIONS,
        SUITE_USER_ACTIONS,
        SUITE_CONSERVATION,
        SUITE_DRIFT,
        SUITE_USER_DAY_SAMPLES,
        SUITE_USER_DAY_CONSERVATION,
    )
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
    exit_on_job_error("validate", main, sys.argv[1:])
