"""Shared fixtures: one local Spark session for the whole run, a fresh warehouse per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from jobs.spark_session import SparkSettings, get_spark


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = get_spark(SparkSettings(app_name="rlb-tests", shuffle_partitions=4, driver_memory="4g"))
    yield session
    session.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked run_last go to the end (stable order otherwise): `make test` runs pytest beside
    the Airflow suite, and a training test that shares 2 cores with its spark-submits took 622 s
    instead of 244 s."""
    items.sort(key=lambda item: item.get_closest_marker("run_last") is not None)


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to n (None: unchanged) inside, restored after."""
    import torch

    threads = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def busy_cores(seconds: float = 1.0) -> float:
    """Cores kept busy by the whole machine over the next `seconds`, while this process sleeps:
    what other processes (the Airflow suite's spark-submits) take right now. The load average
    lags by a minute and counts this session's own Spark work just finished."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:  # no /proc (not Linux): the load average is the next best signal
        return os.getloadavg()[0]
    return (1.0 - (idle1 - idle0) / max(1, total1 - total0)) * (os.cpu_count() or 1)


@pytest.fixture()
def torch_threads_for_load() -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A context to train in: all cores on a quiet machine; one intra-op thread where other
    processes keep half a core or more busy, since OpenMP threads spin against them (the
    long-range test took 622 s at two threads beside the Airflow suite, 244 s quiet, 402 s at
    one thread). Decided on entry, so a run after the other processes ended gets every core."""

    def threads() -> contextlib.AbstractContextManager[None]:
        return _torch_threads(1 if busy_cores() >= 0.5 else None)

    return threads


@pytest.fixture(scope="module")
def torch_single_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is faster and immune to OpenMP spinning on a busy machine."""
    with _torch_threads(1):
        yield


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


@pytest.fixture(scope="session")
def _logs_template(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> str:
    """tests/test_build_jobs._logs() written once as Delta tables, for logs_warehouse to copy."""
    from tests.test_build_jobs import write_logs

    root = tmp_path_factory.mktemp("logs-template") / "warehouse"
    write_logs(spark, str(root))
    return str(root)


@pytest.fixture()
def logs_warehouse(
    warehouse: str, _logs_template: str
) -> Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Call it to put tests/test_build_jobs._logs() into this test's warehouse (a copy of the
    tables written once per session: Delta logs hold relative paths) and get the rows back."""
    from tests.test_build_jobs import _logs

    def fill() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        shutil.copytree(_logs_template, warehouse, dirs_exist_ok=True)
        return _logs()

    return fill
