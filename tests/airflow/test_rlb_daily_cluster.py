"""The daily DAG on a real Spark standalone cluster (a master and two worker JVMs,
scripts/spark_cluster.sh) with the warehouse on a real S3 API (s3proxy, scripts/s3proxy.sh):
`dag.test()` of two consecutive days, every step submitted to the master with the project shipped
as --py-files and the executors on the project's interpreter, publishes request_samples equal, row
for row, to the same days built in local mode on a local disk. One worker JVM is killed (kill -9,
with its executor) while a task of day two's build runs: Spark retries and the output still
equals the undisturbed local run. A master that is not up fails a job in seconds, naming the
master and what to set, with nothing written. Both servers are started once, for the whole module,
and stopped here."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_rlb_daily_dag import (
    BOOTSTRAP_DAY,
    DAY,
    LOCAL_SPARK_DEFAULTS,
    NEXT_DAY,
    PIPELINE,
    USER_DAY,
    project_python,
    run_day,
    run_project,
    states,
)

REPO = Path(__file__).resolve().parents[2]
BUCKET = "rlb-cluster"
KEY_ID = "rlb-cluster-key"
SECRET = "cluster-secret-5d1e0b"  # grepped for in the outputs
JARS = REPO / ".cache" / "jars"
PY_FILES = REPO / "dist" / "rlb-pipeline.zip"
REMOTE = f"s3a://{BUCKET}/wh"
STATE_LEN, L_MAX = 100, 100
SHORT_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"  # JVMs that live for one small step


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    master: str
    state: Path  # scripts/spark_cluster.sh's folder: pid files, logs/, work/<worker>/<app>/<executor>/
    s3_data: Path  # s3proxy's filesystem backend: one folder per bucket


def _script(*args: str, timeout: int = 120) -> str:
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args[:2]}: {out.stderr[-2000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """s3proxy and the standalone cluster, started with the AWS variables exported (the workers
    and their executors inherit them), and the project zip for --py-files; all stopped after."""
    state = tmp_path_factory.mktemp("cluster")
    with pytest.MonkeyPatch.context() as mp:
        port = free_port()
        for key, value in {
            "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_REGION": "us-east-1",
            "PYSPARK_PYTHON": project_python(), "PYSPARK_DRIVER_PYTHON": project_python(),
            "RLB_PROJECT_PYTHON": project_python(), "RLB_WORKER_MEMORY": "1g",
        }.items():  # fmt: skip
            mp.setenv(key, value)
        _script("make", "-s", "py-files")
        s3 = state / "s3proxy"
        _script(str(REPO / "scripts" / "s3proxy.sh"), "start", str(s3), str(port), BUCKET, timeout=120)
        try:
            spark = state / "spark"
            master = _script(
                str(REPO / "scripts" / "spark_cluster.sh"), "start", str(spark), str(free_port())
            )
            try:
                yield Cluster(master.strip().splitlines()[-1], spark, s3 / "data")
            finally:
                _script(str(REPO / "scripts" / "spark_cluster.sh"), "stop", str(spark), timeout=90)
        finally:
            _script(str(REPO / "scripts" / "s3proxy.sh"), "stop", str(s3), timeout=60)


def inputs(*warehouses: str) -> str:
    """Code (for run_project) writing the same inputs (tests/test_build_jobs.write_logs) and the
    bootstrap history state into each warehouse, from one local Spark session."""
    return (
        "from jobs import build_user_history, build_request_samples\n"
        "from jobs.spark_session import SparkSettings, get_spark\n"
        "from tests.test_build_jobs import write_logs\n"
        "spark = get_spark(SparkSettings(driver_memory='1g', shuffle_partitions=2))\n"
        f"for wh in {warehouses!r}:\n"
        "    write_logs(spark, wh)\n"
        f"    build_user_history.main(['--warehouse', wh, '--date', {BOOTSTRAP_DAY!r}, "
        f"'--state-len', '{STATE_LEN}'])\n"
    )


def reference(local: Path) -> None:
    """The inputs on the object store for the cluster, and on local disk where the same two days
    are then built in local mode (local[2], the same Spark session), in the DAG's order, up to
    `request_samples_staging`: publish copies a gated staging partition unchanged (jobs/publish.py,
    tests/test_publish.py), so the local gate and publish would add minutes and no rows."""
    run_project(
        inputs(REMOTE, str(local)) + f"for day in ({DAY!r}, {NEXT_DAY!r}):\n"
        f"    common = ['--warehouse', {str(local)!r}, '--date', day]\n"
        f"    build_user_history.main([*common, '--state-len', '{STATE_LEN}'])\n"
        f"    build_request_samples.main([*common, '--l-max', '{L_MAX}'])\n"
    )


def content_hashes(table: str) -> dict[str, str]:
    """Per date of a request_samples table: a hash over every row (request_id and every column,
    partition values included), in request_id order."""
    code = (
        "import hashlib, json\n"
        "from loader.delta_read import read_delta\n"
        "from jobs.partitions import partition_dates\n"
        f"uri = {table!r}\n"
        "out = {}\n"
        "for d in partition_dates(uri):\n"
        "    rows = read_delta(uri, date_from=d, date_to=d).to_pylist()\n"
        "    rows.sort(key=lambda r: r['request_id'])\n"
        "    assert rows and len({r['request_id'] for r in rows}) == len(rows), d\n"
        "    out[d] = hashlib.sha256(repr([sorted(r.items()) for r in rows]).encode()).hexdigest()\n"
        "print(json.dumps(out))\n"
    )
    return json.loads(run_project(code).strip().splitlines()[-1])


class WorkerKiller:
    """Kills one worker JVM and its executor (kill -9, as a lost machine) the first time an
    executor of the application named `app` runs a task, and records what it saw."""

    def __init__(self, cluster: Cluster, app: str, timeout_s: float = 300.0) -> None:
        self.cluster, self.app, self.timeout_s = cluster, app, timeout_s
        self.killed: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> WorkerKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _app_id(self) -> str | None:
        log = (self.cluster.state / "logs" / "master.out").read_text(errors="replace")
        found = re.findall(rf"Registered app {re.escape(self.app)} with ID (\S+)", log)
        return found[-1] if found else None

    def _watch(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            app_id = self._app_id()
            for stderr in self.cluster.state.glob(f"work/*/{app_id}/*/stderr") if app_id else []:
                text = stderr.read_text(errors="replace")
                running = set(re.findall(r"Running task \S+ in stage \S+ \(TID (\d+)\)", text))
                running -= set(re.findall(r"Finished task \S+ in stage \S+ \(TID (\d+)\)", text))
                if running:
                    self._kill(stderr.parents[2].name, sorted(running, key=int))
                    return
            time.sleep(0.02)

    def _kill(self, worker: str, tids: list[str]) -> None:
        pid = int((self.cluster.state / f"worker-{worker}.pid").read_text())
        threads = Path(f"/proc/{pid}/task").iterdir()
        children = [int(c) for t in threads for c in (t / "children").read_text().split()]
        for p in (pid, *children):  # the worker and the executor it launched for this application
            os.kill(p, signal.SIGKILL)
        self.killed = {"worker": worker, "pids": [pid, *children], "tasks_in_flight": tids}


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "airflow_dags"))
    assert bag.import_errors == {}
    return bag.dags["rlb_daily"]


@pytest.fixture(scope="module")
def airflow_db() -> None:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip


@pytest.fixture()
def cluster_connection(cluster: Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The DAG's Spark connection names the standalone master; the submits' spark-defaults keep
    the small-data settings of the local DAG test and give executors what the workers offer.
    Every step starts a driver and an executor JVM that live under a minute on tiny data, so they
    compile with C1 only and collect with the serial collector (C2's compiler threads and a
    parallel GC would compete for the same two cores); one executor per step (spark.cores.max 1:
    a second JVM would start for a few tasks), and tasks take a free executor at once instead of
    waiting 3 s per stage for a "local" one (spark.locality.wait)."""
    monkeypatch.setenv("AIRFLOW_CONN_RLB_SPARK", json.dumps({"conn_type": "spark", "host": cluster.master}))
    conf = {**LOCAL_SPARK_DEFAULTS, "spark.executor.memory": "1g", "spark.cores.max": "1",
            "spark.locality.wait": "0s",
            "spark.sql.warehouse.dir": str(tmp_path / "spark-warehouse"),
            "spark.driver.extraJavaOptions": f"{SHORT_JVM} -Dderby.system.home={tmp_path / 'derby'}",
            "spark.executor.extraJavaOptions": SHORT_JVM}  # fmt: skip
    (tmp_path / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in conf.items()))
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))


def cluster_params() -> dict[str, Any]:
    jars = sorted(JARS.glob("delta-*.jar")) + sorted((JARS / "s3a").glob("*.jar"))
    return {"l_max": L_MAX, "state_len": STATE_LEN, "spark_jars": ",".join(map(str, jars)),
            "spark_py_files": str(PY_FILES), "project_python": project_python()}  # fmt: skip


@pytest.mark.usefixtures("airflow_db", "cluster_connection")
def test_two_dag_days_on_the_cluster_with_s3a_equal_local_mode_and_survive_a_worker_kill(
    dag: Any,
    cluster: Cluster,
    tmp_path: Path,
) -> None:
    local = tmp_path / "local-wh"
    reference(local)

    # The request_samples chain on the cluster (the kill and the comparison are about it); the
    # user-day steps submit the same way and are marked done unrun here (three submits, a minute,
    # per day): test_every_task_of_a_day_on_the_cluster runs them (marker cluster_full).
    first = run_day(dag, REMOTE, DAY, skip="|".join(USER_DAY), **cluster_params())
    assert states(first) | dict.fromkeys(PIPELINE, "success") == states(first), states(first)
    assert str(first.state) == "success"

    app = f"rlb-build_request_samples-{NEXT_DAY}"
    with WorkerKiller(cluster, app) as killer:
        second = run_day(dag, REMOTE, NEXT_DAY, skip="|".join(USER_DAY), **cluster_params())
    assert killer.killed, f"no task of {app} was seen running on a worker; see {cluster.state}/work"
    assert states(second) | dict.fromkeys(PIPELINE, "success") == states(second), states(second)
    assert str(second.state) == "success"

    master_log = (cluster.state / "logs" / "master.out").read_text(errors="replace")
    assert f"Registered app rlb-publish-{NEXT_DAY}" in master_log, "the steps did not run on the master"
    assert re.search(r"Removing worker .* on 127\.0\.0\.1", master_log) or "is now DEAD" in master_log, (
        f"the master never noticed the killed worker {killer.killed}"
    )
    on_cluster = content_hashes(f"{REMOTE}/request_samples")
    on_disk = content_hashes(str(local / "request_samples_staging"))
    assert sorted(on_cluster) == [DAY, NEXT_DAY]
    assert on_cluster == on_disk
    # The jobs wrote through S3A into s3proxy's backend, not to some local folder.
    assert (cluster.s3_data / BUCKET / "wh" / "request_samples" / "_delta_log").is_dir()
    logs = "".join(p.read_text(errors="replace") for p in cluster.state.glob("**/stderr"))
    assert SECRET not in logs + master_log


def test_a_master_that_is_not_up_fails_fast_naming_it_and_writes_nothing(cluster: Cluster) -> None:
    dead = f"spark://127.0.0.1:{free_port()}"
    warehouse = f"s3a://{BUCKET}/not-up"
    env = {**os.environ, "SPARK_CONF_DIR": str(cluster.state)}  # no spark-defaults there
    start = time.monotonic()
    out = subprocess.run(
        [str(Path(project_python()).parent / "spark-submit"), "--master", dead,
         "--jars", cluster_params()["spark_jars"], "--py-files", str(PY_FILES),
         str(REPO / "jobs" / "init_warehouse.py"),
         "--warehouse", warehouse],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    seconds = time.monotonic() - start
    assert out.returncode == 1, out.stderr[-3000:]
    # One line of ours (spark-submit merges the Python driver's stderr into its stdout).
    output = out.stdout + out.stderr
    errors = [line for line in output.splitlines() if line.startswith("init_warehouse: error:")]
    assert len(errors) == 1, output[-3000:]
    assert errors[0].startswith("init_warehouse: error: Spark master"), errors
    assert dead in errors[0] and "--master" in errors[0], errors
    assert "Traceback" not in output
    assert seconds < 60, f"took {seconds:.0f} s to report a dead master"
    assert not (cluster.s3_data / BUCKET / "not-up").exists()


@pytest.mark.cluster_full
@pytest.mark.usefixtures("airflow_db", "cluster_connection")
def test_every_task_of_a_day_on_the_cluster(dag: Any, cluster: Cluster) -> None:
    """The user-day steps too (build, gate, publish of user_day_samples on s3a://): every task of
    one day submitted to the cluster, none marked done unrun. Two minutes more, so `make test`
    deselects it: run `pytest -c tests/airflow/pytest.ini -m cluster_full tests/airflow`."""
    warehouse = f"s3a://{BUCKET}/full"
    run_project(inputs(warehouse))
    run = run_day(dag, warehouse, DAY, **cluster_params())
    assert states(run) | dict.fromkeys([*PIPELINE, *USER_DAY], "success") == states(run), states(run)
    assert str(run.state) == "success"
    master_log = (cluster.state / "logs" / "master.out").read_text(errors="replace")
    assert f"Registered app rlb-publish_user_day_samples-{DAY}" in master_log
    assert (cluster.s3_data / BUCKET / "full" / "user_day_samples" / "_delta_log").is_dir()
