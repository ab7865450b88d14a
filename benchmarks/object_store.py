"""RequestLoader from an S3 API against local disk: the same pinned table, the same epochs.

    python -m benchmarks.object_store        # ~1 minute on 2 cores -> results/object_store.json

The table is written once to local disk (synthetic, zstd) and copied object for object into a
bucket of s3proxy (scripts/s3proxy.sh, its filesystem backend on this machine's disk), started
on loopback for the run. Each case iterates full evaluation epochs (file order, full histories)
after one warm-up epoch, back to back; the best and median epoch are kept. The ratio s3/disk is
what HTTP, signing and the server add to the same bytes: on a real store, network bandwidth
and latency come on top (more loader workers hide latency; see docs/cluster.md). Remote row groups
are read with pyarrow's pre-buffering (loader/petastorm_io.py: one row group's column chunks in a
few coalesced range requests); without it, one GET per column chunk, the ratio was 0.48.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from benchmarks.common import write_result
from loader import LoaderConfig, RequestLoader, resolve_snapshot
from loader.petastorm_io import _remote_filesystem
from storage.object_store import S3Settings, local_s3_server
from synthetic.tables import SyntheticSamples, write_synthetic_samples

SIZE = SyntheticSamples(num_requests=2_500, dates=("2026-01-01", "2026-01-02"), rows_per_group=250)
BUCKET = "rlb-bench"


def _epochs(table: str, version: int, cfg: LoaderConfig, epochs: int) -> dict[str, Any]:
    loader = RequestLoader(table, cfg, version=version)
    times: list[float] = []
    requests = 0
    for _ in range(epochs + 1):  # the first epoch warms caches and the server
        start = time.perf_counter()
        requests = sum(len(b.request_id) for b in loader)
        times.append(time.perf_counter() - start)
    kept = times[1:]
    return {
        "requests": requests,
        "epoch_seconds_best": min(kept),
        "epoch_seconds_median": statistics.median(kept),
        "requests_per_s_best": requests / min(kept),
        "requests_per_s_median": requests / statistics.median(kept),
    }


def run(epochs: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rlb-bench-s3-") as tmp:
        local = Path(tmp) / "request_samples"
        version = write_synthetic_samples(local, SIZE)
        os.environ["AWS_ACCESS_KEY_ID"] = "rlb-bench"
        os.environ["AWS_SECRET_ACCESS_KEY"] = secrets.token_hex(16)  # a throwaway identity
        with local_s3_server(Path(tmp) / "s3proxy", (BUCKET,)) as endpoint:
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            _remote_filesystem.cache_clear()
            s3 = S3Settings.from_env().arrow_filesystem()
            pafs.copy_files(
                str(local), f"{BUCKET}/request_samples", pafs.LocalFileSystem(), destination_filesystem=s3
            )
            remote = f"s3://{BUCKET}/request_samples"
            cfg = LoaderConfig(batch_size=256, shuffle=False, workers=workers)
            snap = resolve_snapshot(str(local), version)
            disk = _epochs(str(local), version, cfg, epochs)
            remote_case = _epochs(remote, version, cfg, epochs)
    return {
        "table": {
            "requests": snap.num_records,
            "files": len(snap.data_files),
            "bytes": sum(f.size_bytes for f in snap.data_files),
        },
        "config": {"epochs": epochs, "workers": workers, "batch_size": cfg.batch_size, "shuffle": False},
        "disk": disk,
        "s3": remote_case,
        "ratio_s3_over_disk_best": remote_case["requests_per_s_best"] / disk["requests_per_s_best"],
        "ratio_s3_over_disk_median": remote_case["requests_per_s_median"] / disk["requests_per_s_median"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per case (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="loader reader threads (default: %(default)s)")
    p.add_argument(
        "--note",
        default="one run on a shared 2-core machine (other sessions' work ran beside it); the ratio "
        "is measured within the run",
        help="what else ran on the machine meanwhile",
    )
    args = p.parse_args(argv)
    result = run(args.epochs, args.workers)
    path = write_result("object_store", {**result, "note": args.note})
    print(f"s3/disk throughput ratio {result['ratio_s3_over_disk_median']:.2f} (median epochs) -> {path}")


if __name__ == "__main__":
    main()
