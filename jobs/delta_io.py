"""Delta reads and writes shared by the jobs: contract-checked, partition-scoped, atomic."""

from __future__ import annotations

import datetime as dt
import logging

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from schemas import ContractError, TableContract

log = logging.getLogger(__name__)


class MissingTableError(FileNotFoundError):
    """An input table or partition a job needs is not there."""


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
    writer = conform(df, contract).write.format("delta").mode("overwrite")
    if predicate:
        writer = writer.option("replaceWhere", predicate)
    else:
        writer = writer.option("overwriteSchema", "true")
    if user_metadata:
        writer = writer.option("userMetadata", user_metadata)
    if contract.partition_by:
        writer = writer.partitionBy(*contract.partition_by)
    writer.save(path)
    log.info("wrote %s where %s", contract.name, predicate or "true (whole table)")


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
