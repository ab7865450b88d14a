"""Table contracts: derived schemas agree with each other and survive a Delta round trip."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from jobs.delta_io import conform, ensure_table
from loader.snapshot import resolve_snapshot
from schemas import ALL_TABLES, REQUEST_SAMPLES, ContractError, TableContract
from schemas.constants import DAY_MS, DEFAULT_L_MAX, HOUR_MS, MINUTE_MS, SECOND_MS, day_start_ms, utc_day
from schemas.contract import LONG, Column
from schemas.fields import HISTORY_COLUMNS, HISTORY_SOURCE, LABEL_COLUMN_NAMES, TASKS

REPO = Path(__file__).resolve().parent.parent


def test_contract_rejects_duplicate_columns() -> None:
    with pytest.raises(ContractError, match=r"table t: duplicate columns \['a'\]"):
        TableContract("t", 1, (Column("a", LONG), Column("a", LONG)), partition_by=(), keys=())


def test_contract_rejects_unknown_partition_column() -> None:
    with pytest.raises(ContractError, match=r"key/partition columns \['date'\] are not columns \['a'\]"):
        TableContract("t", 1, (Column("a", LONG),), partition_by=("date",), keys=())


def test_select_columns_names_missing_and_present() -> None:
    with pytest.raises(ContractError) as err:
        REQUEST_SAMPLES.select_columns(["request_id", "user_id"])
    assert "missing columns ['request_ts', 'date'" in str(err.value)
    assert "present: ['request_id', 'user_id']" in str(err.value)


def test_history_and_label_groups_are_spelled_once() -> None:
    hist = [c.name for c in HISTORY_COLUMNS]
    assert set(hist) == set(HISTORY_SOURCE)
    assert all(n in REQUEST_SAMPLES.column_names for n in (*hist, *LABEL_COLUMN_NAMES))
    assert [n.removeprefix("label_") for n in LABEL_COLUMN_NAMES] == list(TASKS)


@pytest.mark.parametrize("name", sorted(ALL_TABLES))
def test_spark_and_arrow_schemas_agree(name: str) -> None:
    contract = ALL_TABLES[name]
    spark_schema = contract.spark_schema()
    arrow_schema = contract.arrow_schema()
    assert spark_schema.fieldNames() == arrow_schema.names == contract.column_names
    for sf, af in zip(spark_schema.fields, arrow_schema, strict=True):
        assert sf.nullable == af.nullable, sf.name
        assert isinstance(sf.dataType, T.ArrayType) == (af.type.num_fields == 1), sf.name


@pytest.mark.spark
@pytest.mark.parametrize("name", sorted(ALL_TABLES))
def test_schema_round_trip_through_delta(spark: SparkSession, warehouse: str, name: str) -> None:
    """Spark writes the contract; Spark and pyarrow (via the Delta log) read back the same schema."""
    contract = ALL_TABLES[name]
    path = contract.location(warehouse)
    ensure_table(spark, contract, path)
    rows = [_example_row(contract)]
    df = spark.createDataFrame(rows, contract.spark_schema())
    conform(df, contract).write.format("delta").mode("append").save(path)

    back = spark.read.format("delta").load(path)
    assert conform(back, contract).schema == contract.spark_schema()
    assert [tuple(r) for r in conform(back, contract).collect()] == [tuple(r) for r in rows]

    snap = resolve_snapshot(path)
    table = pq.read_table(snap.files[0])
    data_cols = [c for c in contract.column_names if c not in contract.partition_by]
    for col in data_cols:
        assert table.schema.field(col).type == contract.arrow_schema().field(col).type, col


def _example_row(contract: TableContract) -> tuple[object, ...]:
    values: dict[str, object] = {
        "string": "2026-01-02",
        "long": 7,
        "int": 3,
        "float": 0.5,
        "double": 0.25,
        "binary": b"\x01\x02",
    }
    row: list[object] = []
    for c in contract.columns:
        row.append([values[c.dtype.element.name]] * 2 if c.dtype.element else values[c.dtype.name])
    return tuple(row)


def test_time_constants_and_day_conversions() -> None:
    assert (SECOND_MS, MINUTE_MS, HOUR_MS, DAY_MS) == (1_000, 60_000, 3_600_000, 86_400_000)
    assert day_start_ms("2026-01-01") == 1_767_225_600_000
    assert day_start_ms("1970-01-02") == DAY_MS
    assert utc_day(day_start_ms("2026-03-01")) == "2026-03-01"
    assert utc_day(day_start_ms("2026-03-02") - 1) == "2026-03-01"


def test_dag_params_repeat_default_l_max() -> None:
    """The DAG types DEFAULT_L_MAX as a literal (importing `schemas` would import pyspark when the
    scheduler parses it): its l_max and state_len defaults must still be DEFAULT_L_MAX."""
    tree = ast.parse((REPO / "airflow_dags" / "rlb_daily.py").read_text())
    defaults: dict[object, object] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if not (isinstance(key, ast.Constant) and isinstance(value, ast.Call) and value.args):
                continue
            first = value.args[0]
            is_param = isinstance(value.func, ast.Name) and value.func.id == "Param"
            if is_param and isinstance(first, ast.Constant):
                defaults[key.value] = first.value
    assert (defaults.get("l_max"), defaults.get("state_len")) == (DEFAULT_L_MAX, DEFAULT_L_MAX)


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("synthetic", ("pyspark", "torch", "deltalake")),
        ("synthetic.logs", ("torch", "deltalake")),
        ("synthetic.tables", ("torch",)),
    ],
)
def test_synthetic_modules_import_only_what_they_use(module: str, absent: tuple[str, ...]) -> None:
    """One package for generated data, but a user of one module does not pay for another's imports."""
    code = f"import sys, {module}; print(sorted(m for m in {absent!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
