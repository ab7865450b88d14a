"""Object storage on a real S3 API server (s3proxy on loopback, started and stopped here):
URI spellings, settings from the AWS variables, fail-fast checks that name the URI and what to
set, a Spark job writing through S3A, the loader reading `s3://` exactly as from local disk, and
no secret in any output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable

from jobs.gate import MIRROR_DIR, GateRecord, GateRecordError, quality_root, read_record, write_record
from jobs.object_store import (
    ObjectStoreError,
    S3Settings,
    check_access,
    local_s3_server,
    split_uri,
    to_arrow_uri,
    to_spark_uri,
)
from loader import LoaderConfig, RequestLoader, SnapshotError, resolve_snapshot
from loader.petastorm_io import _remote_filesystem
from synthetic.tables import write_synthetic_samples
from tests.test_loader import SMALL, rows_of

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "rlb-test"
SECRET = "not-a-real-secret-7f3a9c"  # grepped for in every captured output
KEY_ID = "rlb-test-key"

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Store:
    endpoint: str
    data: Path  # s3proxy's filesystem backend: one folder per bucket


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """s3proxy on a free loopback port, with this module's AWS variables set for the process."""
    if not list((ROOT / ".cache" / "jars").glob("s3proxy-*-jar-with-dependencies.jar")):
        pytest.fail("no s3proxy jar in .cache/jars: run `make s3a-jars` (scripts/fetch_s3a_jars.sh) once")
    state = tmp_path_factory.mktemp("s3proxy")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        with local_s3_server(state, (BUCKET,)) as endpoint:
            mp.setenv("AWS_ENDPOINT_URL", endpoint)
            _remote_filesystem.cache_clear()
            try:
                yield Store(endpoint, state / "data")
            finally:
                _remote_filesystem.cache_clear()
        assert SECRET not in (state / "s3proxy.log").read_text()


def test_uri_spellings_map_one_to_the_other() -> None:
    assert to_spark_uri("s3://b-1/w/x/") == "s3a://b-1/w/x"
    assert to_arrow_uri("s3a://b-1/w") == "s3://b-1/w"
    assert to_arrow_uri("/tmp/w") == "/tmp/w" and to_spark_uri("warehouse") == "warehouse"
    assert split_uri("s3a://bucket") == ("bucket", "")
    with pytest.raises(ObjectStoreError, match="bucket name"):
        split_uri("s3a://ab/x")


def test_settings_keep_the_secret_out_of_repr_summary_and_spark_conf() -> None:
    settings = S3Settings.from_env(
        {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": "http://h:9/"}
    )
    assert settings.endpoint == "http://h:9" and settings.allow_http
    for text in (repr(settings), str(settings.describe()), str(settings.spark_conf())):
        assert SECRET not in text and KEY_ID not in text
    assert settings.spark_conf()["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert settings.storage_options()["AWS_SECRET_ACCESS_KEY"] == SECRET  # in-process only
    with pytest.raises(ObjectStoreError, match="AWS_SECRET_ACCESS_KEY"):
        S3Settings.from_env({"AWS_ACCESS_KEY_ID": KEY_ID}).require_keys("s3a://bucket/w")


@pytest.mark.parametrize(
    ("change", "uri", "expected"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "wrong-" + SECRET}, f"s3a://{BUCKET}/w", "AWS_SECRET_ACCESS_KEY"),
        ({}, "s3a://no-such-bucket/w", "bucket 'no-such-bucket' does not exist"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, f"s3a://{BUCKET}/w", "AWS_ENDPOINT_URL"),
    ],
    ids=["wrong-credentials", "missing-bucket", "unreachable-endpoint"],
)
def test_bad_store_fails_fast_naming_the_uri_and_what_to_set(
    store: Store, change: dict[str, str], uri: str, expected: str
) -> None:
    start = time.monotonic()
    with pytest.raises(ObjectStoreError) as err:
        check_access(uri, {**os.environ, **change})
    assert time.monotonic() - start < 15
    assert uri in str(err.value) and expected in str(err.value)
    assert "wrong-" not in str(err.value) and SECRET not in str(err.value)
    check_access(f"s3a://{BUCKET}/w")  # the good settings pass


def _job(
    *args: str, env: dict[str, str] | None = None, timeout: int = 240
) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, env=full, timeout=timeout
    )


def test_entry_points_refuse_a_bad_store_in_one_line_and_write_nothing(store: Store) -> None:
    warehouse = f"s3a://{BUCKET}/refused"
    for env in ({"AWS_SECRET_ACCESS_KEY": "wrong-" + SECRET}, {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}):
        for job in (
            ("jobs.init_warehouse", "--warehouse", warehouse),
            ("jobs.partitions", "--warehouse", warehouse, "--date", "2026-01-01", "impressions"),
        ):
            out = _job(*job, env=env, timeout=60)
            assert out.returncode in (1, 2), out.stderr
            last = out.stderr.strip().splitlines()[-1]
            assert warehouse in last and ("AWS_" in last), out.stderr
            assert "Traceback" not in out.stderr and SECRET not in out.stdout + out.stderr
    assert not (store.data / BUCKET / "refused").exists()


@pytest.mark.spark
def test_spark_job_writes_through_s3a_and_delta_rs_reads_it(store: Store) -> None:
    """A real JVM with the S3A jars against the HTTP server; the secret in no output."""
    submit_args = _job("jobs.spark_session", timeout=60)
    assert submit_args.returncode == 0 and SECRET not in submit_args.stdout
    assert "hadoop-aws-3.4.1.jar" in submit_args.stdout, "the S3A jars are not on the submit line"
    out = _job("jobs.init_warehouse", "--warehouse", f"s3a://{BUCKET}/wh")
    assert out.returncode == 0, out.stderr[-3000:]
    assert SECRET not in out.stdout + out.stderr
    table = DeltaTable(
        f"s3://{BUCKET}/wh/impressions", storage_options=S3Settings.from_env().storage_options()
    )
    assert table.version() == 0
    listed = _job(
        "jobs.partitions", "--warehouse", f"s3a://{BUCKET}/wh", "--date", "2026-01-01", "impressions"
    )
    assert listed.returncode == 1 and '"missing": ["impressions"]' in listed.stdout


def test_loader_yields_the_same_batches_from_s3_as_from_local_disk(store: Store, tmp_path: Path) -> None:
    local = tmp_path / "request_samples"
    write_synthetic_samples(local, SMALL)
    version = write_synthetic_samples(local, SMALL, mode="append")  # two versions: pin the first
    s3 = S3Settings.from_env().arrow_filesystem()
    pafs.copy_files(
        str(local), f"{BUCKET}/tables/request_samples", pafs.LocalFileSystem(), destination_filesystem=s3
    )
    remote = f"s3a://{BUCKET}/tables/request_samples"
    assert (
        resolve_snapshot(remote, version - 1).num_records
        == resolve_snapshot(str(local), version - 1).num_records
    )
    for cfg in (LoaderConfig(batch_size=32, seed=7, workers=2), LoaderConfig(batch_size=50, shuffle=False)):
        from_disk = list(RequestLoader(str(local), cfg, version=version - 1))
        from_s3 = list(RequestLoader(to_arrow_uri(remote), cfg, version=version - 1))
        assert [b.request_id for b in from_s3] == [b.request_id for b in from_disk]
        assert rows_of(from_s3) == rows_of(from_disk)
    with pytest.raises(SnapshotError, match="no Delta table|cannot load"):
        resolve_snapshot(f"s3://{BUCKET}/tables/absent")


def test_gate_record_of_a_remote_warehouse_lives_beside_the_table(store: Store) -> None:
    warehouse = f"s3a://{BUCKET}/gated"
    root = quality_root(warehouse)
    assert root.is_relative_to(MIRROR_DIR), "GX's own folder must be a local mirror"
    record = GateRecord("request_samples_staging", "2026-01-01", 3, True, {}, {}, "index.html", rows=5)
    written = write_record(root, record)
    assert written == f"s3://{BUCKET}/gated/_quality/gate/request_samples_staging/date=2026-01-01.json"
    assert (store.data / BUCKET / "gated" / "_quality" / "gate").is_dir()
    assert not (root / "gate").exists(), "the record must be on the object store, not in the mirror"
    assert read_record(quality_root(warehouse), "2026-01-01") == record  # as another machine reads it
    with pytest.raises(GateRecordError, match=r"s3://rlb-test/gated/_quality/gate/.*2026-01-02"):
        read_record(root, "2026-01-02")
