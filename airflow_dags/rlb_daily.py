"""Daily request_samples: wait for day D's inputs, extend the history state, build D into staging, run
the quality gate, publish; weekly, compact and vacuum the tables; then (VISTA, when a summarizer
checkpoint is configured) refresh the user summaries as of the end of D and build D's compact
request table. Schedule, tasks and edges only: every step is a project job (jobs/*.py) run by the
project's own spark-submit; the sensors run a project module with the project's interpreter (the
Airflow environment has neither pyspark nor deltalake).

Deploy: see docs/airflow.md. Settings come from the environment of the scheduler/workers
(read once at parse time, no Variables, no heavy imports) and from the DAG params (per run):

* RLB_PROJECT_ROOT    checkout or install of the project (default: this file's parent folder)
* RLB_PROJECT_PYTHON  the project's interpreter (default: <root>/.venv/bin/python)
* RLB_SPARK_SUBMIT    its spark-submit (default: <root>/.venv/bin/spark-submit)
* RLB_SPARK_CONN_ID   the Airflow connection naming the Spark master (default: rlb_spark)
* RLB_WAREHOUSE       default of the `warehouse` param (default: <root>/warehouse)
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.sensors.bash import BashSensor
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task

PROJECT_ROOT = Path(os.environ.get("RLB_PROJECT_ROOT", Path(__file__).resolve().parent.parent))
PROJECT_PYTHON = os.environ.get("RLB_PROJECT_PYTHON", str(PROJECT_ROOT / ".venv" / "bin" / "python"))
SPARK_SUBMIT = os.environ.get("RLB_SPARK_SUBMIT", str(PROJECT_ROOT / ".venv" / "bin" / "spark-submit"))
SPARK_CONN_ID = os.environ.get("RLB_SPARK_CONN_ID", "rlb_spark")
JARS_DIR = PROJECT_ROOT / ".cache" / "jars"  # filled by `make setup` (scripts/fetch_delta_jars.sh)

DATE = "{{ params.date or ds }}"
WAREHOUSE = "{{ params.warehouse }}"
SENSOR_EXIT_MISSING = 1  # jobs/partitions.py: a partition is not there yet (poke again); other codes fail


def spark_step(task_id: str, script: str, *args: str, **kwargs: object) -> SparkSubmitOperator:
    """One project job under spark-submit; jars/packages/py-files/driver memory come from params."""
    return SparkSubmitOperator(
        task_id=task_id,
        conn_id=SPARK_CONN_ID,
        spark_binary=SPARK_SUBMIT,
        application=str(PROJECT_ROOT / "jobs" / script),
        application_args=["--warehouse", WAREHOUSE, "--date", DATE, *args],
        name=f"rlb-{task_id}-{DATE}",
        jars="{{ params.spark_jars }}",
        packages="{{ params.spark_packages }}",
        py_files="{{ params.spark_py_files }}",
        # spark-submit from a pip-installed pyspark finds SPARK_HOME with this interpreter.
        env_vars={
            "PYSPARK_PYTHON": "{{ params.project_python }}",
            "PYSPARK_DRIVER_PYTHON": "{{ params.project_python }}",
        },
        conf={
            "spark.pyspark.python": "{{ params.project_python }}",
            "spark.pyspark.driver.python": "{{ params.project_python }}",
            "spark.driver.memory": "{{ params.driver_memory }}",
        },
        **kwargs,
    )


with DAG(
    dag_id="rlb_daily",
    description=(
        "impressions + user_actions of day D -> user_history -> request_samples (staged, gated, published)"
    ),
    # Day D runs once D is over: the data-interval timetable makes `ds` the day being processed
    # (Airflow 3's "@daily" would make it the day the run starts).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime.fromisoformat(os.environ.get("RLB_START_DATE", "2026-01-01T00:00:00+00:00")),
    catchup=True,  # backfills: every day from start_date, in order
    # Day D's history step needs D-1's state, and the staging -> gate -> publish chain of one day
    # must not interleave with the next: one run at a time, and each step waits for its own
    # previous run (depends_on_past), so a failed gate stops later days until it is fixed.
    max_active_runs=1,
    default_args={
        "owner": "rlb",
        "depends_on_past": True,
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
    },
    params={
        "warehouse": Param(os.environ.get("RLB_WAREHOUSE", str(PROJECT_ROOT / "warehouse")), type="string"),
        "date": Param(
            None, type=["null", "string"], description="process this YYYY-MM-DD instead of the logical date"
        ),
        # Both 10_000s are schemas.constants.DEFAULT_L_MAX, typed here because importing `schemas`
        # imports pyspark (no heavy imports at DAG top level); tests/test_schemas.py checks they agree.
        "l_max": Param(10_000, type="integer", minimum=1, description="history length kept per request"),
        "state_len": Param(
            10_000, type="integer", minimum=1, description="events kept per user in user_history (>= l_max)"
        ),
        "gate_thresholds": Param(
            {},
            type="object",
            description='quality gate thresholds over the defaults, e.g. {"max_label_rate_delta": 0.2}',
        ),
        "project_python": Param(PROJECT_PYTHON, type="string"),
        "spark_jars": Param(
            ",".join(str(JARS_DIR / j) for j in ("delta-spark_2.13-4.0.1.jar", "delta-storage-4.0.1.jar")),
            type="string",
        ),
        "spark_packages": Param(
            "", type="string", description="e.g. io.delta:delta-spark_2.13:4.0.1 on a cluster"
        ),
        "spark_py_files": Param(
            "", type="string", description="the project as a zip/wheel, when the cluster lacks it"
        ),
        "driver_memory": Param("2g", type="string"),
        "vista_checkpoint": Param(
            "",
            type="string",
            description="checkpoint.pt of a `trainer.train --model vista` run; empty skips the VISTA steps",
        ),
        "vista_model_version": Param(
            "vista-v1", type="string", description="model_version written with the summaries"
        ),
        "vista_max_recent": Param(
            256, type="integer", minimum=0, description="raw events kept per compact row"
        ),
        "maintain_tables": Param(
            False, type="boolean", description="run table maintenance on this day, not only on Sundays"
        ),
    },
    tags=["rlb", "spark", "delta"],
) as dag:
    inputs_ready = BashSensor(
        task_id="wait_for_inputs",
        bash_command=(
            f"PYTHONPATH={PROJECT_ROOT} {{{{ params.project_python }}}} -m jobs.partitions "
            f"--warehouse {WAREHOUSE} --date {DATE} impressions user_actions"
        ),
        retry_exit_code=SENSOR_EXIT_MISSING,
        # No env=: the check inherits the worker's environment, as the spark-submits do, so an
        # s3a:// warehouse finds its AWS_* variables (a template field would show their values).
        mode="reschedule",
        poke_interval=600,
        timeout=int(timedelta(hours=20).total_seconds()),
        depends_on_past=False,
    )
    history = spark_step(
        "build_user_history", "build_user_history.py", "--state-len", "{{ params.state_len }}"
    )
    samples = spark_step("build_request_samples", "build_request_samples.py", "--l-max", "{{ params.l_max }}")
    gate = spark_step(
        "validate",
        "validate.py",
        "--l-max",
        "{{ params.l_max }}",
        "--thresholds-json",
        "{{ params.gate_thresholds | tojson }}",
        # A failed gate is a verdict on the data, not a transient error: no retries.
        retries=0,
    )
    publish = spark_step("publish", "publish.py")
    # History once per user-day (docs/user-day-samples.md): built from the published
    # request_samples of D, gated (its rows must imply exactly those requests) and published the same way.
    user_days = spark_step("build_user_day_samples", "build_user_day_samples.py")
    user_day_gate = spark_step(
        "validate_user_day_samples",
        "validate.py",
        "--table",
        "user_day_samples",
        "--l-max",
        "{{ params.l_max }}",
        "--thresholds-json",
        "{{ params.gate_thresholds | tojson }}",
        retries=0,
    )
    user_day_publish = spark_step("publish_user_day_samples", "publish.py", "--table", "user_day_samples")

    @task.short_circuit(task_id="vista_enabled")
    def vista_enabled(**context: object) -> bool:
        """Skips the VISTA steps unless a summarizer checkpoint is configured."""
        params = context["params"]
        return bool(params["vista_checkpoint"])  # type: ignore[index]

    # Summaries as of the end of D (from D's state); D's compact rows take the newest summary
    # strictly before each request, i.e. from an earlier refresh.
    summarize = spark_step(
        "summarize_users",
        "summarize_users.py",
        "--checkpoint",
        "{{ params.vista_checkpoint }}",
        "--model-version",
        "{{ params.vista_model_version }}",
        "--l-max",
        "{{ params.l_max }}",
    )
    compact = spark_step(
        "build_compact_samples",
        "build_compact_samples.py",
        "--model-version",
        "{{ params.vista_model_version }}",
        "--max-recent",
        "{{ params.vista_max_recent }}",
    )

    inputs_ready >> history >> samples >> gate >> publish >> vista_enabled() >> summarize >> compact
    publish >> user_days >> user_day_gate >> user_day_publish

    @task.short_circuit(task_id="maintenance_day")
    def maintenance_day(**context: object) -> bool:
        """Weekly (D is a Sunday) or when the run's params ask: compaction and vacuum rewrite or
        scan whole tables, more work than a day's build, and nothing needs them daily."""
        params: dict[str, object] = context["params"]  # type: ignore[assignment]
        day = str(params["date"] or context["ds"])
        return bool(params["maintain_tables"]) or datetime.fromisoformat(day).weekday() == 6

    # OPTIMIZE (REORG ... PURGE on user_history) and VACUUM keeping every pinned training version
    # (jobs/maintain_tables.py); after both publishes, so it never races the day's writes.
    maintain = spark_step("maintain_tables", "maintain_tables.py", "--optimize", "--vacuum")
    user_day_publish >> maintenance_day() >> maintain
