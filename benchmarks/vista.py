"""VISTA benchmark: what cached summaries buy and what they cost, against STCA over the raw history.

(a) bytes per request: `request_samples_compact` (k x d int8 summary + scales + at most
    --max-recent raw events) vs `request_samples` (the full history), from the Delta data files'
    sizes, both written by Spark with zstd, at L = 2k and 10k;
(b) training step time (forward, backward, AdamW) at L = 2k and 10k: STCA over L events, VISTA
    trained jointly (summarizer over L events in the graph), and the VISTA ranker over cached
    summaries (a CompactBatch: k summary tokens + r raw events, nothing grows with L);
(c) the summarizer alone, softmax vs elu+1 linear seed attention, at L = 2k and 10k and two k;
(d) AUC on generated requests with a planted long-range signal: STCA over the full history,
    STCA over the recent r events only, VISTA (summary + the same r events), and VISTA served
    from int8-quantized cached summaries.

Data for (d) is generated as tensors (`synthetic.batches.planted_batch`), not by the Spark generator
(synthetic/logs.py): it plants the same kind of signal (each user has two interest topics,
topic = item id modulo the topic count, as in the generator; old events lean towards them, the
most recent `--clean-recent` events carry none; a target from an interest topic is finished with
logit +2), but gives thousands of requests with exactly L events
in seconds, where the Spark generator needs minutes per simulated day on this machine and gives
mostly short histories. (a) uses synthetic.tables' request_samples (contract-exact rows,
heavy-tailed lengths capped at L) rewritten by Spark, so both tables share one writer and codec.

    python -m benchmarks.vista --quick      # CPU, a few minutes -> results/vista-quick.json
    python -m benchmarks.vista              # larger -> results/vista.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import RESULTS, write_result
from benchmarks.trainer import measure_interleaved, train_step
from loader import RequestBatch, resolve_snapshot
from synthetic.batches import planted_batch, random_batch
from synthetic.tables import SyntheticSamples, write_synthetic_samples
from trainer.config import VISTAConfig
from trainer.metrics import auc, bootstrap_intervals, paired_difference
from trainer.registry import build_model
from trainer.vista import VistaRanker, VistaSummarizer, compact_batch


def model_config(args: argparse.Namespace, **overrides: Any) -> VISTAConfig:
    values: dict[str, Any] = {
        "d": args.d, "heads": args.heads, "layers": args.layers, "id_dim": 32, "head_hidden": 64,
        "item_buckets": 1 << 14, "author_buckets": 1 << 10, "user_buckets": 1 << 10,
        "summary_tokens": args.k, "recent_events": args.recent, "recon_items": 8,
    }  # fmt: skip
    return VISTAConfig(**{**values, **overrides})


# -- (a) bytes per request -------------------------------------------------------------------------
def table_bytes(path: str) -> tuple[int, int]:
    snap = resolve_snapshot(path)
    return sum(f.size_bytes for f in snap.data_files), sum(f.num_records or 0 for f in snap.data_files)


def bench_bytes(args: argparse.Namespace) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from jobs.delta_io import overwrite_where
    from jobs.spark_session import SparkSettings, get_spark
    from pipelines.summary_join import join_latest_summary
    from schemas import REQUEST_SAMPLES, REQUEST_SAMPLES_COMPACT, USER_SUMMARIES
    from trainer.quantize import quantize, to_bytes

    spark = get_spark(SparkSettings(app_name="bench-vista", driver_memory="3g", shuffle_partitions=4))
    k, d = args.k, args.d
    rows = []
    for length in args.lengths:
        with tempfile.TemporaryDirectory(prefix="vista-bytes-") as tmp:
            raw = f"{tmp}/raw"
            cfg = SyntheticSamples(
                num_requests=args.bytes_requests,
                dates=("2026-01-02",),
                l_max=length,
                mean_hist=0.6 * length,
                max_targets=16,
                num_users=args.bytes_users,
                seed=args.seed,
            )
            write_synthetic_samples(raw, cfg)
            samples_path = REQUEST_SAMPLES.location(tmp)
            samples = spark.read.format("delta").load(raw).select(*REQUEST_SAMPLES.column_names)
            overwrite_where(
                samples.repartition(1).sortWithinPartitions("user_id", "request_ts"),
                REQUEST_SAMPLES,
                samples_path,
                None,
            )
            # One refresh: every user summarized as of the start of the request day (int8 values of
            # quantized Gaussian tokens, about what a LayerNorm-ed summary looks like).
            user_rows = spark.read.format("delta").load(samples_path).select("user_id").distinct().collect()
            users = sorted({r["user_id"] for r in user_rows})
            q, scale = quantize(
                torch.randn(len(users), k, d, generator=torch.Generator().manual_seed(args.seed))
            )
            as_of = int(np.datetime64("2026-01-02", "ms").astype(np.int64))
            summ_rows = [(u, as_of, "bench", "int8", k, d, blob, s.tolist(), length, "2026-01-01")
                         for u, blob, s in zip(users, to_bytes(q), scale, strict=True)]
            summaries = spark.createDataFrame(summ_rows, USER_SUMMARIES.spark_schema())
            compact_path = REQUEST_SAMPLES_COMPACT.location(tmp)
            compact = (
                spark.read.format("delta")
                .load(samples_path)
                .transform(join_latest_summary(summaries, "bench", args.max_recent))
            )
            overwrite_where(
                compact.repartition(1).sortWithinPartitions("user_id", "request_ts"),
                REQUEST_SAMPLES_COMPACT,
                compact_path,
                None,
            )
            stats = (
                spark.read.format("delta")
                .load(compact_path)
                .agg(
                    F.avg("source_hist_len").alias("hist"),
                    F.avg("hist_len").alias("raw"),
                    F.count("*").alias("n"),
                )
                .first()
            )
            assert stats is not None
            full_bytes, n_full = table_bytes(samples_path)
            compact_bytes, n_compact = table_bytes(compact_path)
            row = {
                "l_max": length,
                "requests": n_full,
                "mean_hist_len": round(float(stats["hist"]), 1),
                "mean_raw_suffix": round(float(stats["raw"]), 1),
                "request_samples_bytes_per_request": round(full_bytes / n_full),
                "compact_bytes_per_request": round(compact_bytes / n_compact),
                "ratio": round(full_bytes / n_full / (compact_bytes / n_compact), 1),
            }
        print(f"(a) L={length}: {row}", flush=True)
        rows.append(row)
    prod_k, prod_d = 128, 256
    return {
        "k": k, "d": d, "max_recent": args.max_recent, "rows": rows,
        "summary_payload_bytes": {"this_k_d_int8": k * d + 4 * k,
                                  "paper_k128_d256_int8": prod_k * prod_d + 4 * prod_k,
                                  "paper_k128_d256_fp16": 2 * prod_k * prod_d + 4 * prod_k},
    }  # fmt: skip


# -- (b) training step time ------------------------------------------------------------------------
def bench_steps(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device("cpu")
    config = model_config(args)
    b, m = args.batch_size, args.targets
    rows = []
    for length in args.lengths:
        batch = random_batch([length] * b, [m] * b, seed=args.seed)
        torch.manual_seed(args.seed)
        stca, vista = build_model("stca", config), build_model("vista", config)
        assert isinstance(vista, VistaRanker)
        cached = compact_batch(vista, batch, "int8")
        # what the compact table holds
        cached = replace(cached, requests=batch.with_history_suffix(args.recent))
        steps: dict[str, Callable[[], None]] = {
            "stca": train_step(stca, batch, "rlb", device, "fp32"),
            "vista_joint": train_step(vista, batch, "rlb", device, "fp32"),
            "vista_cached": train_step(vista, cached, "rlb", device, "fp32"),  # type: ignore[arg-type]
        }
        measured = measure_interleaved(
            steps, dict.fromkeys(steps, args.repeats), device, dict.fromkeys(steps, args.warmup)
        )
        row: dict[str, Any] = {"hist_len": length, **{name: r.as_dict() for name, r in measured.items()}}
        row["stca_over_vista_joint"] = round(measured["stca"].ms / measured["vista_joint"].ms, 2)
        row["stca_over_vista_cached"] = round(measured["stca"].ms / measured["vista_cached"].ms, 1)
        print(f"(b) L={length}: " + ", ".join(f"{n} {r.ms:.1f} ms" for n, r in measured.items()), flush=True)
        rows.append(row)
        del stca, vista, steps
    return {"batch_size": b, "targets": m, "config": config.to_dict(), "rows": rows}


# -- (c) summarizer: softmax vs linear -------------------------------------------------------------
def bench_summarizer(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device("cpu")
    rows = []
    for length in args.lengths:
        x = torch.randn(args.summarizer_batch, length, args.d)
        mask = torch.ones(args.summarizer_batch, length, dtype=torch.bool)
        for k in args.summarizer_k:
            torch.manual_seed(args.seed)
            mods = {
                kind: VistaSummarizer(model_config(args, summary_tokens=k, summary_attention=kind))
                for kind in ("softmax", "linear")
            }

            def step(
                mod: VistaSummarizer, x: torch.Tensor = x, mask: torch.Tensor = mask
            ) -> Callable[[], None]:
                def run() -> None:
                    mod(x, mask).sum().backward()
                    mod.zero_grad(set_to_none=True)

                return run

            measured = measure_interleaved(
                {kind: step(mod) for kind, mod in mods.items()},
                dict.fromkeys(mods, args.repeats),
                device,
                dict.fromkeys(mods, args.warmup),
            )
            row = {"hist_len": length, "k": k, "d": args.d, "heads": args.heads,
                   **{kind: r.as_dict() for kind, r in measured.items()},
                   "linear_speedup": round(measured["softmax"].ms / measured["linear"].ms, 2)}
            print(
                f"(c) L={length} k={k}: softmax {measured['softmax'].ms:.1f} ms, "
                f"linear {measured['linear'].ms:.1f} ms",
                flush=True,
            )
            rows.append(row)
    return {"batch_size": args.summarizer_batch, "rows": rows}


# -- (d) AUC with a planted long-range signal ------------------------------------------------------
def bench_auc(args: argparse.Namespace) -> dict[str, Any]:
    length, r = args.auc_len, args.recent
    # user_buckets=1: planted requests come from random users, so a user-id table only memorises
    # noise (with 1,024 buckets STCA stayed at AUC 0.50 even at L = 64, where without it passes 0.6).
    config = model_config(
        args,
        d=args.auc_d,
        heads=2,
        layers=2,
        id_dim=32,
        head_hidden=64,
        summary_tokens=args.auc_k,
        user_buckets=1,
    )
    evaluation = planted_batch(
        args.auc_eval, length, args.targets, clean_recent=args.clean_recent, seed=10_000
    )

    def recent_only(batch: RequestBatch) -> RequestBatch:
        return batch.with_history_suffix(r)

    variants: dict[str, tuple[str, Callable[[RequestBatch], RequestBatch]]] = {
        "stca_full": ("stca", lambda x: x),
        "stca_recent": ("stca", recent_only),
        "vista": ("vista", lambda x: x),
    }
    out: dict[str, Any] = {
        "hist_len": length,
        "recent_events": r,
        "clean_recent": args.clean_recent,
        "steps": args.auc_steps,
        "batch_size": args.auc_batch,
        "config": config.to_dict(),
        "auc": {},
        "auc_ci": {},  # 95% bootstrap intervals; each generated request is its own (independent) user
        "train_seconds": {},
    }
    labels = evaluation.labels[..., 0].flatten()
    users = torch.arange(evaluation.size)[:, None].expand(-1, evaluation.labels.shape[1]).flatten()
    scores: dict[str, torch.Tensor] = {}

    def record(name: str, score: torch.Tensor) -> None:
        scores[name] = score.flatten()
        out["auc"][name] = round(auc(scores[name], labels), 4)
        ci = bootstrap_intervals(scores[name], labels, users, seed=args.seed)["auc_ci"]
        out["auc_ci"][name] = [round(v, 4) for v in ci] if ci else None

    models: dict[str, torch.nn.Module] = {}
    for name, (kind, view) in variants.items():
        torch.manual_seed(args.seed)
        model = build_model(kind, config)
        opt = torch.optim.AdamW(model.parameters(), lr=args.auc_lr)
        t0 = time.perf_counter()
        for step in range(args.auc_steps):
            batch = view(planted_batch(args.auc_batch, length, args.targets, clean_recent=args.clean_recent,
                                        seed=args.seed * 100_003 + step))
            _, loss = model(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        out["train_seconds"][name] = round(time.perf_counter() - t0, 1)
        probs = model.predict(view(evaluation))[..., 0]
        record(name, probs)
        models[name] = model
        print(f"(d) {name}: AUC {out['auc'][name]} ({out['train_seconds'][name]} s)", flush=True)
    # The ceiling: the share of the request's history from the target's topic, a score that reads
    # the planted rule.
    same_author = evaluation.hist_author_id[:, None, :] == evaluation.tgt_author_id[:, :, None]
    match = same_author.float().mean(-1)  # (B, M)
    record("oracle_topic_share", match)
    vista = models["vista"]
    assert isinstance(vista, VistaRanker)
    served = vista.predict(compact_batch(vista, evaluation, "int8"))[..., 0]  # type: ignore[arg-type]
    record("vista_cached_int8", served)
    a = out["auc"]
    out["gap_vista_vs_stca_full"] = round(a["vista"] - a["stca_full"], 4)
    out["gap_vista_vs_stca_recent"] = round(a["vista"] - a["stca_recent"], 4)
    out["gap_int8_cache_vs_joint"] = round(a["vista_cached_int8"] - a["vista"], 4)
    # A gap is a win only when the paired bootstrap interval of the difference excludes 0.
    out["gap_verdicts"] = {
        f"{x} vs {y}": paired_difference(scores[x], scores[y], labels, users, seed=args.seed)
        for x, y in (("vista", "stca_full"), ("vista", "stca_recent"), ("vista_cached_int8", "vista"))
    }
    return out


# -- CLI -------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks.vista", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="CPU-sized (a few minutes) -> results/vista-quick.json"
    )
    p.add_argument(
        "--sections",
        nargs="+",
        choices=["bytes", "steps", "summarizer", "auc"],
        default=["bytes", "steps", "summarizer", "auc"],
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lengths", type=int, nargs="+", default=[2_000, 10_000])
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--k", type=int, default=32, help="summary tokens")
    p.add_argument("--recent", type=int, default=64, help="raw recent events the VISTA ranker reads")
    p.add_argument("--max-recent", type=int, default=64, help="(a) raw events kept per compact row")
    p.add_argument("--batch-size", type=int, default=None, help="(b) requests per batch")
    p.add_argument("--targets", type=int, default=8)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--bytes-requests", type=int, default=None)
    p.add_argument("--bytes-users", type=int, default=None)
    p.add_argument("--summarizer-batch", type=int, default=8)
    p.add_argument("--summarizer-k", type=int, nargs="+", default=[32, 128])
    p.add_argument("--auc-len", type=int, default=None)
    p.add_argument("--auc-steps", type=int, default=None)
    p.add_argument("--auc-batch", type=int, default=32)
    p.add_argument("--auc-eval", type=int, default=1_024)
    p.add_argument("--auc-d", type=int, default=32)
    p.add_argument("--auc-k", type=int, default=8)
    p.add_argument("--auc-lr", type=float, default=1e-3)
    p.add_argument(
        "--clean-recent", type=int, default=256, help="(d) most recent events without the planted signal"
    )
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    quick = a.quick
    defaults = {"batch_size": 4 if quick else 16, "warmup": 2, "repeats": 7 if quick else 9,
                "bytes_requests": 120 if quick else 600, "bytes_users": 30 if quick else 150,
                "auc_len": 512 if quick else 2_000, "auc_steps": 800 if quick else 1_000}  # fmt: skip
    for key, value in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    return a


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    payload: dict[str, Any] = {"args": vars(args), "torch_threads": torch.get_num_threads(), "device": "cpu"}
    sections = {"steps": bench_steps, "summarizer": bench_summarizer, "auc": bench_auc, "bytes": bench_bytes}
    for name in args.sections:
        t0 = time.perf_counter()
        payload[name] = sections[name](args)
        payload[name]["seconds"] = round(time.perf_counter() - t0, 1)
    name = "vista-quick" if args.quick else "vista"
    out = write_result(name, payload, Path(args.out) if args.out else RESULTS / f"{name}.json")
    print(json.dumps({k: v for k, v in payload.items() if k != "args"}, indent=1, default=str)[:4000])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
