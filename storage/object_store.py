"""Object storage in one place: warehouse URIs, AWS settings, and the clients built from them.

A table on an S3 API has two spellings: `s3a://bucket/prefix` for Spark (Hadoop's S3A connector)
and `s3://bucket/prefix` for delta-rs, pyarrow and petastorm. Jobs take either; this module maps
one to the other, so no caller rewrites schemes itself.

Credentials and the endpoint come from the standard AWS variables only (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL`, `AWS_REGION` /
`AWS_DEFAULT_REGION`). The secret never leaves this process through us: the Spark conf built here
holds no key (S3A's default provider chain reads the same environment variables in every JVM),
`S3Settings` hides the keys from `repr`, and every error and summary names the URI, the endpoint
and the variable to set, never a value of a secret.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:  # pyarrow is imported only where a filesystem is built
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

SPARK_SCHEME = "s3a"  # Hadoop's S3A connector
ARROW_SCHEME = "s3"  # delta-rs, pyarrow, petastorm
REMOTE_SCHEMES = ("s3", "s3a", "s3n")
DEFAULT_REGION = "us-east-1"  # S3-compatible servers accept any region; AWS needs the bucket's own

# Seconds before an unreachable endpoint is reported: the checks below must fail fast, not after
# the SDKs' default minutes of retries.
CONNECT_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 10.0

ENV_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


class ObjectStoreError(RuntimeError):
    """An object-store URI or its settings are wrong, or the store refused or could not be reached.
    The message names the URI and what to set, never a secret."""


def is_remote(uri: str) -> bool:
    """True for an `s3://`, `s3a://` (or legacy `s3n://`) URI."""
    return urlparse(str(uri)).scheme in REMOTE_SCHEMES


def local_path(uri: str) -> str:
    """A `file://` URI or a plain path as a filesystem path; a remote URI unchanged. Delta logs and
    delta-rs report local tables as `file://` URIs, while our callers compare and open plain paths."""
    parsed = urlparse(str(uri))
    return unquote(parsed.path) if parsed.scheme in ("", "file") else str(uri)


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key prefix without slashes at either end) of an S3 URI."""
    parsed = urlparse(str(uri))
    if parsed.scheme not in REMOTE_SCHEMES:
        raise ObjectStoreError(f"{uri!r} is not an S3 URI: use s3a://bucket/prefix or s3://bucket/prefix")
    if len(parsed.netloc) < 3:
        raise ObjectStoreError(
            f"{uri!r} has no valid bucket name (3 or more characters): s3a://bucket/prefix"
        )
    return parsed.netloc, parsed.path.strip("/")


def _respell(uri: str, scheme: str) -> str:
    if not is_remote(uri):
        return str(uri)
    bucket, key = split_uri(uri)
    return f"{scheme}://{bucket}/{key}" if key else f"{scheme}://{bucket}"


def to_spark_uri(uri: str) -> str:
    """The `s3a://` spelling Spark needs; local paths unchanged."""
    return _respell(uri, SPARK_SCHEME)


def to_arrow_uri(uri: str) -> str:
    """The `s3://` spelling delta-rs and pyarrow need; local paths unchanged."""
    return _respell(uri, ARROW_SCHEME)


def arrow_path(uri: str) -> str:
    """`bucket/key` as pyarrow's S3FileSystem names an object."""
    bucket, key = split_uri(uri)
    return f"{bucket}/{key}" if key else bucket


@dataclass(frozen=True)
class S3Settings:
    """The AWS settings of this process. Keys are excluded from repr and from `describe()`."""

    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    endpoint: str | None = None  # e.g. http://127.0.0.1:9000; None: AWS itself
    region: str = DEFAULT_REGION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        env = os.environ if env is None else env
        return cls(
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            endpoint=(env.get("AWS_ENDPOINT_URL") or "").rstrip("/") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        )

    @property
    def allow_http(self) -> bool:
        return bool(self.endpoint and self.endpoint.startswith("http://"))

    def describe(self) -> dict[str, str | bool]:
        """What is safe to log or put in a summary: the endpoint and region, and whether keys are set."""
        return {
            "endpoint": self.endpoint or "AWS default",
            "region": self.region,
            "access_key_set": self.access_key is not None,
            "secret_key_set": self.secret_key is not None,
        }

    def require_keys(self, uri: str) -> None:
        pairs = (("AWS_ACCESS_KEY_ID", self.access_key), ("AWS_SECRET_ACCESS_KEY", self.secret_key))
        missing = [name for name, value in pairs if value is None]
        if missing:
            raise ObjectStoreError(
                f"{uri} is on object storage but {' and '.join(missing)} not set: export the store's "
                "access key pair (and AWS_ENDPOINT_URL for an S3-compatible server) before running"
            )

    def spark_conf(self) -> dict[str, str]:
        """`spark.hadoop.fs.s3a.*` settings for S3A. No key: S3A's default credential chain reads
        AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from each JVM's environment (or an instance role on
        AWS), so the secret is in no Spark conf, UI, event log or command line."""
        conf = {
            "spark.hadoop.fs.s3a.endpoint.region": self.region,
            # Fail fast on a dead endpoint instead of S3A's default of minutes of retries.
            "spark.hadoop.fs.s3a.attempts.maximum": "2",
            "spark.hadoop.fs.s3a.retry.limit": "2",
        }
        if self.endpoint:
            conf |= {
                "spark.hadoop.fs.s3a.endpoint": self.endpoint,
                "spark.hadoop.fs.s3a.path.style.access": "true",  # servers without bucket DNS names
                "spark.hadoop.fs.s3a.connection.ssl.enabled": str(not self.allow_http).lower(),
            }
        return conf

    def storage_options(self) -> dict[str, str]:
        """delta-rs `storage_options` (object_store's AWS keys). In-process only: never log it."""
        options = {"AWS_REGION": self.region}
        if self.access_key is not None:
            options["AWS_ACCESS_KEY_ID"] = self.access_key
        if self.secret_key is not None:
            options["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        if self.session_token is not None:
            options["AWS_SESSION_TOKEN"] = self.session_token
        if self.endpoint:
            options["AWS_ENDPOINT_URL"] = self.endpoint
            if self.allow_http:
                options["AWS_ALLOW_HTTP"] = "true"
        # Delta's S3 commits need a locking provider for concurrent writers; delta-rs writes only
        # in tests and tools here, one writer at a time (docs/cluster.md).
        options["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
        return options

    def arrow_filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow S3FileSystem for this store (petastorm and the loader read through it)."""
        import pyarrow.fs as pafs

        kwargs: dict[str, object] = {
            "region": self.region,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "request_timeout": REQUEST_TIMEOUT_S,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=2),
        }
        if self.access_key is not None:
            kwargs |= {"access_key": self.access_key, "secret_key": self.secret_key}
            if self.session_token is not None:
                kwargs["session_token"] = self.session_token
        if self.endpoint:
            parsed = urlparse(self.endpoint)
            kwargs |= {"endpoint_override": parsed.netloc or parsed.path, "scheme": parsed.scheme or "https"}
        return pafs.S3FileSystem(**kwargs)


def settings_for(uri: str, env: Mapping[str, str] | None = None) -> S3Settings:
    """The settings to reach `uri`, with the key pair required (a clear error if it is not set)."""
    settings = S3Settings.from_env(env)
    settings.require_keys(uri)
    return settings


def storage_options_for(uri: str) -> dict[str, str] | None:
    """delta-rs `storage_options` for `uri`: None for a local path, the AWS options otherwise."""
    return settings_for(uri).storage_options() if is_remote(uri) else None


@functools.cache
def _s3_filesystem(settings: S3Settings) -> pafs.S3FileSystem:
    """One client per distinct settings (a changed environment gets a new one, a test's too)."""
    return settings.arrow_filesystem()


def filesystem_for(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for `uri` and the path inside it: the local one for a path or a
    `file://` URI, S3 (from the AWS variables) for `s3://` / `s3a://`. pyarrow's own URI parsing
    would ignore AWS_ENDPOINT_URL and spell S3A as an unknown scheme."""
    import pyarrow.fs as pafs

    uri = str(uri)
    if is_remote(uri):
        return _s3_filesystem(S3Settings.from_env()), arrow_path(uri)
    return pafs.LocalFileSystem(), local_path(uri)


def parquet_file(uri: str | Path) -> pq.ParquetFile:
    """A Parquet file (footer read, row groups on demand) on local disk or an object store."""
    import pyarrow.parquet as pq

    fs, path = filesystem_for(uri)
    return pq.ParquetFile(path, filesystem=fs)


def read_parquet(uri: str | Path, columns: list[str] | None = None) -> pa.Table:
    """A whole Parquet file (or the `columns` of it) on local disk or an object store."""
    import pyarrow.parquet as pq

    fs, path = filesystem_for(uri)
    return pq.read_table(path, columns=columns, filesystem=fs)


_REFUSED = ("access denied", "access_denied", "accessdenied", "signature", "invalidaccesskeyid", "403")


def _scrub(text: str, settings: S3Settings) -> str:
    for secret in (settings.secret_key, settings.session_token):
        if secret:
            text = text.replace(secret, "***")
    return text


def check_access(uri: str, env: Mapping[str, str] | None = None) -> S3Settings:
    """Fails fast, before anything is written, when `uri`'s bucket cannot be used: keys unset,
    endpoint unreachable, keys refused, or bucket missing. One message naming the URI, the
    endpoint and what to set. Returns the settings for the caller to build its clients."""
    settings = settings_for(uri, env)
    bucket, _ = split_uri(uri)
    where = f"{uri} (endpoint {settings.endpoint or 'AWS default'}, region {settings.region})"
    fs = settings.arrow_filesystem()
    try:
        info = fs.get_file_info(bucket)
    except OSError as e:
        text = _scrub(str(e), settings)
        lowered = text.lower()
        if any(s in lowered for s in _REFUSED):
            hint = "the store refused the keys: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        elif any(s in lowered for s in ("connect", "resolve", "curl", "timeout", "network")):
            hint = "the endpoint cannot be reached: check AWS_ENDPOINT_URL and that the server is up"
        else:
            hint = "check AWS_ENDPOINT_URL, AWS_REGION and the key pair"
        raise ObjectStoreError(f"cannot use {where}: {hint} ({text.splitlines()[0][:300]})") from None
    import pyarrow.fs as pafs

    if info.type == pafs.FileType.NotFound:
        raise ObjectStoreError(
            f"cannot use {where}: bucket {bucket!r} does not exist; create it or point the warehouse "
            "at an existing bucket"
        )
    return settings


S3PROXY_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "s3proxy.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_s3_server(state: Path, buckets: tuple[str, ...], port: int | None = None) -> Iterator[str]:
    """scripts/s3proxy.sh on a loopback port for tests, benchmarks and the cluster demo: started
    with this process's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY as its only identity, `buckets`
    created, its endpoint yielded, and stopped (by its pid) on exit. The caller sets
    AWS_ENDPOINT_URL to the endpoint to use it."""
    port = port or free_port()
    started = subprocess.run(
        [str(S3PROXY_SCRIPT), "start", str(state), str(port), *buckets],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    if started.returncode != 0:
        raise ObjectStoreError(f"s3proxy did not start on 127.0.0.1:{port}: {started.stderr.strip()}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run([str(S3PROXY_SCRIPT), "stop", str(state)], check=False, timeout=30)
