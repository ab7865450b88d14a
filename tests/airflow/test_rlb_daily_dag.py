"""The daily DAG (airflow_dags/rlb_daily.py), in the Airflow environment: it imports cleanly, its
graph and schedule are as designed, and `dag.test()` runs days end to end on local Spark over
generated logs: one day passes the gate and is published, the next fails it and nothing is."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "rlb_daily"
# The days of tests/test_build_jobs._logs: actions on all three, requests on the last two; its
# few bad rows per day are quarantined, so the inputs' valid share is lowered for the gate.
BOOTSTRAP_DAY, DAY, NEXT_DAY = "2026-02-01", "2026-02-02", "2026-02-03"
GATE = {"input_valid_share": 0.8, "max_label_rate_delta": 1.0, "min_row_count_ratio": 0.1,
        "max_row_count_ratio": 10.0, "min_mean_hist_len_ratio": 0.1, "max_mean_hist_len_ratio": 10.0}
PIPELINE = ["wait_for_inputs", "build_user_history", "build_request_samples", "validate", "publish"]
VISTA = ["vista_enabled", "summarize_users", "build_compact_samples"]  # skipped without a vista_checkpoint
# After publish: user_day_samples of D from the published request_samples, gated and published.
USER_DAY = ["build_user_day_samples", "validate_user_day_samples", "publish_user_day_samples"]
MAINTENANCE = ["maintenance_day", "maintain_tables"]  # after both publishes; skipped but on Sundays
TASKS = [*PIPELINE, *VISTA, *USER_DAY, *MAINTENANCE]
# The job script of each Spark task whose id is not the script's name.
SCRIPTS = {"validate_user_day_samples": "validate", "publish_user_day_samples": "publish"}


def project_python() -> str:
    return os.environ.get("RLB_PROJECT_PYTHON", str(REPO / ".venv" / "bin" / "python"))


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "airflow_dags"))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_dagbag_has_no_import_errors(dag: Any) -> None:
    assert dag.dag_id == DAG_ID
    assert "rlb" in dag.tags


def test_graph_schedule_and_retries_are_as_designed(dag: Any) -> None:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    assert sorted(t.task_id for t in dag.topological_sort()) == sorted(TASKS)
    for chain in ([*PIPELINE, *VISTA], ["publish", *USER_DAY, *MAINTENANCE]):
        for up, down in itertools.pairwise(chain):
            assert down in dag.get_task(up).downstream_task_ids
    assert dag.get_task("publish").downstream_task_ids == {"vista_enabled", "build_user_day_samples"}
    assert dag.get_task("validate_user_day_samples").application_args[4:6] == ["--table", "user_day_samples"]
    assert dag.get_task("maintain_tables").application_args[-2:] == ["--optimize", "--vacuum"]
    assert dag.catchup is True and dag.max_active_runs == 1
    assert (
        type(dag.timetable).__name__ == "CronDataIntervalTimetable"
        and dag.timetable.expression == "0 0 * * *"
    )
    assert dag.start_date.tzinfo is not None
    for task_id in [t for t in TASKS[1:] if t not in ("vista_enabled", "maintenance_day")]:
        task = dag.get_task(task_id)
        assert isinstance(task, SparkSubmitOperator)
        assert task.depends_on_past is True
        assert Path(task.application) == REPO / "jobs" / f"{SCRIPTS.get(task_id, task_id)}.py"
        assert task._spark_binary.endswith("spark-submit")
        assert task.retry_exponential_backoff
    assert dag.get_task("build_user_history").retries == 2
    for gate in ("validate", "validate_user_day_samples"):
        assert dag.get_task(gate).retries == 0  # a failed gate is a verdict, not a transient error


def run_project(code: str, timeout: int = 600) -> str:
    """Runs Python code with the project's interpreter (pyspark, delta, deltalake live there)."""
    out = subprocess.run(
        [project_python(), "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYSPARK_PYTHON": project_python(), "PYSPARK_DRIVER_PYTHON": project_python()},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def published(warehouse: Path) -> dict[str, Any]:
    """request_samples' version and dates, read with delta-rs (no JVM)."""
    code = (
        "import json; from deltalake import DeltaTable; from jobs.partitions import partition_dates\n"
        f"p = {str(warehouse / 'request_samples')!r}\n"
        "ok = DeltaTable.is_deltatable(p)\n"
        "print(json.dumps({'version': DeltaTable(p).version() if ok else None, 'dates': partition_dates(p)}))"
    )
    return json.loads(run_project(code).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tiny generated logs (tests/test_build_jobs._logs) and the history state bootstrapped as of
    the day before the first request day, written by the project's interpreter."""
    wh = tmp_path_factory.mktemp("dagwh") / "warehouse"
    run_project(
        "from jobs import build_user_history\n"
        "from jobs.delta_io import overwrite_where\n"
        "from jobs.spark_session import SparkSettings, get_spark\n"
        "from schemas import IMPRESSIONS, USER_ACTIONS\n"
        "from tests.test_build_jobs import _logs\n"
        "spark = get_spark(SparkSettings(driver_memory='1g', shuffle_partitions=2))\n"
        "for rows, c in zip(_logs(), (USER_ACTIONS, IMPRESSIONS)):\n"
        "    df = spark.createDataFrame("
        "[tuple(r[n] for n in c.column_names) for r in rows], c.spark_schema())\n"
        f"    overwrite_where(df, c, c.location({str(wh)!r}), None)\n"
        f"build_user_history.main(['--warehouse', {str(wh)!r}, '--date', {BOOTSTRAP_DAY!r}, "
        "'--state-len', '100'])\n"
    )
    yield wh


def run_day(dag: Any, warehouse: Path | str, day: str, skip: str | None = None, **params: Any) -> Any:
    """dag.test() of `day`; `skip`, a regex of task ids, marks those tasks successful unrun."""
    conf = {"warehouse": str(warehouse), "l_max": 100, "state_len": 100, "driver_memory": "1g",
            "gate_thresholds": GATE, **params}
    logical = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    for task in dag.tasks:  # dag.test() would sleep through the retry delays of a broken step
        task.retries = 0
    return dag.test(logical_date=logical, run_conf=conf, mark_success_pattern=skip)


def states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


# What jobs/spark_session.get_spark() sets for a local session, for the DAG's local spark-submits
# (spark-submit reads $SPARK_CONF_DIR/spark-defaults.conf): a few partitions instead of the
# cluster defaults (200 shuffle, 50 Delta snapshot partitions), no UI, nothing in the checkout.
LOCAL_SPARK_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
}


@pytest.fixture()
def airflow_db_and_local_spark(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """dag.test() records its run in the metadata DB (SQLite under AIRFLOW_HOME); the Spark
    connection the DAG names points at local Spark, with local small-data defaults."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=600
    )
    monkeypatch.setenv("AIRFLOW_CONN_RLB_SPARK", json.dumps({"conn_type": "spark", "host": "local[2]"}))
    conf = {**LOCAL_SPARK_DEFAULTS, "spark.sql.warehouse.dir": str(tmp_path / "spark-warehouse"),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={tmp_path / 'derby'}"}
    (tmp_path / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in conf.items()))
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))


@pytest.mark.usefixtures("airflow_db_and_local_spark")
def test_dag_test_publishes_a_passing_day_and_nothing_of_a_failing_one(dag: Any, warehouse: Path) -> None:
    ok = run_day(dag, warehouse, DAY)
    assert states(ok) == {
        **dict.fromkeys([*PIPELINE, *USER_DAY], "success"),
        **dict.fromkeys(VISTA[1:], "skipped"),
        "vista_enabled": "success",
        "maintenance_day": "success",  # 2026-02-02 is a Monday: maintenance is skipped
        "maintain_tables": "skipped",
    }
    assert str(ok.state) == "success"
    after_ok = published(warehouse)
    assert after_ok["dates"] == [DAY]
    record = json.loads(
        (warehouse / "_quality" / "gate" / "request_samples_staging" / f"date={DAY}.json").read_text()
    )
    assert record["success"] is True
    user_day_record = warehouse / "_quality" / "gate" / "user_day_samples_staging" / f"date={DAY}.json"
    assert json.loads(user_day_record.read_text())["success"] is True

    # An impossible gate threshold (at most 1 target per request) fails the next day's gate.
    bad = run_day(dag, warehouse, NEXT_DAY, gate_thresholds={**GATE, "max_targets": 1})
    got = states(bad)
    assert got["build_request_samples"] == "success" and got["validate"] == "failed"
    assert got["publish"] == "upstream_failed"
    assert {got[t] for t in USER_DAY} == {"upstream_failed"}
    assert str(bad.state) == "failed"
    assert published(warehouse) == after_ok  # request_samples untouched: same version, no NEXT_DAY
    record = json.loads(
        (warehouse / "_quality" / "gate" / "request_samples_staging" / f"date={NEXT_DAY}.json").read_text()
    )
    assert record["success"] is False
    assert "num_targets" in {f["column"] for f in record["suites"]["request_samples"]["failed"]}
