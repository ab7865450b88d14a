"""Loader throughput: requests/s and history tokens/s, from one Delta snapshot's files.

    python -m benchmarks.loader --quick        # a few minutes on 2 cores -> results/loader-quick.json
    python -m benchmarks.loader                # larger -> results/loader.json
    python -m benchmarks.loader --table warehouse/request_samples   # an existing table
    python -m benchmarks.loader --rows-per-group 250                # the row-group size sweep

(a) pyarrow `read_table` of the same files: the ceiling (decode only, no tensors);
(b) RequestLoader, evaluation mode (full histories up to 10k, file order);
(c) RequestLoader, training mode (Beta-sampled suffixes, mean 2k, shuffled);
(d) plain petastorm: a TransformSpec padding every list to 10,000 and its BatchedDataLoader;
(e) petastorm with the ragged handling in a TransformSpec (pad to the row group's maximum),
    the alternative to collating from Arrow in the loader.
(b) and (c) time epochs of one RequestLoader, as training iterates it (its start-up, the Delta
log and the footers, is reported apart). Each case runs its epochs back to back after two
warm-up epochs, and the best and the median epoch are kept; ratios are computed from both.
Back to back, not interleaved: on this VM an epoch of one case leaves the next case's first
epoch re-faulting its memory (pyarrow's read_table ran 1.3-1.8x slower right after a loader
epoch than after its own), which measures the neighbour, not the case.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from benchmarks.common import RESULTS, write_result
from loader import (
    HISTORY_FIELDS,
    LOADER_COLUMNS,
    TARGET_FIELDS,
    LengthSampling,
    LoaderConfig,
    RequestLoader,
    resolve_snapshot,
)
from schemas.constants import DEFAULT_L_MAX
from schemas.fields import LABEL_COLUMN_NAMES
from synthetic.tables import SyntheticSamples, write_synthetic_samples

SIZES = {
    "quick": SyntheticSamples(num_requests=2_500, dates=("2026-01-01", "2026-01-02"), rows_per_group=250),
    "full": SyntheticSamples(
        num_requests=5_000, dates=("2026-01-01", "2026-01-02", "2026-01-03"), rows_per_group=500
    ),
}
PAD_TO = DEFAULT_L_MAX
LIST_COLUMNS = (*HISTORY_FIELDS, *TARGET_FIELDS, *LABEL_COLUMN_NAMES)


def timed(repeats: int, fn: Callable[[], tuple[int, int]], warmup: int = 2) -> dict[str, float]:
    """Best and median of `repeats` runs of fn (and the median CPU time), after `warmup` runs
    (page cache, imports, allocator pools)."""
    for _ in range(warmup):
        fn()
    runs, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        requests, tokens = fn()
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    best, median = min(runs), float(np.median(runs))
    # CPU seconds of all threads: on few cores the loader's extra work (the padded copy, the
    # scheduling) shows here before it shows in the wall clock.
    return {
        "seconds": round(best, 4),
        "median_seconds": round(median, 4),
        "median_cpu_seconds": round(float(np.median(cpu)), 4),
        "requests": requests,
        "history_tokens": tokens,
        "requests_per_s": round(requests / best, 1),
        "median_requests_per_s": round(requests / median, 1),
        "tokens_per_s": round(tokens / best),
    }


def pyarrow_ceiling(files: list[str]) -> tuple[int, int]:
    requests = tokens = 0
    for f in files:
        t = pq.read_table(f, columns=list(LOADER_COLUMNS))
        requests += t.num_rows
        tokens += int(np.asarray(t.column("hist_len")).sum())
    return requests, tokens


def one_epoch(loader: RequestLoader) -> tuple[int, int]:
    requests = tokens = 0
    for batch in loader:
        requests += batch.size
        tokens += batch.num_history_tokens
    return requests, tokens


def _pad_spec(to_row_group_max: bool) -> Any:
    from petastorm.transform import TransformSpec
    from petastorm.unischema import UnischemaField

    def pad(df: Any) -> Any:
        import numpy as np

        for name in LIST_COLUMNS:
            width = (
                max((len(v) for v in df[name]), default=0)
                if to_row_group_max
                else (PAD_TO if name.startswith("hist_") else 32)
            )
            out = np.zeros((len(df), width), dtype=np.int64)
            for i, v in enumerate(df[name]):
                n = min(len(v), width)
                out[i, :n] = v[len(v) - n :]
            df[name] = list(out)
        return df

    fields = [
        UnischemaField(
            n,
            np.int64,
            (None,) if to_row_group_max else (PAD_TO if n.startswith("hist_") else 32,),
            None,
            False,
        )
        for n in LIST_COLUMNS
    ]
    return TransformSpec(pad, edit_fields=fields, removed_fields=["request_id"])


def plain_petastorm(files: list[str], batch_size: int, to_row_group_max: bool) -> tuple[int, int]:
    from petastorm import make_batch_reader
    from petastorm.pytorch import BatchedDataLoader

    urls = [f"file://{f}" for f in files]
    requests = tokens = 0
    reader = make_batch_reader(
        urls,
        schema_fields=list(LOADER_COLUMNS),
        transform_spec=_pad_spec(to_row_group_max),
        reader_pool_type="dummy",
        shuffle_row_groups=False,
        num_epochs=1,
    )
    try:
        if to_row_group_max:
            # Rows of different row groups have different widths: batch per row group.
            for rows in reader:
                requests += len(rows.hist_len)
                tokens += int(np.asarray(rows.hist_len).sum())
        else:
            for batch in BatchedDataLoader(reader, batch_size=batch_size):
                requests += int(batch["hist_len"].shape[0])
                tokens += int(batch["hist_len"].sum())
    finally:
        reader.stop()
        reader.join()
    return requests, tokens


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(
        prog="benchmarks.loader", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small data: a few minutes on 2 cores")
    p.add_argument(
        "--table", default=None, help="benchmark an existing request_samples table instead of synthetic data"
    )
    p.add_argument(
        "--workdir",
        default=".cache/bench-loader",
        help="scratch folder for the synthetic table (deleted first)",
    )
    p.add_argument(
        "--rows-per-group",
        type=int,
        default=None,
        help="Parquet row-group size of the synthetic table (default: 250 quick, 500 full); the loader "
        "schedules and decodes whole row groups, so small ones cost it more than read_table",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="petastorm reader threads")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per case (b and c), after a warm-up")
    p.add_argument(
        "--train-mean", type=float, default=2_000.0, help="mean sampled history length in training mode"
    )
    p.add_argument("--skip-plain", action="store_true", help="skip (d) and (e), the slow petastorm baselines")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--note", default="", help="written into the JSON as is: e.g. how busy the machine was")
    args = p.parse_args(argv)
    size = "quick" if args.quick else "full"
    if args.table:
        table = args.table
    else:
        table = str(Path(args.workdir) / "request_samples")
        shutil.rmtree(args.workdir, ignore_errors=True)
        t0 = time.perf_counter()
        spec = SIZES[size]
        if args.rows_per_group:
            spec = dataclasses.replace(spec, rows_per_group=args.rows_per_group)
        write_synthetic_samples(table, spec)
        print(f"wrote {table} ({time.perf_counter() - t0:.1f} s)")
    snap = resolve_snapshot(table)
    files = snap.files
    l_max = PAD_TO
    eval_cfg = LoaderConfig(batch_size=args.batch_size, shuffle=False, workers=args.workers)
    train_cfg = LoaderConfig(batch_size=args.batch_size, seed=1, workers=args.workers,
                             length_sampling=LengthSampling(l_max=l_max, mean=args.train_mean))
    t0 = time.perf_counter()
    eval_loader = RequestLoader(table, eval_cfg, version=snap.version)
    startup_s = time.perf_counter() - t0
    train_loader = RequestLoader(table, train_cfg, version=snap.version)
    results: dict[str, Any] = {}
    print(f"(a) pyarrow read_table: {args.repeats} epochs ...")
    results["a_pyarrow_read_table"] = timed(args.repeats, lambda: pyarrow_ceiling(files))
    print(f"(b) loader, evaluation mode: {args.repeats} epochs ...")
    results["b_loader_eval_full"] = timed(args.repeats, lambda: one_epoch(eval_loader))
    print(f"(c) loader, training mode: {args.repeats} epochs ...")
    results["c_loader_train_mean_2k"] = timed(args.repeats, lambda: one_epoch(train_loader))
    if not args.skip_plain:
        print("(d) plain petastorm, padded to 10k ...")
        results["d_petastorm_pad_10k"] = timed(
            1, lambda: plain_petastorm(files, args.batch_size, False), warmup=1
        )
        print("(e) petastorm, TransformSpec padding to the row-group maximum ...")
        results["e_petastorm_transformspec_rowgroup_max"] = timed(
            1, lambda: plain_petastorm(files, args.batch_size, True), warmup=1
        )
    a = results["a_pyarrow_read_table"]["requests_per_s"]
    a_median = results["a_pyarrow_read_table"]["median_requests_per_s"]
    ratios = {
        f"{k}_vs_pyarrow": round(v["requests_per_s"] / a, 3)
        for k, v in results.items()
        if k != "a_pyarrow_read_table"
    }
    ratios.update({f"{k}_vs_pyarrow_median": round(v["median_requests_per_s"] / a_median, 3)
                   for k, v in results.items() if k[0] in "bc"})
    if "d_petastorm_pad_10k" in results:
        ratios["b_vs_d"] = round(
            results["b_loader_eval_full"]["requests_per_s"]
            / results["d_petastorm_pad_10k"]["requests_per_s"],
            2,
        )
    row_groups = sum(pq.read_metadata(f).num_row_groups for f in files)
    payload = {
        "size": size if not args.table else "table",
        "table": table,
        "version": snap.version,
        "row_groups": row_groups,
        "files": len(files),
        "requests": snap.num_records,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "loader_startup_s": round(startup_s, 4),
        "workers": args.workers,
        "results": results,
        "ratios": ratios,
        "targets": {"b_vs_a": ">= 0.8 on a quiet machine", "b_vs_d": "well above 1"},
        **({"note": args.note} if args.note else {}),
    }
    out = args.out or RESULTS / ("loader-quick.json" if args.quick and not args.table else "loader.json")
    path = write_result("loader", payload, out)
    for k, v in results.items():
        print(f"{k:42s} {v['requests_per_s']:>10.1f} req/s {v['tokens_per_s']:>14,} tokens/s")
    print("ratios:", ratios)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
