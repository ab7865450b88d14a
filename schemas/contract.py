"""The table contract: one declarative definition per table, from which every other form
(Spark StructType, pyarrow schema, Delta location) is rendered. Nothing else spells a schema."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from pyspark.sql import types as T


@dataclass(frozen=True)
class DType:
    """A logical column type; `element` is set for arrays."""

    name: str
    element: DType | None = None

    def __str__(self) -> str:
        return f"array<{self.element}>" if self.element else self.name


STRING = DType("string")
LONG = DType("long")
INT = DType("int")
FLOAT = DType("float")
DOUBLE = DType("double")
BINARY = DType("binary")


def array_of(element: DType) -> DType:
    return DType("array", element)


_SPARK_SCALARS: dict[str, T.DataType] = {
    "string": T.StringType(),
    "long": T.LongType(),
    "int": T.IntegerType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "binary": T.BinaryType(),
}
_ARROW_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "long": pa.int64(),
    "int": pa.int32(),
    "float": pa.float32(),
    "double": pa.float64(),
    "binary": pa.binary(),
}


def to_spark(dtype: DType) -> T.DataType:
    if dtype.element is not None:
        # Elements are declared nullable because Spark cannot cast an array expression to
        # non-null elements (MERGE and writes would fail); the pipelines never produce null
        # elements, and the quality gate checks it.
        return T.ArrayType(to_spark(dtype.element), containsNull=True)
    return _SPARK_SCALARS[dtype.name]


def to_arrow(dtype: DType) -> pa.DataType:
    if dtype.element is not None:
        # Spark writes list elements to Parquet as optional whatever the Spark schema says, so the
        # Arrow form (what readers outside Spark see) has nullable elements; Spark enforces the
        # contract's non-null elements on write.
        return pa.list_(to_arrow(dtype.element))
    return _ARROW_SCALARS[dtype.name]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    nullable: bool = False
    doc: str = ""


class ContractError(ValueError):
    """A DataFrame or file does not match a table contract."""


@dataclass(frozen=True)
class TableContract:
    """A Delta table: its columns, keys, partitioning and place under the warehouse root."""

    name: str
    version: int
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...]
    keys: tuple[str, ...]
    doc: str = ""
    cluster_by: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ContractError(f"table {self.name}: duplicate columns {dupes}")
        unknown = [c for c in (*self.partition_by, *self.keys, *self.cluster_by) if c not in names]
        if unknown:
            raise ContractError(f"table {self.name}: key/partition columns {unknown} are not columns {names}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}; columns: {self.column_names}")

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def spark_schema(self) -> T.StructType:
        return T.StructType([T.StructField(c.name, to_spark(c.dtype), c.nullable) for c in self.columns])

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, to_arrow(c.dtype), c.nullable) for c in self.columns])

    def location(self, warehouse: str | Path) -> str:
        """The table's folder under a warehouse root (a local path or a URI such as s3a://...).

        Local paths are made absolute: Delta's builders take a relative path for a table name."""
        root = str(warehouse).rstrip("/")
        if "://" not in root:
            root = str(Path(root).resolve())
        return f"{root}/{self.name}"

    def select_columns(self, present: Iterable[str]) -> list[str]:
        """Contract columns in contract order; raises listing what is missing from `present`."""
        have = set(present)
        missing = [n for n in self.column_names if n not in have]
        if missing:
            raise ContractError(
                f"table {self.name}: missing columns {missing}; present: {sorted(have)}. "
                f"Produce every column of schemas/{self.name}.py."
            )
        return self.column_names
