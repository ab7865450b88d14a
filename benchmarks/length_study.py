"""The length study (issue 19): do longer histories help STCA, DIN and mean pooling on real logs?

For each real log (ml-100k and the MIND sample) the pipeline of benchmarks/public_logs.py imports
it, builds request_samples in one pass and splits it by time; then each variant trains with the
same small model and fixed step budget and is evaluated on the held-out days at every inference
length (16 ... full, the most recent n events):

* `stca`, `din`, `mean_pool`: trained on Beta-sampled suffix lengths (mean --length-mean, in
  [16, --length-max]), as benchmarks/public_logs.py trains;
* `stca_full`: STCA trained on full histories (train long, serve long) against `stca` (train on
  sampled lengths, serve long);
* `stca_pool`, `stca_pool_flat` (not in the default --variants): STCA that also reads the mean of
  the history tokens (STCAConfig.history_pool), and the same with attention starting near uniform
  instead of as a lookup of the target (STCAConfig.match_prior=False): diagnostics of STCA's GAUC
  gap to mean pooling on MIND.

Each run's history-collapse alarm (trainer/metrics.py: swap probe, attention entropy, history-path
gradient) is reported per model; a run written before part of it existed is rechecked from its
checkpoint (trainer.train.recheck_collapse, cached in the run folder's alarm.json).

Every AUC / GAUC carries a 95% interval from a bootstrap over users (the unit that repeats: a
user's targets share a history, so resampling targets would understate the spread). Whether a
model gains with length is the paired bootstrap difference full - n of its own predictions on
the same impressions; whether STCA beats a baseline is the paired difference of the two runs
(trainer/metrics.py compare_runs). A win is a win only when the interval excludes 0.

Evidence for why length helps or not, from the evaluation rows themselves: the share of
evaluation targets whose history is longer than each n (a cut at n changes nothing for the
rest), label rates, how many targets were already in the user's history, and an oracle: the AUC
of "share of the last n events by the target's author" (genre on ml-100k, category on MIND),
which says where in the history that signal sits.

    python -m benchmarks.length_study          # both logs -> benchmarks/results/length_study.json
    python -m benchmarks.length_study --datasets mind --reuse --train-only --variants stca_pool,stca_pool_flat
    python -m benchmarks.length_study --assemble \\
        --variants stca,stca_full,din,mean_pool,stca_pool,stca_pool_flat
    python -m benchmarks.length_study --page   # docs/length-study.md and its SVG charts, from the JSON
    python -m benchmarks.length_study --datasets mind --mind tests/data/mind-small-cut --quick \\
        --out /tmp/study.json                  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import hardware
from benchmarks.public_logs import (
    MIND_SAMPLE,
    MIND_SOURCE,
    ML100K,
    ML100K_SOURCE,
    MODEL,
    TASKS,
    LogSource,
    TimeSplit,
    build_samples,
    import_log,
    run_summary,
    split_counts,
    train_run,
)
from loader import resolve_snapshot
from loader.lengths import LengthSampling
from pipelines.public_logs import UNKNOWN_AUTHOR
from schemas import REQUEST_SAMPLES
from schemas.constants import DEFAULT_L_MAX
from trainer.config import STCAConfig
from trainer.metrics import (
    ATTENTION_ENTROPY_MIN,
    HISTORY_GRAD_MIN_RATIO,
    PREDICTIONS_FILE,
    PROBE_MIN_LOGIT_CHANGE,
    auc,
    bootstrap_intervals,
    compare_runs,
    paired_difference,
)

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "length_study.json"
PAGE = ROOT / "docs" / "length-study.md"
CHARTS = ROOT / "docs" / "length-study"
SOURCES: dict[str, tuple[LogSource, Path]] = {
    ML100K_SOURCE.name: (ML100K_SOURCE, ML100K),
    MIND_SOURCE.name: (MIND_SOURCE, MIND_SAMPLE),
}
# MIND records clicks only (finish); ml-100k fills finish, like and skip from the rating.
DATASET_TASKS: dict[str, tuple[str, ...]] = {ML100K_SOURCE.name: TASKS, MIND_SOURCE.name: ("finish",)}
# MIND news ids reach N65k: a row each, so history and targets do not collide in the item table.
DATASET_MODEL: dict[str, dict[str, int]] = {
    ML100K_SOURCE.name: MODEL,
    MIND_SOURCE.name: {**MODEL, "item_buckets": 1 << 16},
}
# variant -> (trainer model, trained on sampled lengths)
VARIANTS: dict[str, tuple[str, bool]] = {
    "stca": ("stca", True),
    "stca_full": ("stca", False),
    "din": ("din", True),
    "mean_pool": ("mean_pool", True),
    "stca_pool": ("stca", True),
    "stca_pool_flat": ("stca", True),
}
# variant -> its model-config fields over DATASET_MODEL. stca_pool: STCA that also reads the mean of
# the history tokens (STCAConfig.history_pool), a diagnostic of why STCA trails mean pooling's GAUC on
# MIND; not in the default --variants.
# stca_pool_flat: the same without the match-prior init (STCAConfig.match_prior), attention starting
# near uniform.
VARIANT_CONFIG: dict[str, dict[str, int]] = {
    "stca_pool": {"history_pool": True},
    "stca_pool_flat": {"history_pool": True, "match_prior": False},
}
DEFAULT_VARIANTS = "stca,stca_full,din,mean_pool"
# The model's logit columns (every run here uses the default task list), in the order of its predictions.
MODEL_TASKS = STCAConfig().tasks
COMPARISONS = (
    ("stca", "mean_pool"), ("stca", "din"), ("stca", "stca_full"), ("stca_pool", "mean_pool"),
    ("stca_pool_flat", "mean_pool"),
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benchmarks.length_study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--datasets", default="ml-100k,mind", help="comma-separated (default: %(default)s)")
    p.add_argument("--ml100k", default=str(ML100K), help="the ml-100k folder (default: %(default)s)")
    p.add_argument(
        "--mind",
        default=str(MIND_SAMPLE),
        help="folder with behaviors.tsv and news.tsv (default: %(default)s)",
    )
    p.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help=f"of {','.join(VARIANTS)} (default: %(default)s)"
    )
    p.add_argument(
        "--workdir", default=".cache/length-study", help="warehouses and runs (default: %(default)s)"
    )
    p.add_argument("--out", default=str(RESULT), help="results JSON (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1_200, help="optimizer steps per run (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="requests per batch (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--length-max", type=int, default=1024, help="longest sampled training length")
    p.add_argument("--length-mean", type=float, default=256.0, help="mean sampled training length")
    p.add_argument(
        "--eval-lengths",
        default=f"16,32,64,128,256,{DEFAULT_L_MAX}",
        help="inference lengths; the last is 'full' (default: %(default)s)",
    )
    p.add_argument("--l-max", type=int, default=DEFAULT_L_MAX, help="history kept by build_request_samples")
    p.add_argument("--quick", action="store_true", help="a smoke run: 20 steps, lengths 16,10000")
    p.add_argument(
        "--assemble", action="store_true", help="no import or training: the results from --workdir's runs"
    )
    p.add_argument(
        "--reuse", action="store_true", help="train on the table a previous run built in --workdir"
    )
    p.add_argument("--train-only", action="store_true", help="train --variants, write no results JSON")
    p.add_argument("--page", action="store_true", help="only write the docs page and charts from --out")
    p.add_argument("--check", action="store_true", help="exit 1 if the docs page is not what --out gives")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.eval_lengths = 20, f"16,{DEFAULT_L_MAX}"
    unknown = sorted(set(args.datasets.split(",")) - set(SOURCES))
    if unknown:
        p.error(f"--datasets: unknown {unknown}; choose from {sorted(SOURCES)}")
    bad = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if bad:
        p.error(f"--variants: unknown {bad}; choose from {sorted(VARIANTS)}")
    return args


def _eval_rows(table: str, split: TimeSplit, columns: list[str]) -> list[dict[str, Any]]:
    files = resolve_snapshot(table, date_from=split.eval_from, date_to=split.eval_to).files
    return pa.concat_tables(pq.read_table(f, columns=columns) for f in files).to_pylist()


def _ci(value: list[float] | None) -> list[float] | None:
    return [round(v, 4) for v in value] if value else None


def evidence(table: str, split: TimeSplit, lengths: list[int], sampling: LengthSampling) -> dict[str, Any]:
    """What the evaluation rows say about where a longer history could help (see the docstring):
    per length n the share of evaluation targets whose history is longer than n, label rates,
    targets already in the history, the author-share oracle, and how often a sampled training
    length cuts a training request's history."""
    rows = _eval_rows(
        table, split, ["user_id", "hist_len", "hist_item_id", "hist_author_id", "tgt_item_id",
                       "tgt_author_id", *(f"label_{t}" for t in TASKS)],
    )  # fmt: skip
    hist = np.array([r["hist_len"] for r in rows for _ in r["tgt_item_id"]], dtype=np.int64)
    labels = {t: np.array([y for r in rows for y in r[f"label_{t}"]], dtype=np.float64) for t in TASKS}
    users = np.array([r["user_id"] for r in rows for _ in r["tgt_item_id"]], dtype=np.int64)
    tgt_authors = np.array([a for r in rows for a in r["tgt_author_id"]], dtype=np.int64)
    hist_authors = np.array([a for r in rows for a in r["hist_author_id"]], dtype=np.int64)
    seen = [item in set(r["hist_item_id"]) for r in rows for item in r["tgt_item_id"]]
    oracle: dict[str, Any] = {"auc": {}, "auc_ci": {}}
    for n in lengths:
        share = []
        for r in rows:
            authors = np.asarray(r["hist_author_id"][-n:], dtype=np.int64)
            share += [float((authors == a).mean()) if len(authors) else 0.0 for a in r["tgt_author_id"]]
        y = labels["finish"]
        if 0 < y.sum() < len(y):
            oracle["auc"][str(n)] = round(auc(np.array(share), y), 4)
            oracle["auc_ci"][str(n)] = _ci(bootstrap_intervals(np.array(share), y, users)["auc_ci"])
    train_files = resolve_snapshot(table, date_to=split.train_to).files
    train_hist = pa.concat_tables(pq.read_table(f, columns=["hist_len", "tgt_item_id"]) for f in train_files)
    train_len = np.asarray(train_hist.column("hist_len").to_pylist(), dtype=np.int64)
    # a target item never shown in training keeps its random initial embedding: no item signal
    trained_items = set(pc.list_flatten(train_hist.column("tgt_item_id")).to_pylist())
    shown_before = [item in trained_items for r in rows for item in r["tgt_item_id"]]
    sampled = sampling.sample(np.random.default_rng(0), 10_000)
    return {
        "eval_targets": len(hist),
        "eval_targets_with_history": int((hist > 0).sum()),
        "eval_targets_longer_than": {str(n): round(float((hist > n).mean()), 4) for n in lengths},
        "positive_rate": {t: round(float(v.mean()), 4) for t, v in labels.items() if len(v)},
        "positive_rate_empty_vs_some_history": {
            t: [
                round(float(v[hist == 0].mean()), 4) if (hist == 0).any() else None,
                round(float(v[hist > 0].mean()), 4) if (hist > 0).any() else None,
            ]
            for t, v in labels.items()
        },  # fmt: skip
        "targets_in_history": round(float(np.mean(seen)), 4) if seen else 0.0,
        "targets_shown_in_training": round(float(np.mean(shown_before)), 4) if shown_before else 0.0,
        # authors unknown to the item file (UNKNOWN_AUTHOR): no author signal for these
        "targets_with_unknown_author": round(float(np.mean(tgt_authors == UNKNOWN_AUTHOR)), 4),
        "history_events_with_unknown_author": round(float(np.mean(hist_authors == UNKNOWN_AUTHOR)), 4)
        if len(hist_authors)
        else None,
        "author_share_oracle_finish": oracle,
        # P(a sampled training length < the request's history length), over training requests
        "train_requests_cut_by_sampling": round(
            float(np.mean([(sampled < n).mean() for n in train_len])) if len(train_len) else 0.0, 4
        ),
    }


ALARM_FILE = "alarm.json"  # in a run folder: recheck_collapse's result for a run that predates the alarm


def collapse_alarm(run_dir: Path, run: dict[str, Any], table: str) -> dict[str, Any]:
    """The run's history-collapse alarm (trainer/metrics.py): the swap probe's mean |logit change|,
    the attention entropy (attention models), the history-path gradient share, and the warnings.
    From training when metrics.json has them all ("source": "training"); a run written before the
    entropy and gradient parts existed is rechecked from its checkpoint once (trainer.train
    recheck_collapse, cached in alarm.json; "source": "recheck")."""
    from trainer.train import recheck_collapse

    probe, gradient = run.get("history_probe"), run["train"].get("history_gradient")
    attention = run["config"]["model"] != "mean_pool"
    if probe is not None and gradient is not None and (not attention or "attention_entropy" in probe):
        source, warnings = "training", run["warnings"]
    else:
        cached = run_dir / ALARM_FILE
        if not cached.is_file():
            cached.write_text(json.dumps(recheck_collapse(run_dir, table=table), indent=2, allow_nan=False))
        checked = json.loads(cached.read_text())
        probe, gradient, warnings = checked["history_probe"], checked["history_gradient"], checked["warnings"]
        source = "recheck"
    return {
        "source": source,
        "probe_logit_change": None if probe is None else round(probe["mean_abs_logit_change"], 4),
        "attention_entropy": None if probe is None else _r(probe.get("attention_entropy")),
        "history_gradient_ratio": None if gradient is None else float(f"{gradient['mean_ratio']:.3g}"),
        "warnings": [w["test"] for w in warnings],
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def length_effect(run_dir: Path, tasks: tuple[str, ...], lengths: list[int]) -> dict[str, Any]:
    """{task: {metric: {n: paired_difference(full, n)}}}: the run's own gain from the longest
    length over each shorter one, on the same impressions and user resamples."""
    pred = np.load(run_dir / PREDICTIONS_FILE)
    full = str(lengths[-1])
    out: dict[str, Any] = {}
    for t, task in enumerate(MODEL_TASKS):
        if task not in tasks:
            continue
        out[task] = {}
        for metric in ("auc", "gauc"):
            out[task][metric] = {}
            for n in map(str, lengths[:-1]):
                labels, users = pred[f"labels_{full}"], pred[f"users_{full}"]
                if not (
                    np.array_equal(labels, pred[f"labels_{n}"]) and np.array_equal(users, pred[f"users_{n}"])
                ):
                    raise ValueError(f"{run_dir}: lengths {n} and {full} evaluated different impressions")
                d = paired_difference(
                    pred[f"probs_{full}"][:, t], pred[f"probs_{n}"][:, t], labels[:, t], users, metric
                )
                out[task][metric][n] = _rounded_diff(d)
    return out


def _rounded_diff(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    if "diff" in out:
        out["diff"] = round(out["diff"], 4)
        out["diff_ci"] = _ci(out["diff_ci"])
    return out


BUILD_FILE = "build.json"  # in <workdir>/<dataset>: what the import and build gave, for --assemble


def build_dataset(spark: Any, name: str, folder: str, args: argparse.Namespace) -> dict[str, Any]:
    """Imports one log into a fresh <workdir>/<name>/warehouse and builds request_samples; writes
    and returns what assemble_dataset needs (import summary, split, build seconds)."""
    source, _ = SOURCES[name]
    work = Path(args.workdir) / name
    shutil.rmtree(work, ignore_errors=True)
    wh = str(work / "warehouse")
    t0 = time.perf_counter()
    summary = import_log(spark, wh, source, folder)
    build_samples(spark, wh, summary, args.l_max)
    built = {
        "source": {"format": source.fmt.name, "folder": str(folder), "cut": source.cut},
        "import": {k: summary[k] for k in ("lines_read", "requests", "impressions", "dates") if k in summary},
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    (work / BUILD_FILE).write_text(json.dumps(built, indent=2))
    return built


def _built(spark: Any, name: str, work: Path) -> dict[str, Any]:
    """build.json, or for a workdir without one the same fields read from its request_samples."""
    if (work / BUILD_FILE).is_file():
        return dict(json.loads((work / BUILD_FILE).read_text()))
    from pyspark.sql import functions as F

    table = REQUEST_SAMPLES.location(str(work / "warehouse"))
    row = (
        spark.read.format("delta").load(table)
        .agg(F.min("date"), F.max("date"), F.count("*"), F.sum("num_targets")).first()
    )  # fmt: skip
    if row is None or not row[2]:
        raise FileNotFoundError(f"{name}: no {BUILD_FILE} and no requests in {table}; run without --assemble")
    source, _ = SOURCES[name]
    return {
        "source": {"format": source.fmt.name, "cut": source.cut},
        "import": {"requests": int(row[2]), "impressions": int(row[3]), "dates": [row[0], row[1]]},
        "build_seconds": None,
    }


def train_variants(spark: Any, name: str, args: argparse.Namespace) -> None:
    """Trains and evaluates every --variants on the dataset's time split; each run folder keeps
    metrics.json and the evaluation predictions."""
    work = Path(args.workdir) / name
    built = _built(spark, name, work)
    table = REQUEST_SAMPLES.location(str(work / "warehouse"))
    split = TimeSplit.at(built["source"]["cut"], *built["import"]["dates"])
    for variant in [v for v in args.variants.split(",") if v]:
        model, sampled = VARIANTS[variant]
        train_run(table, split, work / "runs" / variant, model, args, args.length_mean if sampled else None,
                  {**DATASET_MODEL[name], **VARIANT_CONFIG.get(variant, {})})  # fmt: skip


def assemble_dataset(spark: Any, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One dataset's result from its workdir (no training): split counts, evidence, every run's
    metrics with its length effect, and the paired comparisons."""
    work = Path(args.workdir) / name
    built = _built(spark, name, work)
    table = REQUEST_SAMPLES.location(str(work / "warehouse"))
    split = TimeSplit.at(built["source"]["cut"], *built["import"]["dates"])
    lengths = [int(n) for n in args.eval_lengths.split(",")]
    sampling = LengthSampling(l_min=16, l_max=args.length_max, mean=args.length_mean, alpha=0.2)
    tasks = DATASET_TASKS[name]
    # with --assemble, a variant that was not trained on this dataset is listed under not_run
    wanted = [v for v in args.variants.split(",") if v]
    variants = [v for v in wanted if (work / "runs" / v / "metrics.json").is_file()]
    if not variants:
        raise FileNotFoundError(f"{name}: no run of {wanted} in {work / 'runs'}; train them first")
    runs: dict[str, Any] = {}
    for variant in variants:
        run_dir = work / "runs" / variant
        run = json.loads((run_dir / "metrics.json").read_text())
        runs[variant] = {**run_summary(run, tasks), "length_effect": length_effect(run_dir, tasks, lengths),
                         "alarm": collapse_alarm(run_dir, run, table)}  # fmt: skip
        print(name, variant, json.dumps(runs[variant]), flush=True)
    comparisons = {
        f"{a} vs {b}": {
            n: {t: v for t, v in per_task.items() if t in tasks}
            for n, per_task in compare_runs(work / "runs" / a, work / "runs" / b, MODEL_TASKS).items()
        }
        for a, b in COMPARISONS if a in variants and b in variants
    }  # fmt: skip
    return {
        **built,
        "model_config": DATASET_MODEL[name],
        "tasks": list(tasks),
        "split": {
            "train_to": split.train_to,
            "eval_from": split.eval_from,
            "eval_to": split.eval_to,
            **split_counts(spark, table, split),
        },  # fmt: skip
        "evidence": evidence(table, split, lengths, sampling),
        "runs": runs,
        "not_run": [v for v in wanted if v not in variants],
        "comparisons": comparisons,
    }


# --- the docs page: docs/length-study.md and its SVG charts, generated from the results JSON -------

LABELS = {
    "stca": "STCA",
    "stca_full": "STCA, full-length training",
    "din": "DIN",
    "mean_pool": "mean pooling",
    "stca_pool": "STCA + pooled history",
    "stca_pool_flat": "STCA + pooled history, no match prior",
}
COLORS = {"stca": "#d62728", "stca_full": "#ff7f0e", "din": "#1f77b4", "mean_pool": "#2ca02c",
          "stca_pool": "#9467bd", "stca_pool_flat": "#8c564b"}  # fmt: skip
TITLES = {ML100K_SOURCE.name: "MovieLens 100k", MIND_SOURCE.name: "MIND sample"}
AUTHOR_FIELD = {ML100K_SOURCE.name: "genre", MIND_SOURCE.name: "news category"}
GAIN = {
    "a wins": "longer histories help",
    "b wins": "longer histories hurt",
    "no difference": "no measurable gain from longer histories",
}
VERDICT = {"a wins": "helps", "b wins": "hurts", "no difference": "no difference"}
Series = tuple[str, str, list[float | None], list[list[float] | None]]


def _n(n: str, lengths: list[str]) -> str:
    return "full" if n == lengths[-1] else f"{int(n):,}"


def _v(value: float | None, ci: list[float] | None = None, digits: int = 3) -> str:
    if value is None:
        return "absent"
    shown = f"{value:.{digits}f}"
    return f"{shown} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else f"{shown} [n/a]"


def _d(diff: dict[str, Any] | None) -> str:
    """A paired difference as '+0.004 [+0.001, +0.007] (verdict)'."""
    if not diff or "diff" not in diff:
        return "absent"
    ci = diff["diff_ci"]
    band = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else " [n/a]"
    return f"{diff['diff']:+.3f}{band}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def svg_chart(title: str, lengths: list[str], series: list[Series]) -> str:
    """A line chart: x the inference lengths (evenly spaced), y the metric with each point's 95%
    interval as an error bar; series are (label, colour, values, intervals). Deterministic text."""
    width, height, left, right, top, bottom = 640, 330, 56, 200, 34, 46
    pw, ph = width - left - right, height - top - bottom
    ys = [
        y
        for _, _, vals, cis in series
        for y in [*vals, *(c for ci in cis if ci for c in ci)]
        if y is not None
    ]
    lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    step = next((s for s in (0.005, 0.01, 0.02, 0.05, 0.1) if (hi - lo) / s <= 6), 0.2)
    lo, hi = step * int(lo / step - 1e-9) - (step if lo % step < 1e-9 else 0.0), step * (int(hi / step) + 1)
    lo = max(lo, 0.0)

    def x(i: float) -> float:
        return left + (i + 0.5) * pw / len(lengths)

    def y(v: float) -> float:
        return top + ph * (hi - v) / (hi - lo)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{title}</text>',
    ]
    ticks = round((hi - lo) / step)
    for k in range(ticks + 1):
        v = lo + k * step
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>')
    for i, n in enumerate(lengths):
        out.append(f'<text x="{x(i):.1f}" y="{top + ph + 18}" text-anchor="middle">{_n(n, lengths)}</text>')
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">'
        "inference history length (most recent events)</text>"
    )
    for k, (label, colour, vals, cis) in enumerate(series):
        dx = (k - (len(series) - 1) / 2) * 5
        pts = [(x(i) + dx, y(v)) for i, v in enumerate(vals) if v is not None]
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
            + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
            + '"/>'
        )
        for i, ci in enumerate(cis):
            if ci:
                xi = x(i) + dx
                out.append(
                    f'<line x1="{xi:.1f}" y1="{y(ci[0]):.1f}" x2="{xi:.1f}" y2="{y(ci[1]):.1f}" '
                    f'stroke="{colour}" stroke-width="1"/>'
                )
        out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' for a, b in pts]
        ly = top + 10 + 20 * k
        out.append(
            f'<line x1="{left + pw + 14}" y1="{ly}" x2="{left + pw + 34}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{left + pw + 40}" y="{ly + 4}">{label}</text>')
    out.append(
        f'<text x="{left + pw + 14}" y="{top + 10 + 20 * len(series) + 6}" fill="#555">'
        "bars: 95% user-bootstrap CI</text>"
    )
    return "\n".join([*out, "</svg>"]) + "\n"


def _metric(run: dict[str, Any], task: str, metric: str, n: str) -> tuple[float | None, list[float] | None]:
    return run[task][metric].get(n), run[task].get(f"{metric}_ci", {}).get(n)


def _dataset_section(name: str, data: dict[str, Any], lengths: list[str], files: dict[str, str]) -> list[str]:
    runs, ev, split, tasks = data["runs"], data["evidence"], data["split"], data["tasks"]
    variants = list(runs)
    out = [f"## {TITLES.get(name, name)}", ""]
    tr, te = split["train"], split["eval"]
    out += [
        f"Requests dated up to {split['train_to']} train ({tr['requests']:,} requests, "
        f"{tr['users']:,} users, "
        f"{tr['targets']:,} targets); those from {split['eval_from']} to {split['eval_to']} evaluate "
        f"({te['requests']:,} requests, {te['users']:,} users, {te['targets']:,} targets, "
        f"{te['targets_with_history']:,} of them with a non-empty history). Evaluation history length: "
        f"median {te['hist_len_p50']:g}, p90 {te['hist_len_p90']:g}, max {te['hist_len_max']:,}.",
        "",
    ]
    if data.get("not_run"):
        missing = ", ".join(LABELS[v] for v in data["not_run"])
        out += [
            f"Not trained on this log in this run: {missing} (train it with "
            f"`python -m benchmarks.length_study --datasets {name} --reuse --train-only "
            f"--variants {','.join(data['not_run'])}`, then "
            "rerun with `--assemble`).",
            "",
        ]
    for metric in ("auc", "gauc"):
        svg = f"length-study/{name}-finish-{metric}.svg"
        series: list[Series] = [
            (
                LABELS[v],
                COLORS[v],
                [_metric(runs[v], "finish", metric, n)[0] for n in lengths],
                [_metric(runs[v], "finish", metric, n)[1] for n in lengths],
            )
            for v in variants
        ]
        files[f"docs/{svg}"] = svg_chart(
            f"{TITLES.get(name, name)}: finish {metric.upper()} by length", lengths, series
        )
        out += [f"![finish {metric.upper()} by inference length, {name}]({svg})", ""]
    out += [
        "### AUC and GAUC by inference length",
        "",
        "| model | task | metric | " + " | ".join(_n(n, lengths) for n in lengths) + " |",
        "|---|---|---|" + "---|" * len(lengths),
    ]
    for v in variants:
        for task in tasks:
            for metric in ("auc", "gauc"):
                cells = [_v(*_metric(runs[v], task, metric, n)) for n in lengths]
                out.append(f"| {LABELS[v]} | {task} | {metric.upper()} | " + " | ".join(cells) + " |")
    shorter = lengths[:-1]
    out += [
        "",
        "### Does a longer history help?",
        "",
        "Paired bootstrap difference of each model's own predictions, full history minus the most recent "
        "n events (same impressions, same user resamples); the verdict needs the interval to exclude 0.",
        "",
        "| model | task | metric | "
        + " | ".join(f"full - {_n(n, lengths)}" for n in shorter)
        + " | longer history |",
        "|---|---|---|" + "---|" * (len(shorter) + 1),
    ]
    for v in variants:
        for task in tasks:
            for metric in ("auc", "gauc"):
                eff = runs[v]["length_effect"].get(task, {}).get(metric, {})
                verdict = VERDICT.get(eff.get(shorter[0], {}).get("verdict", ""), "absent")
                cells = [_d(eff.get(n)) for n in shorter]
                out.append(
                    f"| {LABELS[v]} | {task} | {metric.upper()} | "
                    + " | ".join(cells)
                    + f" | {verdict} (vs {_n(shorter[0], lengths)}) |"
                )
    if data["comparisons"]:
        out += [
            "",
            "### STCA against the baselines, and sampled against full-length training",
            "",
            "Paired bootstrap difference of two runs on the same impressions (first minus second).",
            "",
            "| comparison | task | metric | " + " | ".join(_n(n, lengths) for n in lengths) + " |",
            "|---|---|---|" + "---|" * len(lengths),
        ]
        for label, per_n in data["comparisons"].items():
            a, b = label.split(" vs ")
            for task in tasks:
                for metric in ("auc", "gauc"):
                    cells = []
                    for n in lengths:
                        diff = per_n.get(n, {}).get(task, {}).get(metric)
                        word = {
                            "a wins": "STCA ahead" if a == "stca" else "first ahead",
                            "b wins": f"{LABELS[b]} ahead",
                        }.get((diff or {}).get("verdict", ""), "")
                        cells.append(_d(diff) + (f" {word}" if word else ""))
                    out.append(
                        f"| {LABELS[a]} - {LABELS[b]} | {task} | {metric.upper()} | "
                        + " | ".join(cells)
                        + " |"
                    )
    out += _alarm_section(runs)
    out += ["", "### Evidence: where the history could help", ""]
    longer = ", ".join(f"> {_n(n, lengths)}: {_pct(ev['eval_targets_longer_than'][n])}" for n in shorter)
    rates = ", ".join(f"{t} {_pct(ev['positive_rate'].get(t))}" for t in tasks)
    empty_vs = ", ".join(
        f"{t} {_pct(ev['positive_rate_empty_vs_some_history'][t][0])} / "
        f"{_pct(ev['positive_rate_empty_vs_some_history'][t][1])}"
        for t in tasks
    )
    oracle = ev["author_share_oracle_finish"]
    oracle_cells = ", ".join(
        f"{_n(n, lengths)}: {_v(oracle['auc'].get(n), oracle['auc_ci'].get(n))}"
        for n in lengths
        if n in oracle["auc"]
    )
    out += [
        f"* Evaluation targets whose history is longer than n (a cut at n changes only these): {longer}.",
        f"* Positive rate: {rates}; with an empty / a non-empty history: {empty_vs}.",
        f"* Targets already in the user's history: {_pct(ev['targets_in_history'])}; targets whose item was "
        f"shown in a training request (the others keep a random item embedding): "
        f"{_pct(ev.get('targets_shown_in_training'))}.",
        f"* Targets and history events whose {AUTHOR_FIELD.get(name, 'author')} is unknown "
        "(no item-file row): "
        f"{_pct(ev['targets_with_unknown_author'])} / {_pct(ev['history_events_with_unknown_author'])}.",
        f"* Oracle: finish AUC of the share of the last n events with the target's "
        f"{AUTHOR_FIELD.get(name, 'author')}: {oracle_cells or 'absent'}.",
        f"* Training requests whose history a sampled training length cuts: "
        f"{_pct(ev['train_requests_cut_by_sampling'])}.",
        "",
    ]
    out += _reading(name, data, lengths)
    return out


def _alarm_section(runs: dict[str, Any]) -> list[str]:
    """The history-collapse alarm per run (trainer/metrics.py): what it measured and whether it fired."""
    out = [
        "",
        "### Collapse alarm",
        "",
        "Does each model's prediction depend on the history (trainer/metrics.py)? The swap probe's mean "
        "|logit change| when each request gets another user's history (alarm below "
        f"{PROBE_MIN_LOGIT_CHANGE:g}), the mean normalised attention entropy (0 = every target reads one "
        f"event, 1 = a plain mean; alarm below {ATTENTION_ENTROPY_MIN:g}), and the share of the gradient "
        f"norm on the history-only parameters (alarm below {HISTORY_GRAD_MIN_RATIO:g}); AUC identical at "
        "every length also alarms. \"recheck\": measured from the run's checkpoint after training "
        "(gradients of 20 training batches at the final weights), the run predating those checks.",
        "",
        "| model | swap probe | attention entropy | history gradient share | measured | alarm |",
        "|---|---|---|---|---|---|",
    ]
    for v, run in runs.items():
        a = run.get("alarm")
        if a is None:
            out.append(f"| {LABELS[v]} | absent | absent | absent | not recorded | not recorded |")
            continue
        cells = [
            "absent" if a["probe_logit_change"] is None else f"{a['probe_logit_change']:.3f}",
            "no attention" if a["attention_entropy"] is None else f"{a['attention_entropy']:.2f}",
            "absent" if a["history_gradient_ratio"] is None else f"{a['history_gradient_ratio']:.3g}",
            "in training" if a["source"] == "training" else "recheck",
            ", ".join(a["warnings"]) or "quiet",
        ]
        out.append(f"| {LABELS[v]} | " + " | ".join(cells) + " |")
    return out


def _reading(name: str, data: dict[str, Any], lengths: list[str]) -> list[str]:
    """The verdicts in words, derived from the numbers (so they change when the numbers do)."""
    runs, ev = data["runs"], data["evidence"]
    full, short = lengths[-1], lengths[0]
    out = ["### Reading", ""]
    for v, run in runs.items():
        eff = run["length_effect"].get("finish", {}).get("auc", {}).get(short, {})
        a16, ci16 = _metric(run, "finish", "auc", short)
        af, cif = _metric(run, "finish", "auc", full)
        out.append(
            f"* {LABELS[v]}: finish AUC {_v(a16, ci16)} at {_n(short, lengths)} events and {_v(af, cif)} "
            f"at full length; paired gain {_d(eff)}: **{GAIN.get(eff.get('verdict', ''), 'absent')}**."
        )
        alarm = run.get("alarm") or {"warnings": [w["test"] for w in run["warnings"]]}
        if alarm["warnings"]:
            out.append(f"  The collapse alarm fired ({', '.join(alarm['warnings'])}): see the table above.")
    for label, per_n in data["comparisons"].items():
        a, b = label.split(" vs ")
        at_full, at_short = per_n.get(full, {}).get("finish", {}), per_n.get(short, {}).get("finish", {})
        words = {
            "a wins": f"{LABELS[a]} ahead",
            "b wins": f"{LABELS[b]} ahead",
            "no difference": "no difference",
        }

        def said(d: dict[str, Any] | None, words: dict[str, str] = words) -> str:
            return f"{_d(d)} ({words.get((d or {}).get('verdict', ''), 'absent')})"

        out.append(
            f"* {LABELS[a]} - {LABELS[b]}, finish AUC: {said(at_short.get('auc'))} at {_n(short, lengths)}, "
            f"{said(at_full.get('auc'))} at full length; GAUC at full length {said(at_full.get('gauc'))}."
        )
    why = []
    frac64 = ev["eval_targets_longer_than"].get("64")
    if frac64 is not None and frac64 < 0.5:
        why.append(
            f"only {_pct(frac64)} of evaluation targets have more than 64 events of history, so "
            "lengths above 64 change few predictions"
        )
    oracle = ev["author_share_oracle_finish"]
    o16, ofull = oracle["auc"].get(short), oracle["auc"].get(full)
    ci16 = oracle["auc_ci"].get(short)
    if o16 is not None and ofull is not None and max(abs(o16 - 0.5), abs(ofull - 0.5)) < 0.05:
        why.append(
            f"the share of the history with the target's {AUTHOR_FIELD.get(name, 'author')} barely "
            f"predicts a click at any length (oracle AUC {o16:.3f} at {_n(short, lengths)}, "
            f"{ofull:.3f} at full), so the models rank mostly by the item and the user's overall "
            "rate, not by what the history says about the target"
        )
    elif o16 is not None and ofull is not None and ci16 and ci16[0] <= ofull <= ci16[1]:
        why.append(
            f"the {AUTHOR_FIELD.get(name, 'author')} signal a history carries about a target reads the "
            f"same from the last {_n(short, lengths)} events as from all of them (oracle "
            f"{o16:.3f} vs {ofull:.3f}): tastes are stable, so old events repeat what recent ones say"
        )
    if ev["targets_with_unknown_author"] > 0.5:
        why.append(
            f"{_pct(ev['targets_with_unknown_author'])} of targets have no known "
            f"{AUTHOR_FIELD.get(name, 'author')} and {_pct(ev['targets_in_history'])} were seen before, "
            "so target and history share almost nothing a model can match; what is left is the "
            "user's general click propensity and the item itself"
        )
    if ev["positive_rate"].get("finish", 1.0) < 0.1:
        why.append(
            f"positives are rare ({_pct(ev['positive_rate']['finish'])} of targets), which widens "
            "every interval"
        )
    if why:
        out += [
            "",
            "Why the gain from length is small or absent here, from the evidence above: "
            + "; ".join(why)
            + ".",
        ]
    return [*out, *_trails(data, lengths), ""]


def _trails(data: dict[str, Any], lengths: list[str]) -> list[str]:
    """Where STCA's finish GAUC at full length is below mean pooling's (paired interval), what the
    evidence and the pooled-history variant say about why; nothing otherwise."""
    full, runs, ev = lengths[-1], data["runs"], data["evidence"]
    gap = data["comparisons"].get("stca vs mean_pool", {}).get(full, {}).get("finish", {}).get("gauc")
    if not gap or gap.get("verdict") != "b wins":
        return []
    shown = ev.get("targets_shown_in_training")
    entropy = (runs["stca"].get("alarm") or {}).get("attention_entropy")
    text = (
        f"Why STCA trails mean pooling on GAUC here ({_d(gap)} at full length) while their AUCs are "
        "level: GAUC ranks the targets of one user against each other, so what counts is how each "
        "model's score varies between the targets of one request. "
    )
    if shown is not None:
        text += (
            f"Only {_pct(shown)} of the evaluation targets were shown in any training request; the rest "
            "keep their random initial item embedding, and their category is almost always unknown "
            f"({_pct(ev['targets_with_unknown_author'])}), so the target token of most targets is noise. "
        )
    text += (
        "Mean pooling reads one target-independent summary of the history per request, so that noise "
        "reaches its score only through the target token; STCA's attention weights are a function of "
        "the target token, so for an unseen item they are a random reading of the history that differs "
        "from one target of the request to the next"
    )
    text += f" (mean normalised attention entropy {entropy:.2f}; a plain mean reads 1)." if entropy else "."
    pooled = data["comparisons"].get("stca_pool vs mean_pool", {}).get(full, {}).get("finish", {}).get("gauc")
    if pooled:
        text += (
            " Giving STCA mean pooling's summary as well (STCA + pooled history, "
            f"STCAConfig.history_pool) does not close the gap ({_d(pooled)}): the summary is not what "
            "STCA lacks, which points at the noise its target-dependent reading adds."
        )
    flat = data["comparisons"].get("stca_pool_flat vs mean_pool", {}).get(full, {}).get("finish", {})
    if flat.get("gauc"):
        flat_entropy = (runs["stca_pool_flat"].get("alarm") or {}).get("attention_entropy")
        text += (
            " Starting the attention near uniform instead of as a lookup of the target's item "
            "(STCA + pooled history, no match prior: STCAConfig.match_prior=False"
            + (f", attention entropy {flat_entropy:.2f} after training" if flat_entropy else "")
            + f") moves STCA - mean pooling to {_d(flat['gauc'])} on GAUC and {_d(flat.get('auc'))} on AUC. "
            "The default keeps the lookup init all the same: it is what lets STCA find a target in its "
            "history at all (the sanity task of tests/test_learning.py, 300 steps, seeds 0 and 1: AUC "
            "0.99 with it, with or without the pooled history; 0.59 without it, 0.50 without it and "
            "with the pooled history), and on this log, where "
            f"{_pct(ev['targets_in_history'])} of the targets are in their history, the lookup has "
            "nothing to find and reads random item vectors instead."
        )
    return ["", text]


def render_page(result: dict[str, Any]) -> dict[str, str]:
    """{repository path: text} for docs/length-study.md and its charts."""
    st = result["settings"]
    lengths = st["eval_lengths"].split(",")
    files: dict[str, str] = {}
    datasets = result["datasets"]
    cfg = next(iter(datasets.values()))["model_config"] if datasets else MODEL
    out = [
        "# Length study: do longer histories help on real logs?",
        "",
        "Generated by `python -m benchmarks.length_study --page` from "
        "[`benchmarks/results/length_study.json`](../benchmarks/results/length_study.json) "
        "(`benchmarks/length_study.py`); do not edit by hand.",
        "",
        "STCA, DIN and mean pooling on real logs imported with `jobs/import_public_logs.py` "
        "([public-logs.md](public-logs.md)), split by time, evaluated at inference lengths "
        + ", ".join(_n(n, lengths) for n in lengths)
        + " (the most recent n events), and STCA trained on sampled lengths against STCA trained on full "
        f"histories. Same small model for all (d = {cfg['d']}, {cfg['layers']} layers, no user-id "
        "embedding), "
        f"{st['steps']:,} steps of {st['batch_size']} requests at lr {st['lr']:g}, fixed seeds; sampled "
        f"training lengths are Beta with mean {st['length_mean']:g} in [16, {st['length_max']:,}].",
        "",
        "Every AUC / GAUC carries a 95% interval from a bootstrap over users: a user's targets share one "
        "history, so they are not independent and resampling targets would understate the spread. A "
        "difference is a win or a loss only when its paired interval (both sides on the same user "
        "resamples) excludes 0.",
        "",
        "```bash",
        "python -m benchmarks.length_study          # about 1.5 hours on 2 shared cores",
        "python -m benchmarks.length_study --page   # this page and its charts",
        "```",
        "",
        "## Summary",
        "",
        "| log | model | finish AUC at "
        + _n(lengths[0], lengths)
        + " | finish AUC at full | full - "
        + _n(lengths[0], lengths)
        + " (paired) | longer history |",
        "|---|---|---|---|---|---|",
    ]
    for name, data in datasets.items():
        for v, run in data["runs"].items():
            eff = run["length_effect"].get("finish", {}).get("auc", {}).get(lengths[0], {})
            first = _v(*_metric(run, "finish", "auc", lengths[0]))
            out.append(
                f"| {TITLES.get(name, name)} | {LABELS[v]} | {first} | "
                f"{_v(*_metric(run, 'finish', 'auc', lengths[-1]))} | {_d(eff)} | "
                f"{VERDICT.get(eff.get('verdict', ''), 'absent')} |"
            )
    out.append("")
    for name, data in datasets.items():
        out += _dataset_section(name, data, lengths, files)
    hw = result.get("hardware", {})
    seconds = "; ".join(
        f"{TITLES.get(name, name)}: "
        + ", ".join(f"{LABELS[v]} {run['train_seconds']:,.0f}" for v, run in data["runs"].items())
        for name, data in datasets.items()
    )
    out += [
        f"Training seconds per run ({seconds}) on 2 cores shared with other work, so only roughly "
        "comparable; hardware: " + ", ".join(f"{k}: {hw[k]}" for k in sorted(hw)) + "."
    ]
    files["docs/length-study.md"] = "\n".join(out) + "\n"
    return files


def write_page(result: dict[str, Any], check: bool = False) -> int:
    """Writes the page and charts (check: only compares; 1 and the stale paths when they differ)."""
    files = render_page(result)
    stale = [p for p, text in files.items() if not (ROOT / p).is_file() or (ROOT / p).read_text() != text]
    if check:
        if stale:
            print(f"not current: {stale}; run python -m benchmarks.length_study --page", file=sys.stderr)
        return 1 if stale else 0
    for p, text in files.items():
        (ROOT / p).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / p).write_text(text)
    print("wrote " + ", ".join(sorted(files)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    if args.page or args.check:
        return write_page(json.loads(out.read_text()), check=args.check)
    from jobs.spark_session import get_spark

    spark = get_spark()
    settings = {
        k: getattr(args, k)
        for k in (
            "steps",
            "batch_size",
            "lr",
            "length_max",
            "length_mean",
            "eval_lengths",
            "l_max",
            "variants",
        )
    }
    result: dict[str, Any] = {"benchmark": "length_study", "settings": settings, "datasets": {}}
    t0 = time.perf_counter()
    for name in args.datasets.split(","):
        if not (args.assemble or args.reuse):
            build_dataset(spark, name, args.ml100k if name == ML100K_SOURCE.name else args.mind, args)
        if not args.assemble:
            train_variants(spark, name, args)
        if not args.train_only:
            result["datasets"][name] = assemble_dataset(spark, name, args)
    if args.train_only:
        return 0
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["hardware"] = hardware()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
