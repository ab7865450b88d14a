"""Object storage on a real S3 API server (s3proxy on loopback, started and stopped here):
URI spellings, settings from the AWS variables, fail-fast checks that name the URI and what to
set, a Spark job writing through S3A, the loader reading `s3://` exactly as from local disk, and
no secret in any output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable

from jobs.gate import (
    _RENDERED,
    GX_DIR,
    MIRROR_DIR,
    GateRecord,
    GateRecordError,
    pull_quality_project,
    quality_project,
    quality_root,
    read_record,
    write_record,
)
from loader import (
    CompactLoader,
    CompactLoaderConfig,
    LoaderConfig,
    LoaderError,
    RequestLoader,
    Snapshot,
    SnapshotError,
    active_pins,
    column_bytes,
    label_rates,
    read_delta,
    register_pin,
    resolve_snapshot,
)
from loader.delta_read import files_with_deletion_vectors
from loader.petastorm_io import _remote_filesystem
from schemas import REQUEST_SAMPLES, REQUEST_SAMPLES_STAGING
from storage.object_store import (
    ObjectStoreError,
    S3Settings,
    check_access,
    local_s3_server,
    split_uri,
    to_arrow_uri,
    to_spark_uri,
)
from synthetic.tables import write_synthetic_samples
from tests.test_loader import (  # noqa: F401  (fixtures, used by local_tables)
    SMALL,
    compact_table,
    rows_of,
    table,
)

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


def test_entry_points_refuse_a_bad_store_in_one_line_and_write_nothing(store: Store, tmp_path: Path) -> None:
    warehouse = f"s3a://{BUCKET}/refused"
    for env in ({"AWS_SECRET_ACCESS_KEY": "wrong-" + SECRET}, {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}):
        for job in (
            ("jobs.init_warehouse", "--warehouse", warehouse),
            ("jobs.partitions", "--warehouse", warehouse, "--date", "2026-01-01", "impressions"),
            ("trainer.train", "--table", f"{warehouse}/request_samples", "--out", str(tmp_path / "run")),
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
    written = DeltaTable(
        f"s3://{BUCKET}/wh/impressions", storage_options=S3Settings.from_env().storage_options()
    )
    assert written.version() == 0
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


@pytest.fixture(scope="module")
def local_tables(request: pytest.FixtureRequest) -> tuple[str, str]:
    """tests/test_loader.py's synthetic request_samples and request_samples_compact on local disk."""
    return request.getfixturevalue("table"), request.getfixturevalue("compact_table")


def _upload(local: str | Path, key: str) -> str:
    """Copies a local table folder to `s3a://BUCKET/key` through the S3 API; returns that URI."""
    s3 = S3Settings.from_env().arrow_filesystem()
    pafs.copy_files(str(local), f"{BUCKET}/{key}", pafs.LocalFileSystem(), destination_filesystem=s3)
    return f"s3a://{BUCKET}/{key}"


def test_every_reader_reads_s3_as_local_disk(store: Store, local_tables: tuple[str, str]) -> None:
    """read_delta, label_rates, column_bytes and CompactLoader: the same answers from either copy."""
    local, local_compact = local_tables
    remote, remote_compact = _upload(local, "readers/request_samples"), _upload(local_compact, "readers/c")
    by_id = ("request_id", "ascending")
    assert read_delta(remote).sort_by([by_id]).equals(read_delta(local).sort_by([by_id]))
    assert read_delta(to_arrow_uri(remote), columns=["request_id", "date"], date_from="2026-01-02").equals(
        read_delta(local, columns=["request_id", "date"], date_from="2026-01-02")
    )
    assert label_rates(remote) == label_rates(local)
    assert column_bytes(resolve_snapshot(remote)) == column_bytes(resolve_snapshot(local))
    cfg = CompactLoaderConfig(batch_size=16, seed=3)
    from_disk, from_s3 = list(CompactLoader(local_compact, cfg)), list(CompactLoader(remote_compact, cfg))
    assert [b.requests.request_id for b in from_s3] == [b.requests.request_id for b in from_disk]
    assert rows_of([b.requests for b in from_s3]) == rows_of([b.requests for b in from_disk])


def test_deletion_vectors_are_found_in_a_remote_log(store: Store, tmp_path: Path) -> None:
    """The log replay that keeps read_delta from returning deleted rows works on S3 too."""
    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    dv = {"storageType": "u", "pathOrInlineDv": "x", "offset": 1, "sizeInBytes": 36, "cardinality": 2}
    commits: list[list[dict[str, object]]] = [
        [{"add": {"path": "a.parquet"}}, {"add": {"path": "b.parquet"}}],
        [{"remove": {"path": "b.parquet"}}, {"add": {"path": "b.parquet", "deletionVector": dv}}],
    ]
    for v, actions in enumerate(commits):
        (log / f"{v:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    remote = _upload(tmp_path / "t", "dv/t")
    for path in (str(tmp_path / "t"), remote):
        assert files_with_deletion_vectors(Snapshot(path, 1, ())) == ["b.parquet"]
        assert files_with_deletion_vectors(Snapshot(path, 0, ())) == []


def test_training_pins_live_beside_a_remote_table(store: Store, local_tables: tuple[str, str]) -> None:
    remote = _upload(local_tables[0], "pinned/request_samples")
    assert active_pins(remote) == []
    where = register_pin(to_arrow_uri(remote), 0, run_id="run-1", now_ms=1_000)
    assert where == f"s3://{BUCKET}/pinned/training_pins"
    assert (store.data / BUCKET / "pinned" / "training_pins" / "_delta_log").is_dir()
    assert active_pins(remote, now_ms=2_000) == [0]  # the s3a:// spelling finds the s3:// pin


def test_every_reader_refuses_a_bad_store_naming_the_uri_and_what_to_set(
    store: Store, local_tables: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = _upload(local_tables[0], "refused-readers/request_samples")
    readers = {
        "resolve_snapshot": lambda: resolve_snapshot(remote),
        "RequestLoader": lambda: RequestLoader(remote, LoaderConfig(batch_size=8)),
        "CompactLoader": lambda: CompactLoader(remote, CompactLoaderConfig(batch_size=8)),
        "read_delta": lambda: read_delta(remote),
        "label_rates": lambda: label_rates(remote),
        "active_pins": lambda: active_pins(remote),
        "register_pin": lambda: register_pin(remote, 0, run_id="refused"),
    }
    for change, expected in (
        ({"AWS_SECRET_ACCESS_KEY": "wrong-" + SECRET}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "AWS_ENDPOINT_URL"),
    ):
        with monkeypatch.context() as mp:
            for name, value in change.items():
                mp.setenv(name, value)
            for reader, call in readers.items():
                start = time.monotonic()
                with pytest.raises(LoaderError) as err:
                    call()
                message = str(err.value)
                assert time.monotonic() - start < 15, reader
                assert f"{BUCKET}/refused-readers" in message and expected in message, (reader, message)
                assert SECRET not in message and "Traceback" not in message, reader
    assert not (store.data / BUCKET / "refused-readers" / "training_pins").exists()


def test_the_gx_project_is_kept_beside_a_remote_table(store: Store) -> None:
    """What a validate wrote in its mirror is pushed to the store; another machine's mirror pulls
    the suites and results (not the rendered pages, which it renders itself)."""
    root = quality_root(f"s3a://{BUCKET}/gx-sync")
    shutil.rmtree(root, ignore_errors=True)
    with quality_project(root):
        for rel in ("expectations/s.json", "uncommitted/validations/r.json", f"{_RENDERED}index.html"):
            (root / GX_DIR / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / GX_DIR / rel).write_text(rel)
    stored = store.data / BUCKET / "gx-sync" / "_quality" / GX_DIR
    assert (stored / _RENDERED / "index.html").read_text() == f"{_RENDERED}index.html"
    shutil.rmtree(root)  # the second machine has no mirror
    assert pull_quality_project(root) == 2
    assert (root / GX_DIR / "uncommitted/validations/r.json").read_text() == "uncommitted/validations/r.json"
    assert not (root / GX_DIR / _RENDERED).exists()
    shutil.rmtree(root)


@pytest.mark.spark
def test_publish_on_a_second_machine_trusts_the_record_beside_the_table(
    store: Store, local_tables: tuple[str, str], tmp_path: Path
) -> None:
    """Machine A staged the day and recorded a passing gate; machine B, a fresh process with only
    the warehouse URI and the AWS variables (no mirror, no local state), publishes it."""
    warehouse, day = f"s3a://{BUCKET}/two-machines", "2026-01-01"
    _upload(local_tables[0], f"two-machines/{REQUEST_SAMPLES_STAGING.name}")
    staged = resolve_snapshot(REQUEST_SAMPLES_STAGING.location(warehouse), date_from=day, date_to=day)
    rows = staged.num_records
    assert rows
    root = quality_root(warehouse)
    record = GateRecord(
        REQUEST_SAMPLES_STAGING.name, day, staged.version, True, {}, {}, "index.html", rows=rows
    )
    write_record(root, record)
    shutil.rmtree(root, ignore_errors=True)
    aws = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")}
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYSPARK_PYTHON": sys.executable, **aws}
    out = subprocess.run(
        [sys.executable, "-m", "jobs.publish", "--warehouse", warehouse, "--date", day],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert SECRET not in out.stdout + out.stderr
    assert f'"rows": {rows}' in out.stderr  # the job's one-line JSON summary
    published = read_delta(REQUEST_SAMPLES.location(warehouse), columns=["request_id"])
    assert published.num_rows == rows
