"""Writes docs/benchmarks.md from benchmarks/results/*.json, so measured numbers live in one page.

    python -m benchmarks.results_page            # rewrite docs/benchmarks.md
    python -m benchmarks.results_page --check    # exit 1 if the page is not what the files give

Why generated: numbers typed by hand into prose drift from the files the benchmarks write. Here
every table cell is read from a results file; the prose beside it (what a benchmark measures,
what its numbers mean) is held in `SPECS` below, one entry per results file. A results file
without an entry still gets a section (its numeric fields, flattened), so a new benchmark shows
up at once; give it an entry to choose its headline numbers. The output is deterministic: files
in a fixed order, fixed float formats, sorted hardware keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"
REGENERATE = "python -m benchmarks.results_page"

# Top-level fields that describe where a run happened, shown beside the `hardware` block.
RUN_CONTEXT_KEYS = ("device", "device_name", "threads", "torch", "torch_threads", "workers", "note")
# Subtrees the generic (spec-less) section leaves out: inputs, not results.
GENERIC_SKIP = ("args", "config", "hardware")
GENERIC_MAX_ROWS = 40


class ResultsPageError(ValueError):
    """A results file does not hold a field its spec names."""


@dataclass(frozen=True)
class Row:
    """One table row: cells are dotted paths into the JSON ("a.b.0.c"), or "num / den" for a
    ratio of two paths; several cells are joined with " / ". `fmt` formats every cell, or one
    format per cell when it is a tuple."""

    label: str
    cells: tuple[str, ...]
    fmt: str | tuple[str, ...] = "{:,}"

    def formats(self) -> tuple[str, ...]:
        fmts = (self.fmt,) * len(self.cells) if isinstance(self.fmt, str) else self.fmt
        if len(fmts) != len(self.cells):
            raise ResultsPageError(f"row {self.label!r}: {len(self.cells)} cells but {len(fmts)} formats")
        return fmts


@dataclass(frozen=True)
class Spec:
    """What one results file is: a title, prose, the command that rewrites it, its headline rows."""

    title: str
    about: str
    command: str
    rows: tuple[Row, ...]


def _r(label: str, *cells: str, fmt: str | tuple[str, ...] = "{:,}") -> Row:
    return Row(label, cells, fmt)


def _gate_rows() -> tuple[Row, ...]:
    formats = ("boolean_only", "basic_no_examples", "basic", "summary")
    per_format = (
        ("GX seconds: BOOLEAN_ONLY / BASIC, no examples / BASIC / SUMMARY", "gx_seconds_median", "{:.2f}"),
        ("whole validate seconds, same order", "validate_seconds_median", "{:.2f}"),
        ("Data Docs tracebacks per run, same order", "data_docs_tracebacks", "{:,}"),
    )
    rows = [_r(what, *(f"results.formats.{f}.{k}" for f in formats), fmt=fmt) for what, k, fmt in per_format]
    return (*rows, _r("rows of the day", "results.rows"))


def _lengths(prefix: str, keys: Sequence[str], suffix: str = "") -> tuple[str, ...]:
    return tuple(f"{prefix}.{k}{suffix}" for k in keys)


def _with_ci(prefix: str, metric: str, keys: Sequence[str]) -> tuple[str, ...]:
    """Cells 'prefix.metric.k ± prefix.metric_ci.k': each value with its 95% user-bootstrap
    interval (trainer/metrics.py), "n/a" where a result file predates intervals."""
    return tuple(f"{prefix}.{metric}.{k} ± {prefix}.{metric}_ci.{k}" for k in keys)


_BUILD_ABOUT = """\
`build_request_samples` on generated logs (`benchmarks/build.py`). Three questions:

* **Storage**: bytes of the history columns (zstd) in the request-level table against the flat
  one-row-per-impression table, per target. "Shuffled" is the flat table as a point-wise trainer
  reads it (rows shuffled, so a request's m copies of the history no longer sit side by side and
  zstd cannot fold them); "as written" keeps a request's copies adjacent, so zstd folds most of
  them and the flat layout looks cheaper on disk than it is to read. The request-level layout
  stores each history once, so its advantage grows with the number of targets m.
* **Speed**: our slice-based pipeline against the naive formulation (explode the actions per
  request, filter by time, rank, collect_list, sort), both computed in full and sent to Spark's
  `noop` sink so only the computation is timed.
* **Linearity**: history elements written per second as L_max grows: time stays roughly flat
  while the elements grow, so the cost follows the data written, not L_max."""

_LOADER_ABOUT = """\
Requests/s over epochs of one loader (`benchmarks/loader.py`) on a synthetic `request_samples`
table (heavy-tailed history lengths, a few percent at 10,000 events):
(a) pyarrow `read_table` of the same files, the ceiling (decode only, no tensors);
(b) `RequestLoader` in evaluation mode, full histories;
(c) `RequestLoader` in training mode, Beta-sampled suffixes with mean 2k;
(d) plain petastorm, every list padded to 10,000 in a TransformSpec;
(e) petastorm with the ragged handling in a TransformSpec (pad to the row group's maximum), the
alternative to collating from Arrow in the loader.

The target is (b) >= 0.7x (a). The loader spends more CPU per epoch than decoding alone (the
padded copy and the scheduling), so on 2 cores the ratio is bounded near 0.8x. Each epoch pays a
pipeline fill and drain of about two row groups, so small epochs (few row groups) score lower:
compare the quick and the full file. Over 4 full runs the best-epoch ratio ranged 0.72x-0.79x;
15,000 requests in 15 row groups of 1,000 gave 0.62x, in 60 row groups of 250 0.73x
(`--rows-per-group N`; no results files kept for those)."""

_TRAINER_ABOUT = """\
What RLB and STCA buy, on synthetic request batches (`benchmarks/trainer.py`, CPU, one torch
thread):

* **RLB vs point-wise**: a full training step (forward, backward, AdamW) with m = 8 targets and
  L = 2,048 events, d = 256. RLB computes the history transform once per request instead of once
  per target; the target is a speed-up of at least 0.8 m = 6.4x. Both attention paths are shown
  ("shortcut": u = (q W_Q) W_K^T, so X~ W_K and X~ W_V are never built; "sdpa": PyTorch's
  scaled_dot_product_attention).
* **STCA vs full self-attention** over [history; target], forward + backward at L = 1k .. 10k
  (d = 64): targets >= 20x at 10k and STCA time(10k) / time(1k) <= 11 (linear in L), measured at
  every length, never extrapolated.
* **Attention paths**: one layer, shortcut vs SDPA at L = 2,048; the reason `shortcut` is the
  default attention."""

_VISTA_ABOUT = """\
What cached VISTA summaries buy and cost against STCA over the raw history
(`benchmarks/vista.py`; d = 64, 2 layers, k = 32 summary tokens, r = 64 raw events):

* **Bytes per request**: `request_samples_compact` (int8 k x d summary + scales + at most 64 raw
  events) vs `request_samples`, both written by Spark with zstd. Several requests per user share
  one summary in adjacent rows, which partly compresses away. The saving depends on k d against L
  and on the requests per user per refresh: one summary is small here (the table's last row) and
  would be far larger at the paper's k = 128, d = 256, still below a 10k history but not
  by the ratio shown.
* **Training step** (forward, backward, AdamW): STCA over L events, VISTA trained jointly (the
  summarizer over L events in the graph), and the VISTA ranker on cached summaries (a
  `CompactBatch`: nothing grows with L).
* **Summarizer** forward + backward, softmax vs elu+1 linear seed attention: linear pays off only
  when k exceeds the head width (k = 128, d_h = 16 here).
* **AUC** on generated tensors with a planted long-range signal (the newest 256 events carry
  none): STCA over the full history, STCA over the recent 64 events, VISTA (summary + the same 64
  events) and VISTA served from the int8 cache; the topic-share oracle bounds what is learnable.
  The summary recovers most of what lies beyond the recent events; with the full run's longer
  budget it keeps nearly all of what the full history is worth.

The trade-off: the compact row and the ranking step stop growing with L, and the summarizer's
O(k L) cost moves into a daily batch job paid once per user. Given up: freshness (events after
the refresh are seen only through the r raw events), a model-versioned cache to rebuild when the
summarizer changes, and, with joint training, a step that is still O(k L)."""

_QUALITY_ABOUT = """\
Does a model read far back? (`benchmarks/quality.py`.) Generated logs (`synthetic/logs.py`) with
the planted long-range signal: old events lean to each user's two interest topics, recent ones do
not, interest-topic targets finish more often, and with `--affinity-logit` each user has a hidden
taste per author that shows only in how they finished that author's old videos. Finish AUC at
inference lengths 32 / 512 / 4,000, STCA against mean pooling, trained the same way (800 steps at
lr 1e-3, Beta lengths with mean 500, no user-id embedding). Two oracles bound what reading
further back can gain: the share of history events from the target's topic, and the finish rate
of the target author's events. In this run STCA learns both signals and gains with length; it
leads at 32 events and ties mean pooling at 512 and 4,000 (see below for longer training)."""

_PUBLIC_LOGS_ABOUT = """\
MovieLens 100k through `jobs/import_public_logs.py` (`benchmarks/public_logs.py`): what the
imported requests look like. A request is a burst of one user's ratings (a gap of more than 30
minutes starts a new one); histories follow the point-in-time rule (events with
`event_ts < request_ts`, at most L_max). Users rate most of their movies in their first burst, so
bursts are large and each user's first request has no history."""

_PUBLIC_LOGS_PAGES_ABOUT = """\
The same import with `--max-targets 20`: bursts cut into pages of at most 20 items in time order,
each its own request (a feed shows pages, not 700 items), so far more targets have a history."""

_PUBLIC_LOGS_QUALITY_ABOUT = """\
Rankers on a time split of ml-100k (`benchmarks/public_logs.py --models`): one
`build_request_samples --to-date` pass builds all days; each model trains on the requests dated
before the cut and is evaluated on every request from the cut to the last day, keeping the most
recent n events (n = 16 / 64 / 256 / all). The benchmark checks that no training request starts on
or after the cut. Same small model for all (d = 32, 2 layers, no user-id embedding, 4,096 item
rows), 1,200 steps of 8 requests at lr 1e-3, Beta training lengths in [16, 1024] with mean 256.
GAUC is the per-user AUC weighted by targets; `finish` is rating >= 4, `like` rating 5, `skip`
rating <= 2.

On this log the length matters little and the three encoders are close: ml-100k histories are
short (a 16-event suffix already is the whole history of many requests), most evaluation targets
have none, and the signal is mostly the movie itself. Batches stay at 8 requests because a batch
pads to its largest request (hundreds of targets) and DIN builds a (batch, targets, events, 64)
tensor."""

_LENGTH_STUDY_ABOUT = """\
STCA, DIN and mean pooling on ml-100k and the MIND sample against the inference length, with
95% user-bootstrap intervals, and STCA trained on sampled lengths against full histories
(`benchmarks/length_study.py`, the pipeline of `benchmarks/public_logs.py`). Headline: finish AUC
at 16 events and at full length; every length, GAUC, the paired differences, the evidence and
the charts are on [length-study.md](length-study.md), generated from the same file."""


def _length_study_rows() -> tuple[Row, ...]:
    rows = []
    names = {"stca": "STCA", "stca_full": "STCA full-length training", "din": "DIN",
             "mean_pool": "mean pooling"}  # fmt: skip
    for ds, title in (("ml-100k", "ml-100k"), ("mind", "MIND")):
        for model in names:
            name = names[model]
            prefix = f"datasets.{ds}.runs.{model}.finish"
            rows.append(_r(f"{title}, {name}: finish AUC [95% CI] at 16 / full",
                           *_with_ci(prefix, "auc", ("16", "10000")), fmt="{:.3f}"))  # fmt: skip
    return tuple(rows)


_LS = "length_scaling.rows"
_RLB = "rlb_vs_pointwise"
_PL_LENGTHS = ("16", "64", "256", "10000")


def _build_rows() -> tuple[Row, ...]:
    lmax = ("1000", "2000", "5000", "10000")
    return (
        _r("users / requests / targets", "config.num_users", "job.requests", "job.targets"),
        _r("history elements written (L_max = 10k)", "job.history_elements"),
        _r("history bytes, request-level (zstd)", "storage.request_level_history_bytes"),
        _r(
            "history bytes, flat layout shuffled / as written",
            "storage.impression_level_shuffled_history_bytes",
            "storage.impression_level_history_bytes",
        ),
        _r("mean targets per request m", "storage.mean_targets", fmt="{:.2f}"),
        _r(
            "request-level bytes vs flat per target, shuffled (lower is better)",
            "storage.ratio_to_shuffled_impression_level_per_target",
            fmt="{:.2f}x",
        ),
        _r("same, flat layout as written", "storage.ratio_to_impression_level_per_target", fmt="{:.2f}x"),
        _r(
            "ours vs naive, seconds, L_max = 2k",
            "timings_by_l_max.2000.ours_seconds",
            "timings_by_l_max.2000.naive_seconds",
            fmt="{:.2f}",
        ),
        _r(
            "ours vs naive, seconds, L_max = 10k",
            "timings_by_l_max.10000.ours_seconds",
            "timings_by_l_max.10000.naive_seconds",
            fmt="{:.2f}",
        ),
        _r(
            "speed-up over naive, L_max = 2k / 10k",
            "timings_by_l_max.2000.speedup",
            "timings_by_l_max.10000.speedup",
            fmt="{:.1f}x",
        ),
        _r(
            "ours, seconds, L_max = 1k / 2k / 5k / 10k",
            *_lengths("timings_by_l_max", lmax, ".ours_seconds"),
            fmt="{:.2f}",
        ),
        _r(
            "history elements per second, L_max = 1k / 2k / 5k / 10k",
            *_lengths("timings_by_l_max", lmax, ".elements_per_second"),
        ),
        _r("the build_request_samples job itself (first run), seconds", "job.seconds", fmt="{:.1f}"),
    )


def _loader_rows(plain: bool = True) -> tuple[Row, ...]:
    """The loader table's rows; plain=False for a run with --skip-plain (no cases d and e)."""
    cases = (
        ("a_pyarrow_read_table", "(a) pyarrow read_table"),
        ("b_loader_eval_full", "(b) RequestLoader, evaluation, full history"),
        ("c_loader_train_mean_2k", "(c) RequestLoader, training, Beta lengths mean 2k"),
        ("d_petastorm_pad_10k", "(d) petastorm, padded to 10k"),
        ("e_petastorm_transformspec_rowgroup_max", "(e) petastorm, TransformSpec padding"),
    )[: None if plain else 3]
    rows = [
        _r("requests / row groups / batch size", "requests", "row_groups", "batch_size"),
    ]
    for key, label in cases:
        rows.append(
            _r(
                f"{label}: requests/s best / median epoch",
                f"results.{key}.requests_per_s",
                f"results.{key}.median_requests_per_s",
                fmt="{:,.0f}",
            )
        )
    rows += [
        _r(
            "CPU seconds per epoch (median), (a) / (b)",
            "results.a_pyarrow_read_table.median_cpu_seconds",
            "results.b_loader_eval_full.median_cpu_seconds",
            fmt="{:.2f}",
        ),
        _r(
            "(b) / (a), best / median epoch (target >= 0.8)",
            "ratios.b_loader_eval_full_vs_pyarrow",
            "ratios.b_loader_eval_full_vs_pyarrow_median",
            fmt="{:.2f}x",
        ),
        _r(
            "(c) / (a), best / median epoch",
            "ratios.c_loader_train_mean_2k_vs_pyarrow",
            "ratios.c_loader_train_mean_2k_vs_pyarrow_median",
            fmt="{:.2f}x",
        ),
        *([_r("(b) / (d)", "ratios.b_vs_d", fmt="{:.1f}x")] if plain else []),
        _r("loader start-up (Delta log, footers), seconds", "loader_startup_s", fmt="{:.4f}"),
    ]
    return tuple(rows)


def _trainer_rows() -> tuple[Row, ...]:
    rows = [
        _r(
            "RLB vs point-wise step, shortcut: ms RLB / point-wise",
            f"{_RLB}.shortcut.rlb.ms",
            f"{_RLB}.shortcut.pointwise.ms",
            fmt="{:,.0f}",
        ),
        _r(
            "speed-up, shortcut: best / median (target 6.4x)",
            f"{_RLB}.shortcut.speedup",
            f"{_RLB}.shortcut.speedup_median",
            fmt="{:.1f}x",
        ),
        _r(
            "RLB vs point-wise step, sdpa: ms RLB / point-wise",
            f"{_RLB}.sdpa.rlb.ms",
            f"{_RLB}.sdpa.pointwise.ms",
            fmt="{:,.0f}",
        ),
        _r(
            "speed-up, sdpa: best / median",
            f"{_RLB}.sdpa.speedup",
            f"{_RLB}.sdpa.speedup_median",
            fmt="{:.1f}x",
        ),
        _r(
            "peak memory MiB, shortcut: RLB / point-wise",
            f"{_RLB}.shortcut.rlb.peak_mib",
            f"{_RLB}.shortcut.pointwise.peak_mib",
            fmt="{:.1f}",
        ),
    ]
    for i, length in enumerate(("1k", "2k", "5k", "10k")):
        rows.append(
            _r(
                f"L = {length}: ms STCA / self-attention, speed-up",
                f"{_LS}.{i}.stca.ms",
                f"{_LS}.{i}.self_attention.ms",
                f"{_LS}.{i}.speedup",
                fmt="{:,.1f}",
            )
        )
    rows += [
        _r(
            "STCA time(10k) / time(1k) (target <= 11)",
            "length_scaling.stca_time_ratio_max_over_min_len",
            fmt="{:.2f}",
        ),
        _r(
            "one layer at L = 2,048, 8 queries per row: ms shortcut / sdpa",
            "attention_paths.rows.0.shortcut.ms",
            "attention_paths.rows.0.sdpa.ms",
            fmt="{:.1f}",
        ),
        _r(
            "one layer at L = 2,048, 8 rows of 1 query: ms shortcut / sdpa",
            "attention_paths.rows.1.shortcut.ms",
            "attention_paths.rows.1.sdpa.ms",
            fmt="{:.1f}",
        ),
    ]
    return tuple(rows)


def _vista_rows() -> tuple[Row, ...]:
    rows: list[Row] = []
    for i, length in enumerate(("2k", "10k")):
        rows += [
            _r(
                f"L = {length}: bytes per request, request_samples / compact",
                f"bytes.rows.{i}.request_samples_bytes_per_request",
                f"bytes.rows.{i}.compact_bytes_per_request",
            ),
            _r(f"L = {length}: bytes ratio", f"bytes.rows.{i}.ratio", fmt="{:.1f}x"),
            _r(
                f"L = {length}: step ms, STCA / VISTA joint / VISTA on the cache",
                f"steps.rows.{i}.stca.ms",
                f"steps.rows.{i}.vista_joint.ms",
                f"steps.rows.{i}.vista_cached.ms",
                fmt="{:,.1f}",
            ),
        ]
    for i in range(4):
        rows.append(
            _r(
                f"summarizer row {i + 1}: L / k, ms softmax / linear",
                f"summarizer.rows.{i}.hist_len",
                f"summarizer.rows.{i}.k",
                f"summarizer.rows.{i}.softmax.ms",
                f"summarizer.rows.{i}.linear.ms",
                fmt=("{:,}", "{:,}", "{:,.1f}", "{:,.1f}"),
            )
        )
    rows += [
        _r("AUC history length / steps", "auc.hist_len", "auc.steps"),
        _r(
            "AUC [95% CI]: STCA full / STCA recent 64 / VISTA / VISTA int8 cache",
            *(
                f"auc.auc.{m} ± auc.auc_ci.{m}"
                for m in ("stca_full", "stca_recent", "vista", "vista_cached_int8")
            ),
            fmt="{:.3f}",
        ),
        _r(
            "AUC [95% CI]: topic-share oracle",
            "auc.auc.oracle_topic_share ± auc.auc_ci.oracle_topic_share",
            fmt="{:.3f}",
        ),
        _r(
            "AUC gap: VISTA vs STCA recent / vs STCA full",
            "auc.gap_vista_vs_stca_recent",
            "auc.gap_vista_vs_stca_full",
            fmt="{:+.3f}",
        ),
        _r("one int8 summary, bytes (this k, d)", "bytes.summary_payload_bytes.this_k_d_int8"),
    ]
    return tuple(rows)


def _quality_rows() -> tuple[Row, ...]:
    lengths = ("32", "512", "4000")
    res = "results"
    return (
        _r("users / items / request days / steps", "args.users", "args.items", "args.days", "args.steps"),
        _r(
            "STCA finish AUC [95% CI] at 32 / 512 / 4,000",
            *_with_ci(f"{res}.stca", "finish_auc", lengths),
            fmt="{:.3f}",
        ),
        _r(
            "mean pooling finish AUC [95% CI] at 32 / 512 / 4,000",
            *_with_ci(f"{res}.mean_pool", "finish_auc", lengths),
            fmt="{:.3f}",
        ),
        _r(
            "author-finish-rate oracle at 32 / 512 / 4,000",
            *_lengths(f"{res}.oracle_auc.author_finish_rate", lengths),
            fmt="{:.3f}",
        ),
        _r(
            "topic-share oracle at 32 / 512 / 4,000",
            *_lengths(f"{res}.oracle_auc.topic_share", lengths),
            fmt="{:.3f}",
        ),
        _r(
            "training seconds, STCA / mean pooling",
            f"{res}.stca.train_seconds",
            f"{res}.mean_pool.train_seconds",
            fmt="{:.0f}",
        ),
    )


def _public_logs_rows() -> tuple[Row, ...]:
    return (
        _r("users / ratings / requests", "import.users", "import.interactions", "import.requests"),
        _r(
            "targets per request p50 / p90 / p99 / max",
            "targets_per_request.p50",
            "targets_per_request.p90",
            "targets_per_request.p99",
            "targets_per_request.max",
            fmt="{:,.0f}",
        ),
        _r("targets per request, mean", "targets_per_request.mean", fmt="{:.1f}"),
        _r(
            "history length p50 / p90 / p99 / max",
            "hist_len.p50",
            "hist_len.p90",
            "hist_len.p99",
            "hist_len.max",
            fmt="{:,.0f}",
        ),
        _r("history length, mean", "hist_len.mean", fmt="{:.1f}"),
        _r("requests with an empty history", "requests_with_empty_history"),
        _r("targets with a history (share)", "targets_with_history / import.impressions", fmt="{:.0%}"),
        _r("quarantined item rows / folded repeats", "import.item_rows_quarantined", "import.folded_repeats"),
        _r("import seconds", "import.seconds", fmt="{:.1f}"),
    )


def _public_logs_quality_rows() -> tuple[Row, ...]:
    rows = [
        _r(
            "train: users / requests / targets",
            "split.train.users",
            "split.train.requests",
            "split.train.targets",
        ),
        _r(
            "eval: users / requests / targets / targets with a history",
            "split.eval.users",
            "split.eval.requests",
            "split.eval.targets",
            "split.eval.targets_with_history",
        ),
        _r(
            "eval history length p50 / p90 / max",
            "split.eval.hist_len_p50",
            "split.eval.hist_len_p90",
            "split.eval.hist_len_max",
            fmt="{:,.0f}",
        ),
    ]
    for model, name in (("stca", "STCA"), ("mean_pool", "mean pooling"), ("din", "DIN")):
        for task in ("finish", "like", "skip"):
            rows.append(
                _r(
                    f"{name}, {task}: AUC [95% CI] at 16 / 64 / 256 / all",
                    *_with_ci(f"results.{model}.{task}", "auc", _PL_LENGTHS),
                    fmt="{:.4f}",
                )
            )
        rows.append(
            _r(
                f"{name}, finish: GAUC [95% CI] at 16 / 64 / 256 / all",
                *_with_ci(f"results.{model}.finish", "gauc", _PL_LENGTHS),
                fmt="{:.4f}",
            )
        )
        rows.append(_r(f"{name}: training seconds", f"results.{model}.train_seconds", fmt="{:.0f}"))
    return tuple(rows)


_USER_DAY_LOADER_ABOUT = """\
`UserDayLoader` with per-request output (the same `RequestBatch`es) against `RequestLoader` on
the same requests, in one run (`benchmarks/user_day_loader.py`): a synthetic `user_day_samples`
table and the `request_samples` table holding the same requests (`synthetic/user_days.py`; the
demo's default scale: 1,500 users x 3 days, about 5 requests per user-day, histories up to 10k;
row groups of 500 rows in both and encodings as the Spark jobs write them). The user-day loader decodes each
day's window once and slices the requests' histories out of it; both then collate the same
padded tensors. Goal: at least 2.5x the request loader's delivered history tokens/s. (e) is the
grouped output for MRLB: the history tokens its requests read and the window tokens it delivers
(each event once per user-day)."""


def _user_day_loader_rows() -> tuple[Row, ...]:
    cases = (
        ("a_request_loader_eval", "(a) RequestLoader, evaluation, full history"),
        ("b_user_day_loader_eval", "(b) UserDayLoader, evaluation, full history"),
        ("c_request_loader_train", "(c) RequestLoader, training, Beta lengths"),
        ("d_user_day_loader_train", "(d) UserDayLoader, training, Beta lengths"),
        ("e_user_day_loader_grouped_train", "(e) UserDayLoader grouped, training"),
    )
    rows = [
        _r("requests / user-days", "requests", "user_days"),
        _r("events stored: request_samples / user_day_samples",
           "stored_events.request_samples_events", "stored_events.user_day_samples_events"),
    ]  # fmt: skip
    for key, label in cases:
        rows.append(
            _r(f"{label}: history tokens/s, best / median epoch",
               f"results.{key}.tokens_per_s", f"results.{key}.history_tokens / results.{key}.median_seconds",
               fmt=("{:,}", "{:,.0f}"))
        )  # fmt: skip
    rows += [
        _r("(e) window tokens delivered / history tokens read per epoch",
           "results.e_user_day_loader_grouped_train.window_tokens",
           "results.e_user_day_loader_grouped_train.history_tokens"),
        _r("evaluation: (b) / (a) tokens/s, best / median", "ratios.eval_tokens_per_s",
           "ratios.eval_median_seconds", fmt="{:.2f}x"),
        _r("training: (d) / (c) tokens/s, best / median", "ratios.train_tokens_per_s",
           "ratios.train_median_seconds", fmt="{:.2f}x"),
    ]  # fmt: skip
    return tuple(rows)


# One entry per results file (by file name), in page order.
_MRLB_ABOUT = (
    'MRLB vs RLB on the same requests (trainer/mrlb.py; docs/training.md, "MRLB"): STCA with '
    'history_time="bias", d = 256, 2 layers, m = 8 targets, 10 requests per step, k per user-day, '
    "each request exactly L events, 8 new events between two requests of a day; one torch thread, "
    "best of 2 interleaved steps after a warm-up. A whole step is forward, backward and AdamW; the "
    "history side is the event embedding and both layers' history transforms alone (forward and "
    "backward), over the requests' histories (RLB) or the user-day windows (MRLB). Goal: history "
    "side >= 0.6 k x for k <= 5. The rest of an MRLB step (`mrlb_rest_ms`, and the profile of the "
    "k = 10 rows) is the per-request side: queries, age bias, attention over the window, head, "
    "AdamW."
)
_MRLB_CASES = tuple((length, k) for length in (2000, 10000) for k in (1, 2, 5, 10))


def _mrlb_rows() -> tuple[Row, ...]:
    rows: list[Row] = []
    for i, (length, k) in enumerate(_MRLB_CASES):
        at = f"mrlb_vs_rlb.rows.{i}"
        rows.append(_r(f"L = {length:,}, k = {k}: requests/s MRLB / RLB", f"{at}.requests_per_s_mrlb",
                       f"{at}.requests_per_s_rlb", fmt="{:.2f}"))  # fmt: skip
        rows.append(_r(f"L = {length:,}, k = {k}: speed-up whole step / history side", f"{at}.step_speedup",
                       f"{at}.history_speedup", fmt="{:.2f}x"))  # fmt: skip
    return tuple(rows)


_USER_DAY_ENCODINGS_ABOUT = """\
The window columns of the user_day_storage warehouse (synthetic, default scale) rewritten with
other Parquet encodings by a newer pyarrow in its own environment (`benchmarks/user_day_encodings.py`;
the project's pyarrow 14 and Spark 4.0.1 cannot use BYTE_STREAM_SPLIT on integers,
[user-day-samples.md](user-day-samples.md#storage)): the same row groups, zstd level 3, v2 pages,
each rewrite read back equal. Ratios are user-day history bytes plus offsets over request_samples'
history bytes as the job stored them; goal at most 0.33x."""


def _user_day_encodings_rows() -> tuple[Row, ...]:
    options = (
        ("stored", "as the Spark job stored them"),
        ("a_as_the_job_writes", "(a) pyarrow, the job's encodings"),
        ("b_byte_stream_split", "(b) BYTE_STREAM_SPLIT, every column"),
        ("c_delta_binary_packed", "(c) DELTA_BINARY_PACKED, every column"),
        ("d_plain", "(d) PLAIN, every column"),
        ("best_per_column", "the smallest per column"),
    )
    return tuple(_r(f"{label}: user-day / request history bytes", f"ratios_with_offsets.{key}", fmt="{:.3f}x")
                 for key, label in options)  # fmt: skip


SPECS: dict[str, Spec] = {
    "build.json": Spec(
        "build_request_samples, quick size", _BUILD_ABOUT, "python -m benchmarks.build --quick", _build_rows()
    ),
    "user_day_encodings.json": Spec(
        "user_day_samples: history bytes under other encodings",
        _USER_DAY_ENCODINGS_ABOUT,
        "PYTHONPATH=. /tmp/encodings-venv/bin/python -m benchmarks.user_day_encodings /tmp/ud-wh",
        _user_day_encodings_rows(),
    ),
    "user_day_storage.json": Spec(
        "user_day_samples vs request_samples: history bytes and build time",
        "History bytes on disk (zstd, `hist_*` columns; user_day_samples' `hist_ts` delta-encoded, "
        "[user-day-samples.md](user-day-samples.md#storage)) of `user_day_samples` against "
        "`request_samples` for the same requests (`benchmarks/user_day_storage.py`; layout in "
        "[user-day-samples.md](user-day-samples.md)): one generated day at SyntheticConfig's default "
        "scale (L_max = 10k), and every day of MovieLens 100k through the importer. The user-day "
        "side is counted with its per-request offsets (`hist_start`, `hist_end`). Goal at the "
        "default scale: at most 0.33x. Events stored shrink far more than bytes: request_samples "
        "keeps a user's requests in adjacent rows, so zstd already folds part of their repeated "
        "histories, while a window has nothing left to fold. Build time: both jobs on the same day, "
        "the user-day job reading the request_samples the other wrote.",
        "python -m benchmarks.user_day_storage",
        (
            _r(
                "synthetic: users / user-days / requests",
                "synthetic.config.num_users",
                "synthetic.storage.user_days",
                "synthetic.storage.requests",
            ),
            _r("synthetic: requests per user-day", "synthetic.requests_per_user_day", fmt="{:.2f}"),
            _r(
                "synthetic: history events stored, request_samples / user-day windows",
                "synthetic.jobs.build_user_day_samples.request_history_events",
                "synthetic.jobs.build_user_day_samples.window_events",
            ),
            _r(
                "synthetic: history bytes, request_samples / user_day_samples (+ offsets)",
                "synthetic.storage.request_samples_history_bytes",
                "synthetic.storage.user_day_history_bytes",
                "synthetic.storage.user_day_offset_bytes",
            ),
            _r(
                "synthetic: user-day / request history bytes, with offsets (goal <= 0.33x)",
                "synthetic.storage.history_with_offsets_ratio",
                fmt="{:.3f}x",
            ),
            _r("synthetic: table bytes, user-day / request", "synthetic.storage.total_ratio", fmt="{:.3f}x"),
            _r(
                "build seconds: build_request_samples / build_user_day_samples",
                "synthetic.build_seconds.build_request_samples",
                "synthetic.build_seconds.build_user_day_samples",
                fmt="{:.1f}",
            ),
            _r(
                "MovieLens 100k: user-days / requests",
                "movielens_100k.user_days",
                "movielens_100k.requests",
            ),
            _r("MovieLens 100k: requests per user-day", "movielens_100k.requests_per_user_day", fmt="{:.2f}"),
            _r(
                "MovieLens 100k: user-day / request history bytes, with offsets",
                "movielens_100k.history_with_offsets_ratio",
                fmt="{:.3f}x",
            ),
        ),
    ),
    "build-large.json": Spec(
        "build_request_samples, large size",
        "The same measurements at 5,000 users.",
        "python -m benchmarks.build --size large",
        _build_rows(),
    ),
    "loader.json": Spec(
        "Loader throughput, full size", _LOADER_ABOUT, "python -m benchmarks.loader", _loader_rows()
    ),
    "loader-demo.json": Spec(
        "Loader throughput on the demo's own table",
        "The same cases on `request_samples` as the demo's pipeline writes it at default scale "
        "(`demo.app.build_tables`: generated logs -> build -> gate -> publish, 3 days), with the "
        "loader-sized files of `jobs/delta_io.py` (500 rows, one row group each).",
        "python -m benchmarks.loader --table <demo warehouse>/request_samples --skip-plain "
        "--out benchmarks/results/loader-demo.json",
        _loader_rows(plain=False),
    ),
    **{
        f"loader-rpg{n}.json": Spec(
            f"Loader throughput, {n:,}-row row groups",
            f"The full-size synthetic table (15,000 requests) cut into row groups of {n:,} rows, "
            "3 timed epochs, no petastorm baselines. The three files loader-rpg250/500/1000.json are "
            "the sweep that chose 500 rows per file for the loader-facing writers.",
            f"python -m benchmarks.loader --rows-per-group {n} --skip-plain --repeats 3 "
            f"--out benchmarks/results/loader-rpg{n}.json",
            _loader_rows(plain=False),
        )
        for n in (250, 500, 1000)
    },
    "loader-quick.json": Spec(
        "Loader throughput, quick size",
        "The same cases on a smaller table.",
        "python -m benchmarks.loader --quick",
        _loader_rows(),
    ),
    "user_day_loader.json": Spec(
        "User-day loader vs request loader: delivered history tokens/s",
        _USER_DAY_LOADER_ABOUT,
        "python -m benchmarks.user_day_loader",
        _user_day_loader_rows(),
    ),
    "trainer-quick.json": Spec(
        "Trainer: RLB and STCA",
        _TRAINER_ABOUT,
        "python -m benchmarks.trainer --quick --threads 1",
        _trainer_rows(),
    ),
    "trainer-mrlb.json": Spec(
        "Trainer: MRLB vs RLB",
        _MRLB_ABOUT,
        "python -m benchmarks.trainer --only mrlb --threads 1 --d 256 --warmup 1 --repeats 2",
        _mrlb_rows(),
    ),
    "vista-quick.json": Spec(
        "VISTA summaries, quick run",
        _VISTA_ABOUT,
        "python -m benchmarks.vista --quick --threads 1",
        _vista_rows(),
    ),
    "vista.json": Spec(
        "VISTA summaries, full run",
        "The same sections with 4x the requests per step, 5x the AUC history (L = 2,000) and "
        "1,000 AUC steps, at 2 torch threads.",
        "python -m benchmarks.vista",
        _vista_rows(),
    ),
    "quality-quick.json": Spec(
        "Long-range quality on Spark-built data",
        _QUALITY_ABOUT,
        "python -m benchmarks.quality --quick",
        _quality_rows(),
    ),
    "public_logs-ml100k.json": Spec(
        "MovieLens 100k import, request = burst",
        _PUBLIC_LOGS_ABOUT,
        "python -m benchmarks.public_logs",
        _public_logs_rows(),
    ),
    "public_logs-ml100k-pages20.json": Spec(
        "MovieLens 100k import, pages of 20",
        _PUBLIC_LOGS_PAGES_ABOUT,
        "python -m benchmarks.public_logs --max-targets 20",
        _public_logs_rows(),
    ),
    "public_logs-ml100k-quality.json": Spec(
        "Rankers on an ml-100k time split",
        _PUBLIC_LOGS_QUALITY_ABOUT,
        "python -m benchmarks.public_logs --models stca,mean_pool,din",
        _public_logs_quality_rows(),
    ),
    "length_study.json": Spec(
        "Length study: longer histories on real logs",
        _LENGTH_STUDY_ABOUT,
        "python -m benchmarks.length_study",
        _length_study_rows(),
    ),
    "gate.json": Spec(
        "Quality gate: what GX's result formats cost",
        "`jobs/validate.py` over one demo-sized day (1,500 users, histories up to 10k, one request "
        "day, every suite passing), per GX result format: median seconds of the GX part "
        "(`run_suites`, Data Docs included) and of the whole validate run, after a warm-up round, "
        "and the Data Docs rendering errors GX logged per run. BOOLEAN_ONLY results carry no "
        "observed values, and rendering them fails with KeyError 'observed_value'; validate runs "
        "BASIC without example values (`GATE_FORMAT`), and SUMMARY again only for a failed suite.",
        "python -m benchmarks.gate",
        _gate_rows(),
    ),
    "object_store.json": Spec(
        "Loader from object storage (s3proxy) vs local disk",
        "RequestLoader evaluation epochs (file order, full histories) over one pinned table, read "
        "from local disk and from a bucket of s3proxy on loopback holding the same files; best "
        "and median of the timed epochs after a warm-up. The ratio is what HTTP, request signing "
        "and the server cost on the same machine; a remote store adds network latency and "
        "bandwidth on top (docs/cluster.md).",
        "python -m benchmarks.object_store",
        (
            _r("table: requests / files / bytes", "table.requests", "table.files", "table.bytes"),
            _r(
                "disk: requests/s best / median",
                "disk.requests_per_s_best",
                "disk.requests_per_s_median",
                fmt="{:,.0f}",
            ),
            _r(
                "s3: requests/s best / median",
                "s3.requests_per_s_best",
                "s3.requests_per_s_median",
                fmt="{:,.0f}",
            ),
            _r(
                "throughput ratio s3 / disk, best / median",
                "ratio_s3_over_disk_best",
                "ratio_s3_over_disk_median",
                fmt="{:.2f}",
            ),
        ),
    ),
    **{
        f"demo-cluster-{scale}.json": Spec(
            f"`make demo-cluster` vs `make demo`, {scale} scale",
            "The demo once on the local standalone cluster (a master and two 1-core worker JVMs) with "
            "the warehouse on s3proxy (`s3a://`), once in-process (`local[2]`) on a local warehouse, "
            "one after the other on the same cores (docs/cluster.md). Both share the machine, so the "
            "ratio is what the cluster layout costs on one machine (separate JVMs, executors per "
            "stage, HTTP to the store), not a speed-up; the note says what else ran meanwhile.",
            f"python -m benchmarks.demo_cluster --scale {scale}",
            (
                _r(
                    "wall seconds: make demo / make demo-cluster",
                    "local.wall_seconds",
                    "cluster.wall_seconds",
                    fmt="{:,.0f}",
                ),
                _r(
                    "demo seconds (summary.json): local / cluster",
                    "local.demo_seconds",
                    "cluster.demo_seconds",
                    fmt="{:,.0f}",
                ),
                _r("cluster / local, wall", "ratio_cluster_over_local_wall", fmt="{:.2f}x"),
                _r("requests published: local / cluster", "local.requests", "cluster.requests"),
            ),
        )  # fmt: skip
        for scale in ("tiny", "default")
    },
}

_HEADER = f"""\
# Benchmarks

<!-- Generated by `{REGENERATE}` from benchmarks/results/*.json: do not edit by hand.
     Change the prose in benchmarks/results_page.py and regenerate. -->

Every number in the tables below is read from a results file that a benchmark wrote
(`benchmarks/results/`), next to the hardware it ran on. Compare numbers only from one machine:
the development VM's hosts differed by up to 2.5x from day to day. Regenerate this page with
`{REGENERATE}`; `tests/test_docs.py` fails when it is out of date.
"""

_HAND_RECORDED = """\
## Recorded without a results file

These measurements were taken by hand (the 2-core development VM, 24 GiB, no GPU) and are kept
here until a benchmark writes them to `benchmarks/results/`.

**`make demo`** (1,500 users, 3 request days, histories up to 10k; `.venv` and the Delta jars
already set up): 9 min 53 s wall clock, 576 s inside the demo, of which 6.7 min were the Spark
stages; STCA trained in 78 s and mean pooling in 36 s. Finish AUC at 512 / 2,000 / 10,000 events:
STCA 0.681 / 0.684 / 0.685, mean pooling 0.616 / 0.616 / 0.617; STCA led on all six tasks (AUC
and GAUC). A rerun on 2026-11-27 from a fresh clone took 4 min 14 s on a faster host with the same
AUCs to three decimals. With the shared item projection and the W_Q = W_K initialisation (session
9, `tests/test_learning.py` sanity task; `python -m demo` at commit c20676b, same seed, on 2 busy
cores): STCA 0.705 / 0.711 / 0.713, mean pooling 0.612 / 0.612 / 0.614; STCA ahead on all six
tasks at 10,000 events (skip 0.650 vs 0.579, like 0.604 vs 0.558). `make demo SCALE=tiny` took
5.5 min on 2 busy cores. Adding DIN (`--models stca,mean_pool,din`) costs about 8 more minutes.
Before session 7 the demo took 18 min 18 s, trained 60 steps over 100,000 items and charted AUC
0.5 for every model.

**Set-up and test times**

| what | time |
|---|---|
| `make setup` on a fresh clone, warm pip cache | 2 min 49 s (project environment, Delta jars) |
| `make test` on a fresh clone, warm pip cache, 2026-11-27 | 8 min 49 s (156 tests) |
| of which pytest / its long-range quality test / the Airflow suite | 7 min 20 s / 89 s / 4 min 36 s |
| `make test`, same VM size on an earlier day's host | 23 min 29 s (pytest 20 min 37 s) |
| cold project environment, empty pip cache | about 10 min (torch CUDA wheel, pyspark sdist build) |
| re-running `make test` / `make demo`: set-up part | under 1 s (stamp files) |

**What only attention can read** (`tests/test_long_range_quality.py`, in `make test`): generated
logs with the creator affinity alone (affinity logit 3, topic effect off), 150 users, 400 items,
histories up to 10,000 events, 2 training days, Beta lengths mean 500, 400 steps of 32 requests.
Finish AUC on the held-out day at 512 / 10,000 events:

| training seed | STCA | mean pooling |
|---|---|---|
| 0 | 0.621 / 0.632 | 0.555 / 0.552 |
| 1 | 0.614 / 0.623 | |
| 2 (300 steps) | 0.596 / 0.603 | 0.562 / 0.559 |

The author-finish-rate oracle gives 0.795 / 0.824 and the topic-share oracle 0.50. The test takes
about 6 minutes on 2 quiet cores (3 of them building the data). The same run as a benchmark:
`python -m benchmarks.quality --interest-logit 0 --affinity-logit 3 --users 150 --items 400
--days 3 --l-max 10000 --steps 400` (`--seed N`).

**Long-range quality, longer and at the old learning rate** (`python -m benchmarks.quality
--quick`, variants): at `--steps 1600` STCA 0.683 / 0.717 / 0.728 against mean pooling
0.656 / 0.700 / 0.718 at 32 / 512 / 4,000 events, ahead at every length and gaining with length.
At lr 3e-3 (600 steps) STCA had 0.623 / 0.639 / 0.650 and mean pooling 0.640 / 0.685 / 0.697.

**Learning probe** (`python -m benchmarks.learning_probe`, the planted topic signal as tensors,
L = 256, 800 steps, AUC ceiling about 0.73): at lr 3e-3 STCA stayed at chance (0.50) while mean
pooling and DIN reached 0.73; at the trainer's default 1e-3 it learns (0.73). The paper's history
transform LN(SwiGLU(X)) reached 0.51 / 0.64 / 0.73 on seeds 0 / 1 / 2 at 1e-3; the residual form
LN(X + SwiGLU(X)) 0.73 / 0.72 / 0.72. VISTA's reconstruction weight on the same task (L = 512):
AUC 0.678 at 0.01, 0.647 at 0, 0.51 at 0.1.

**build_request_samples at the default size** (`python -m benchmarks.build`, 1,500 users, 7.1k
requests, 5.1 M history elements): 4.1x / 4.6x faster than the naive formulation at L_max = 2k /
10k (1.99 s vs 8.1 s; 1.82 s vs 8.3 s).

**The stack before the loader** (2,000 rows of ~10k-int64 lists, page cache): pyarrow
`read_table` about 13k rows/s; petastorm's BatchedDataLoader with padding in a TransformSpec about
5-6k rows/s. That ratio was the first thing the loader had to improve.

**ml-100k session gaps**: 51% of a user's consecutive ratings share the second, 95% are <= 169 s
apart and 1.9% are more than 30 min apart; the number of bursts barely moves across the valley of
the gap histogram (3,305 at 10 min, 2,793 at 30 min, 2,692 at 1 h), hence the 30-minute default.
On the ranker split, the earlier default (300 steps at lr 3e-3) gave finish AUC 0.660 / 0.662 /
0.670 (STCA / mean pooling / DIN) with STCA flat from 16 events to all; 240 steps of 32 requests at
that rate gave STCA 0.681 and mean pooling 0.689; DIN at 32 requests per batch took about 24 s a
step.

**GPU**: `python -m benchmarks.gpu_check` (the loader feeding a device, bf16 STCA training fed by
it, one step on the longest histories) has not run on a GPU yet; its whole path runs on CPU in
`tests/test_gpu_check.py`.
"""


def _lookup(data: Any, path: str, source: str) -> Any:
    value = data
    for key in path.split("."):
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise ResultsPageError(
                f"{source}: no field {path!r} (stopped at {key!r}); update its spec in "
                f"benchmarks/results_page.py"
            )
    return value


def _cell(data: dict[str, Any], cell: str, fmt: str, source: str) -> str:
    if " ± " in cell:
        # "value ± interval": the value, then its 95% interval [lo, hi] when the JSON has one
        # (older result files have none: "n/a").
        value_path, ci_path = (part.strip() for part in cell.split(" ± "))
        try:
            ci = _lookup(data, ci_path, source)
        except ResultsPageError:
            ci = None
        shown = _cell(data, value_path, fmt, source)
        return f"{shown} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else f"{shown} [n/a]"
    if " / " in cell:
        num, den = (_lookup(data, part.strip(), source) for part in cell.split(" / "))
        value: Any = None if num is None or not den else num / den
    else:
        value = _lookup(data, cell, source)
    if value is None:
        return "n/a"
    if isinstance(value, bool | str):
        return str(value)
    return fmt.format(value)


def _hardware(data: dict[str, Any]) -> str:
    parts = [f"{k}: {v}" for k, v in sorted(data.get("hardware", {}).items())]
    parts += [f"{k}: {data[k]}" for k in RUN_CONTEXT_KEYS if k in data]
    return "Hardware: " + ", ".join(parts) + "." if parts else "Hardware: not recorded."


def _numeric_leaves(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for key in sorted(value):
            if prefix == "" and key in GENERIC_SKIP:
                continue
            out += _numeric_leaves(value[key], f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [(prefix, value)]
    return []


def _generic_table(data: dict[str, Any]) -> list[str]:
    leaves = _numeric_leaves(data, "")
    lines = ["| field | value |", "|---|---|"]
    for path, value in leaves[:GENERIC_MAX_ROWS]:
        text = f"{value:,}" if isinstance(value, int) else f"{value:.6g}"
        lines.append(f"| `{path}` | {text} |")
    if len(leaves) > GENERIC_MAX_ROWS:
        lines.append(f"| ({len(leaves) - GENERIC_MAX_ROWS} more fields in the file) | |")
    return lines


def _section(name: str, data: dict[str, Any]) -> list[str]:
    spec = SPECS.get(name)
    source = f"benchmarks/results/{name}"
    if spec is None:
        title = str(data.get("benchmark", Path(name).stem))
        lines = [
            f"## {title} (`{name}`)",
            "",
            "No description yet: add an entry for this file to `SPECS` in `benchmarks/results_page.py`.",
            "",
            *_generic_table(data),
        ]
    else:
        lines = [
            f"## {spec.title}",
            "",
            spec.about,
            "",
            "```bash",
            spec.command,
            "```",
            "",
            "| what | value |",
            "|---|---|",
        ]
        for row in spec.rows:
            cells = " / ".join(
                _cell(data, cell, fmt, source) for cell, fmt in zip(row.cells, row.formats(), strict=True)
            )
            lines.append(f"| {row.label} | {cells} |")
    lines += ["", _hardware(data), "", f"From [`{source}`](../{source}).", ""]
    return lines


def _ordered(names: list[str]) -> list[str]:
    known = [n for n in SPECS if n in names]
    return known + sorted(n for n in names if n not in SPECS)


def render(results_dir: Path = RESULTS_DIR) -> str:
    """The whole page, from every *.json in results_dir."""
    files = {p.name: p for p in results_dir.glob("*.json")}
    lines = [_HEADER]
    for name in _ordered(list(files)):
        data = json.loads(files[name].read_text())
        if not isinstance(data, dict):
            raise ResultsPageError(
                f"benchmarks/results/{name}: expected a JSON object, got {type(data).__name__}"
            )
        lines += _section(name, data)
    lines.append(_HAND_RECORDED)
    return "\n".join(lines).rstrip("\n") + "\n"


def check(results_dir: Path = RESULTS_DIR, page: Path = PAGE) -> str | None:
    """None when `page` is what `render` gives; otherwise a message saying what to run."""
    expected = render(results_dir)
    if not page.exists():
        return f"{page} does not exist: run `{REGENERATE}`"
    if page.read_text() != expected:
        return f"{page} is not current with {results_dir}/*.json: run `{REGENERATE}`"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.results_page", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the page is not current; write nothing")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default: %(default)s)")
    p.add_argument("--page", type=Path, default=PAGE, help="page to write or check (default: %(default)s)")
    args = p.parse_args(argv)
    if args.check:
        problem = check(args.results, args.page)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        print(f"{args.page} is current")
        return 0
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(render(args.results))
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
