"""Delta reads and writes shared by the jobs: contract-checked, partition-scoped, atomic."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
from collections.abc import Iterator
from urllib.parse import unquote, urlparse

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from schemas import ContractError, TableContract
from schemas.user_day_samples import DELTA_ENCODED_COLUMNS

log = logging.getLogger(__name__)

# Loader-facing tables: the loader's unit of parallelism and shuffling is a Parquet row group, so
# their writers cut files of LOADER_ROWS_PER_FILE rows (one row group each; Delta ignores
# parquet.block.size as a write option, maxRecordsPerFile it honours), one task per date so a
# multi-day backfill writes ceil(rows/N) files per date rather than one per task and date, and
# rows clustered by these columns within a file. N from `benchmarks.loader --rows-per-group`
# (docs/loader.md, "Row groups").
LOADER_ROWS_PER_FILE = 500
LOADER_LAYOUT: dict[str, tuple[str, ...]] = {
    name: ("user_id", "request_ts", "request_id")
    for name in ("request_samples", "request_samples_staging", "request_samples_compact")
}
# user_day_samples(_staging): one row per user-day, so a user's day sits whole in one row group.
LOADER_LAYOUT.update({name: ("user_id",) for name in ("user_day_samples", "user_day_samples_staging")})


def _delta_encoded(columns: tuple[str, ...]) -> dict[str, str]:
    """parquet-mr settings that write these list columns DELTA_BINARY_PACKED: v2 pages (parquet-mr
    picks the delta encoding for an integer column only there) and no dictionary for them."""
    return {
        "parquet.writer.version": "v2",
        **{f"parquet.enable.dictionary#{c}.list.element": "false" for c in columns},
    }


# Parquet writer settings per table, set on the session for overwrite_where's write (Spark copies
# session settings into the Hadoop configuration parquet-mr reads; Delta passes only
# maxRecordsPerFile and compression through as write options). Why these: the contract modules.
PARQUET_WRITER_CONF: dict[str, dict[str, str]] = {
    name: _delta_encoded(DELTA_ENCODED_COLUMNS) for name in ("user_day_samples", "user_day_samples_staging")
}


class MissingTableError(FileNotFoundError):
    """An input table or partition a job needs is not there."""


class InputFileError(FileNotFoundError):
    """A data file an input table's current version names is missing or not whole (truncated)."""


def table_exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def ensure_table(
    spark: SparkSession, contract: TableContract, path: str, properties: dict[str, str] | None = None
) -> None:
    """Creates the empty table with the contract's schema and partitioning, if absent."""
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(contract.spark_schema())
    for key, value in (properties or {}).items():
        builder = builder.property(key, value)
    if contract.partition_by:
        builder = builder.partitionedBy(*contract.partition_by)
    builder.execute()


def conform(df: DataFrame, contract: TableContract) -> DataFrame:
    """Selects the contract's columns in order and checks their types; raises ContractError."""
    cols = contract.select_columns(df.columns)
    out = df.select(*cols)
    expected = contract.spark_schema()
    mismatched = [
        f"{f.name}: expected {f.dataType.simpleString()}, got {out.schema[f.name].dataType.simpleString()}"
        for f in expected
        if out.schema[f.name].dataType.simpleString() != f.dataType.simpleString()
    ]
    if mismatched:
        raise ContractError(f"table {contract.name}: wrong column types: {mismatched}")
    return out


def read_table(spark: SparkSession, contract: TableContract, path: str) -> DataFrame:
    if not table_exists(spark, path):
        raise MissingTableError(
            f"table {contract.name} not found at {path}: run the job that writes it first "
            f"or check the --warehouse argument"
        )
    return spark.read.format("delta").load(path)


def read_input(spark: SparkSession, contract: TableContract, path: str, first: str, last: str) -> DataFrame:
    """An input table's days first..last, refused before anything is written when its schema
    drifted from the contract (check_input_schema) or a data file of those days is missing or
    truncated (check_input_files); otherwise read_table's DataFrame filtered to the days."""
    df = read_table(spark, contract, path)
    check_input_schema(df, contract, path)
    days = df.where(f"date >= '{first}' AND date <= '{last}'")
    check_input_files(days.inputFiles(), contract, first, last)
    return days


def check_input_schema(df: DataFrame, contract: TableContract, path: str) -> None:
    """Raises ContractError naming each column that is not in the contract or has another type
    (an int widened to bigint): a job reads only what its contract says, before any write."""
    expected = {f.name: f.dataType.simpleString() for f in contract.spark_schema()}
    problems = [
        f"column {f.name!r} is {f.dataType.simpleString()}, the contract says {expected[f.name]}"
        if f.name in expected
        else f"column {f.name!r} is not in the contract"
        for f in df.schema
        if expected.get(f.name) != f.dataType.simpleString()
    ]
    if problems:
        raise ContractError(
            f"input table {contract.name} at {path}: {'; '.join(problems)}. Nothing was written: fix the "
            f"producer, or change schemas/ and the pipelines together, then rerun"
        )


_DATE_DIR = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")


def check_input_files(files: list[str], contract: TableContract, first: str, last: str) -> None:
    """Raises InputFileError naming the first local data file of days first..last that is gone or
    does not end with Parquet's magic bytes (truncated, 0 bytes). Remote files (s3://...) are left
    to Spark's read, which fails on them too, only later and less plainly."""
    for uri in files:
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            continue
        day = _DATE_DIR.search(uri)
        if day is not None and not first <= day.group(1) <= last:
            continue
        local = unquote(parsed.path)
        if not os.path.exists(local):
            raise InputFileError(
                f"input table {contract.name}: data file {local} is missing (the table's log names it). "
                f"Nothing was written: restore the file, or RESTORE the table to a version without it"
            )
        size = os.path.getsize(local)
        with open(local, "rb") as f:
            f.seek(max(0, size - 4))
            tail = f.read(4)
        if size < 12 or tail != b"PAR1":
            raise InputFileError(
                f"input table {contract.name}: data file {local} is truncated ({size} bytes, no Parquet "
                f"footer). Nothing was written: restore the file or RESTORE the table to a version without it"
            )


def partition_predicate(contract: TableContract, where: dict[str, str]) -> str:
    """SQL predicate `k = 'v' AND ...` over partition columns; rejects other columns."""
    unknown = [k for k in where if k not in contract.partition_by]
    if unknown:
        raise ContractError(
            f"table {contract.name}: {unknown} are not partition columns {contract.partition_by}"
        )
    return " AND ".join(f"{k} = '{v}'" for k, v in sorted(where.items()))


def date_range_predicate(first: str, last: str) -> str:
    """SQL predicate first <= date <= last (YYYY-MM-DD, inclusive); rejects an empty range."""
    if dt.date.fromisoformat(first) > dt.date.fromisoformat(last):
        raise ValueError(f"date range is empty: first {first} > last {last}")
    return f"date >= '{first}' AND date <= '{last}'"


def overwrite_where(
    df: DataFrame,
    contract: TableContract,
    path: str,
    predicate: str | None,
    user_metadata: str | None = None,
) -> None:
    """Atomically replaces the rows matching `predicate` with `df`, in one Delta commit.

    Readers see the old rows or the new ones, never a mix; a rerun replaces rather than appends
    (idempotent); Delta rejects the write if `df` holds a row outside the predicate. With no
    predicate the whole table is replaced and its schema reset to the contract's."""
    spark = df.sparkSession
    ensure_table(spark, contract, path)
    out = conform(df, contract)
    layout = LOADER_LAYOUT.get(contract.name)
    if layout is not None and "date" in contract.partition_by:
        out = out.repartition("date").sortWithinPartitions("date", *layout)
    writer = out.write.format("delta").mode("overwrite")
    if layout is not None:
        writer = writer.option("maxRecordsPerFile", str(LOADER_ROWS_PER_FILE))
    if predicate:
        writer = writer.option("replaceWhere", predicate)
    else:
        writer = writer.option("overwriteSchema", "true")
    if user_metadata:
        writer = writer.option("userMetadata", user_metadata)
    if contract.partition_by:
        writer = writer.partitionBy(*contract.partition_by)
    with session_conf(spark, PARQUET_WRITER_CONF.get(contract.name, {})):
        writer.save(path)
    log.info("wrote %s where %s", contract.name, predicate or "true (whole table)")


@contextlib.contextmanager
def session_conf(spark: SparkSession, conf: dict[str, str]) -> Iterator[None]:
    """`conf` set on the session for the block, then what was there before restored. Session-wide:
    a write from another thread of the session meanwhile gets it too (the jobs write from one)."""
    before: dict[str, str | None] = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, previous in before.items():
            if previous is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, previous)


def overwrite_partition(
    df: DataFrame,
    contract: TableContract,
    path: str,
    where: dict[str, str],
    user_metadata: str | None = None,
) -> None:
    """overwrite_where for one partition given as {column: value}."""
    overwrite_where(df, contract, path, partition_predicate(contract, where), user_metadata)


def latest_version(spark: SparkSession, path: str) -> int:
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    if row is None:
        raise MissingTableError(f"Delta table at {path} has no commits")
    return int(row["version"])


def last_commit_metrics(spark: SparkSession, path: str) -> dict[str, int]:
    """Delta's operation metrics of the table's latest commit (rows written, updated, ...)."""
    row = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    if row is None:
        raise MissingTableError(f"Delta table at {path} has no commits")
    return {k: int(v) for k, v in (row["operationMetrics"] or {}).items() if str(v).isdigit()}
