"""`make demo-cluster`: the demo (demo/app.py) with its jobs on a local Spark standalone cluster
and its warehouse on a local S3 API, the production layout on one machine.

Started here, stopped when the demo ends (or fails): s3proxy on a loopback port
(storage/object_store.py `local_s3_server`, its data under STATE/s3proxy/data) and a master with two
worker JVMs (scripts/spark_cluster.sh, logs under STATE/spark/logs). The driver runs in this
process as in `make demo`; the executors get the project as the `make py-files` zip and run this
interpreter. The warehouse is `s3a://rlb-demo/warehouse`, emptied at the start (the demo replays
fixed dates); the loader, trainer and report read it as `s3://`. The report is the same as
`make demo`'s.

    make demo-cluster              # the default scale
    make demo-cluster SCALE=tiny   # smoke run of every stage
    python -m demo.cluster --scale tiny [any `python -m demo` argument but --master/--warehouse]

The server accepts one throwaway key pair made here, never the caller's AWS keys: the demo talks
only to this local server."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from demo.app import main as demo_main
from storage.object_store import free_port, local_s3_server

log = logging.getLogger("demo.cluster")

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = ROOT / "scripts" / "spark_cluster.sh"
PY_FILES = ROOT / "dist" / "rlb-pipeline.zip"  # `make py-files`
STATE = ROOT / ".cache" / "demo-cluster"
BUCKET = "rlb-demo"
WAREHOUSE = f"s3a://{BUCKET}/warehouse"
# Per worker (one core each): what its executor may use. local[2] gives the whole demo one 6 GiB
# JVM; here the two executors hold the data and the driver only plans.
EXECUTOR_MEMORY = "2g"


@contextlib.contextmanager
def standalone_cluster(state: Path, executor_memory: str = EXECUTOR_MEMORY) -> Iterator[str]:
    """scripts/spark_cluster.sh's master and two workers (inheriting this process's environment,
    AWS variables included); yields the master URL and stops the JVMs it started on exit."""
    started = subprocess.run(
        [str(CLUSTER_SCRIPT), "start", str(state), str(free_port())],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "RLB_PROJECT_PYTHON": sys.executable, "RLB_WORKER_MEMORY": executor_memory},
    )  # fmt: skip
    if started.returncode != 0:
        raise SystemExit(f"demo.cluster: the Spark cluster did not start: {started.stderr.strip()}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", str(state)], check=False, timeout=90)


def main(argv: list[str] | None = None) -> dict[str, object]:
    argv = list(sys.argv[1:] if argv is None else argv)
    taken = [a for a in argv if a.split("=")[0] in ("--master", "--warehouse")]
    if taken:
        raise SystemExit(f"demo.cluster: {taken[0]} is set here (the local cluster and s3proxy); drop it")
    if not PY_FILES.exists():
        raise SystemExit(f"demo.cluster: {PY_FILES} is missing; run `make py-files` (or `make demo-cluster`)")
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ |= {"AWS_ACCESS_KEY_ID": "rlb-demo", "AWS_SECRET_ACCESS_KEY": secrets.token_hex(16),
                   "AWS_REGION": "us-east-1"}  # fmt: skip
    shutil.rmtree(STATE / "s3proxy" / "data" / BUCKET, ignore_errors=True)
    with local_s3_server(STATE / "s3proxy", (BUCKET,)) as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        with standalone_cluster(STATE / "spark") as master:
            # The arguments pyspark gives the spark-submit that starts this driver's JVM.
            os.environ["PYSPARK_SUBMIT_ARGS"] = (
                f"--executor-memory {EXECUTOR_MEMORY} --py-files {PY_FILES} pyspark-shell"
            )
            log.info("demo.cluster: master %s, warehouse %s on %s", master, WAREHOUSE, endpoint)
            try:
                return demo_main([*argv, "--master", master, "--warehouse", WAREHOUSE])
            finally:
                from pyspark.sql import SparkSession

                session = SparkSession.getActiveSession()
                if session is not None:  # leave the master before it stops
                    session.stop()


if __name__ == "__main__":
    main()
