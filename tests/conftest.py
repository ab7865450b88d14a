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


@pytest.fixture(scope="module")
def torch_single_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is faster and immune to OpenMP spinning on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def torch_seed() -> None:
    """A fixed seed before every model test: reference values and random batches repeat."""
    import torch

    torch.manual_seed(0)


@pytest.fixture()
def warehouse(tmp_path: Path) -> str:
    root = tmp_path / "warehouse"
    root.mkdir()
    return str(root)
