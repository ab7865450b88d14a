"""Shared fixtures: one local Spark session for the whole run, a fresh warehouse per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.spark_session import SparkSettings, get_spark


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = get_spark(SparkSettings(app_name="rlb-tests", shuffle_partitions=4, driver_memory="4g"))
    yield session
    session.stop()


@pytest.fixture()
def warehouse(tmp_path: Path) -> str:
    root = tmp_path / "warehouse"
    root.mkdir()
    return str(root)
