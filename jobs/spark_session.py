"""The one Spark session factory used by every job, test and benchmark.

Locally (plain `python`, pytest) it starts local[2] with Delta configured from the jars cached in
`.cache/jars` (see scripts/fetch_delta_jars.sh), so nothing is resolved over the network. Under
spark-submit the cluster's settings win: master, memory and jars come from the submit command,
and only the Delta SQL extension, the UTC time zone and the Arrow switch are added.

Object storage: when Hadoop's S3A jars are cached (`.cache/jars/s3a`, scripts/fetch_s3a_jars.sh)
the local session loads them, and every session gets the S3A settings built from the AWS
variables by storage/object_store.py (endpoint, region, path-style access; never a key: S3A reads
the keys from each JVM's environment), so an `s3a://` warehouse works as a local one does."""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from storage.object_store import S3Settings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JARS_DIR = PROJECT_ROOT / ".cache" / "jars"

PARQUET_CODEC_CONF = "spark.sql.parquet.compression.codec"

# Applied in every mode: correctness depends on them (UTC days, Delta tables).
REQUIRED_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # zstd halves the history columns against the default snappy (benchmarks/build.py); pyarrow,
    # petastorm and delta-rs read it. Session-wide, so MERGE rewrites use it too.
    PARQUET_CODEC_CONF: "zstd",
}


class DeltaJarsMissingError(RuntimeError):
    """The cached Delta jars are not where the local session expects them."""


class SparkMasterUnreachableError(RuntimeError):
    """The standalone master the job is submitted to accepts no connection."""


MASTER_CONNECT_TIMEOUT_S = 3.0


def check_master(master: str, timeout_s: float = MASTER_CONNECT_TIMEOUT_S) -> None:
    """Fails in seconds, before anything is read or written, when no master of a standalone URL
    (`spark://host:port[,host:port]`) accepts a connection. Without it the driver retries its
    registration for about a minute and then dies with an error that does not name the master.
    Other masters (local, yarn, k8s) are left to Spark."""
    if not master.startswith("spark://"):
        return
    reasons = []
    for hostport in master.removeprefix("spark://").split(","):
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
            return
        except (OSError, ValueError) as e:
            reasons.append(f"{hostport}: {e}")
    raise SparkMasterUnreachableError(
        f"Spark master {master} is not reachable ({'; '.join(reasons)}): start it "
        "(scripts/spark_cluster.sh start) or set the master URL: spark-submit --master, or the host of "
        "the DAG's Spark connection (RLB_SPARK_CONN_ID, default rlb_spark)"
    )


def submitted_master() -> str:
    """The master spark-submit passed to this driver, read from the JVM it started (the context
    is not created yet)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return SparkConf().get("spark.master", "") or ""


@dataclass(frozen=True)
class SparkSettings:
    """Local-mode settings; ignored under spark-submit, where the submit command decides."""

    app_name: str = "rlb"
    master: str = "local[2]"  # this machine's two cores
    driver_memory: str = "6g"  # one JVM holds driver and executors in local mode
    shuffle_partitions: int = 8  # a few tasks per core; the default 200 is for clusters
    log_level: str = "WARN"
    jars_dir: Path = DEFAULT_JARS_DIR


def under_spark_submit() -> bool:
    """True when spark-submit launched this interpreter (it passes the gateway to Python)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def delta_jars(jars_dir: Path) -> list[str]:
    jars = sorted(str(p) for p in jars_dir.glob("delta-*.jar"))
    if not any("delta-spark" in j for j in jars) or not any("delta-storage" in j for j in jars):
        raise DeltaJarsMissingError(
            f"Delta jars not found in {jars_dir} (found {jars}); run `make setup` or "
            f"scripts/fetch_delta_jars.sh {jars_dir} once to fetch them from Maven Central."
        )
    return jars


def s3a_jars(jars_dir: Path) -> list[str]:
    """hadoop-aws and the AWS SDK modules it loads, where scripts/fetch_s3a_jars.sh put them (empty
    when not fetched: local warehouses need none)."""
    return sorted(str(p) for p in (jars_dir / "s3a").glob("*.jar"))


def get_spark(settings: SparkSettings | None = None) -> SparkSession:
    """Returns the active session or starts one configured for Delta."""
    settings = settings or SparkSettings()
    if SparkSession.getActiveSession() is None:
        check_master(submitted_master() if under_spark_submit() else settings.master)
    builder = SparkSession.builder
    if not under_spark_submit():  # spark-submit's --name (the DAG's rlb-<task>-<date>) wins
        builder = builder.appName(settings.app_name)
    for key, value in (REQUIRED_CONF | S3Settings.from_env().spark_conf()).items():
        builder = builder.config(key, value)
    if not under_spark_submit():
        # Spark's Python workers must run this interpreter, not whatever `python3` is on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        local_conf = {
            "spark.jars": ",".join(delta_jars(settings.jars_dir) + s3a_jars(settings.jars_dir)),
            "spark.driver.memory": settings.driver_memory,
            "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
            "spark.default.parallelism": str(settings.shuffle_partitions),
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.adaptive.enabled": "true",
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
            # Delta's own log checkpoints and stats collection are fine at default; keep the
            # local metastore out of the checkout.
            "spark.sql.warehouse.dir": str(PROJECT_ROOT / ".cache" / "spark-warehouse"),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={PROJECT_ROOT / '.cache' / 'derby'}",
        }
        builder = builder.master(settings.master)
        for key, value in local_conf.items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.log_level)
    log.info("spark %s, master %s", spark.version, spark.sparkContext.master)
    return spark


def local_submit_args(jars_dir: Path = DEFAULT_JARS_DIR) -> list[str]:
    """spark-submit arguments that give a local submit the same Delta set-up as get_spark()."""
    settings = SparkSettings()
    # spark-submit would give the driver (the whole local JVM) 1 GiB; get_spark() gives it this.
    args = [
        "--master",
        settings.master,
        "--driver-memory",
        settings.driver_memory,
        "--jars",
        ",".join(delta_jars(jars_dir) + s3a_jars(jars_dir)),
    ]
    for key, value in (REQUIRED_CONF | S3Settings.from_env().spark_conf()).items():
        args += ["--conf", f"{key}={value}"]
    return args


if __name__ == "__main__":  # `python -m jobs.spark_session` prints the local submit arguments
    print(" ".join(local_submit_args()))
