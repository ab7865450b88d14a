"""A real Spark standalone cluster (a master and two worker JVMs, scripts/spark_cluster.sh) with
the warehouse on a real S3 API (s3proxy): jobs submitted with spark-submit, the project shipped
as --py-files and the executors on the project's interpreter, write what local mode writes on a
local disk, row for row. Both servers are started and stopped here (about 2 minutes)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.object_store import S3Settings, arrow_path, free_port, is_remote, local_s3_server
from jobs.spark_session import local_submit_args
from loader import resolve_snapshot

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "scripts" / "spark_cluster.sh"
BUCKET = "rlb-cluster"
SECRET = "cluster-secret-5d1e0b"
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
LOGS_ARGS = ("--num-users", "40", "--history-days", "3", "--num-days", "1")

pytestmark = [pytest.mark.spark, pytest.mark.timeout(420)]


def content_hash(uri: str) -> str:
    """Order-free hash of every row (partition values included) of the table's latest version."""
    snapshot = resolve_snapshot(uri)
    fs = S3Settings.from_env().arrow_filesystem() if is_remote(uri) else None
    rows = []
    for f in snapshot.data_files:
        table = pq.read_table(arrow_path(f.path) if fs else f.path, filesystem=fs)
        rows += [repr(sorted((r | f.partition).items())) for r in table.to_pylist()]
    assert rows, f"no rows in {uri}"
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    state = tmp_path_factory.mktemp("cluster")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "rlb-cluster")
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        with local_s3_server(state / "s3proxy", (BUCKET,)) as endpoint:
            mp.setenv("AWS_ENDPOINT_URL", endpoint)
            env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
                   "RLB_PROJECT_PYTHON": sys.executable, "RLB_WORKER_MEMORY": "1g"}  # fmt: skip
            started = subprocess.run(
                [str(CLUSTER), "start", str(state / "spark"), str(free_port())],
                capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip
            assert started.returncode == 0, started.stderr
            try:
                yield started.stdout.strip().splitlines()[-1], env
            finally:
                subprocess.run([str(CLUSTER), "stop", str(state / "spark")], check=True, timeout=60)


def _submit_args(master: str, py_files: Path) -> list[str]:
    """The local submit line with the cluster's master, a small driver, and the project shipped."""
    local = local_submit_args()
    args: list[str] = []
    skip = {"--master", "--driver-memory"}
    i = 0
    while i < len(local):
        if local[i] in skip:
            i += 2
            continue
        args.append(local[i])
        i += 1
    return [
        "--master", master, "--driver-memory", "1g", "--executor-memory", "1g", "--total-executor-cores", "2",
        "--py-files", str(py_files), "--conf", f"spark.pyspark.python={sys.executable}", *args,
    ]  # fmt: skip


def test_jobs_on_the_cluster_with_s3a_equal_local_mode_on_disk(
    cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    master, env = cluster
    made = subprocess.run(["make", "-s", "py-files"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    py_files = ROOT / "dist" / "rlb-pipeline.zip"
    remote = f"s3a://{BUCKET}/wh"
    for job in (
        ("init_warehouse.py", "--warehouse", remote),
        ("generate_logs.py", "--warehouse", remote, *LOGS_ARGS),
    ):
        out = subprocess.run(
            [str(SPARK_SUBMIT), *_submit_args(master, py_files), f"jobs/{job[0]}", *job[1:]],
            cwd=ROOT, capture_output=True, text=True, env=env, timeout=240,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        assert master in out.stderr, "the job did not run on the standalone master"
        assert SECRET not in out.stdout + out.stderr + " ".join(_submit_args(master, py_files))
    local = str(tmp_path / "wh")
    for args in (
        ("jobs.init_warehouse", "--warehouse", local),
        ("jobs.generate_logs", "--warehouse", local, *LOGS_ARGS),
    ):
        out = subprocess.run(
            [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=240
        )
        assert out.returncode == 0, out.stderr[-3000:]
    for table in ("impressions", "user_actions"):
        assert content_hash(f"{remote}/{table}") == content_hash(f"{local}/{table}"), table
    assert S3Settings.from_env().endpoint in env["AWS_ENDPOINT_URL"]
