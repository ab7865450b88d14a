"""Renders a demo run's summary.json as reports/<run>/index.html with matplotlib PNGs beside it.

The folder is self-contained (relative links only): copy it anywhere and open index.html in a
browser, no server needed. Every number on the page is read from summary.json.

    python -m demo.report reports/<run>/summary.json      # re-render an existing run
"""

from __future__ import annotations

import argparse
import html
import json
from collections.abc import Iterable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files
import matplotlib.pyplot as plt

MODEL_STYLES = {"stca": ("#1f77b4", "o"), "mean_pool": ("#7f7f7f", "s"), "din": ("#ff7f0e", "^"),
                "self_attention": ("#2ca02c", "D"), "vista": ("#9467bd", "v")}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
h2{border-bottom:2px solid #eee;padding-bottom:.3rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f6f6f6} td:first-child,th:first-child{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#f6f8fa;border-radius:8px;padding:.7rem 1rem;min-width:150px}
.card b{display:block;font-size:1.4rem}.ok{color:#1a7f37}.bad{color:#cf222e}
img{max-width:100%;border:1px solid #eee}
code,pre{background:#f6f8fa;border-radius:4px;padding:.1rem .3rem}
pre{padding:.7rem;overflow-x:auto;font-size:.8rem}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 1 else f"{v:,.1f}"
    return html.escape(str(v))


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _card(label: str, value: Any, cls: str = "") -> str:
    return f'<div class="card"><b class="{cls}">{_fmt(value)}</b>{html.escape(label)}</div>'


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_hist_len(hist: Mapping[str, Any], path: Path) -> Path:
    edges, counts = hist["edges"], hist["counts_per_bin"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(edges[:-1], counts, width=[b - a for a, b in pairwise(edges)], align="edge",
           color="#1f77b4", edgecolor="white")
    ax.set_xscale("log")
    ax.set_xlabel("history length (events, log scale)")
    ax.set_ylabel("requests")
    ax.set_title("History length per request")
    return _save(fig, path)


def plot_metric_vs_length(training: Mapping[str, Any], metric: str, path: Path) -> Path:
    """One panel per task: `metric` vs inference length, one line per model (baselines included),
    its 95% user-bootstrap interval as a band where the run has one; absent values are gaps."""
    first = next(iter(training.values()))["eval"]
    tasks = list(first[next(iter(first))])  # task order as trained
    cols = min(3, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for i, task in enumerate(tasks):
        ax = axes[i // cols][i % cols]
        for name, run in training.items():
            lengths = sorted(int(n) for n in run["eval"])
            cells = [run["eval"][str(n)][task] for n in lengths]
            values = [c.get(metric, float("nan")) for c in cells]
            color, marker = MODEL_STYLES.get(name, ("#000000", "x"))
            ax.plot(lengths, values, marker=marker, color=color, label=name)
            if all(c.get(f"{metric}_ci") for c in cells):
                lo, hi = zip(*(c[f"{metric}_ci"] for c in cells), strict=True)
                ax.fill_between(lengths, lo, hi, color=color, alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("inference length")
        ax.set_ylabel(metric.upper())
        ax.grid(alpha=0.3)
    for j in range(len(tasks), rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{metric.upper()} per task vs inference length (held-out day)")
    return _save(fig, path)


def plot_storage(storage: Mapping[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 2.6))
    labels = ["request-level (RLB)", "impression-level (flat)"]
    mib = 2**20
    values = [storage["request_level_history_bytes"] / mib, storage["impression_level_history_bytes"] / mib]
    ax.barh(labels, values, color=["#1f77b4", "#7f7f7f"])
    ax.set_xlabel("history bytes on disk (MiB)")
    ax.set_title(f"Storage of one day's histories ({storage['date']})")
    return _save(fig, path)


# Summary keys of a job stage shown in the stages table's "details" column.
STAGE_DETAILS = (
    "rows", "requests", "targets", "impressions", "users_updated", "actions_read", "max_hist_len",
)  # fmt: skip


def _header(summary: Mapping[str, Any]) -> list[str]:
    run = html.escape(summary["run"])
    scale = html.escape(str(summary.get("scale_name", "")))
    return [
        f"<!doctype html><html><head><meta charset='utf-8'><title>rlb demo {run}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>Request-level training data: demo run</h1><p class='sub'>run {run} · "
        f"{_fmt(summary['seconds'])} s end to end · scale <code>{scale}</code></p>",
    ]


def _cards(summary: Mapping[str, Any]) -> list[str]:
    counts = summary.get("counts", {})
    gate = summary.get("quality", {})
    gate_ok = all(v.get("success") for v in gate.values()) if gate else None
    cards = [_card("requests", counts.get("requests", 0)), _card("targets", counts.get("targets", 0)),
             _card("quarantined rows", counts.get("quarantined", 0))]  # fmt: skip
    if gate_ok is not None:
        cards.append(_card("quality gate", "passed" if gate_ok else "FAILED", "ok" if gate_ok else "bad"))
    if "storage" in summary:
        cards.append(_card("history storage saved by RLB", f"{summary['storage']['saving']:.0%}"))
    return [f"<div class='cards'>{''.join(cards)}</div>"]


def _stages(summary: Mapping[str, Any]) -> list[str]:
    rows = [
        (name, r.get("seconds", ""), r.get("version", ""),
         ", ".join(f"{k}={v}" for k, v in r.items() if k in STAGE_DETAILS))
        for name, r in summary["stages"].items() if isinstance(r, dict) and name not in ("storage", "loader")
    ]  # fmt: skip
    reasons = summary.get("quarantine_by_reason", {})
    quarantine = [(s, r, n) for s, by in reasons.items() for r, n in by.items()]
    return [
        "<h2>Stages</h2>",
        _table(["stage", "seconds", "Delta version", "details"], rows),
        "<h2>Quarantine</h2>",
        _table(["source table", "reason", "rows"], quarantine)
        if reasons
        else "<p>No rows were quarantined.</p>",
    ]


def _hist_len(h: Mapping[str, Any], out_dir: Path) -> list[str]:
    plot_hist_len(h, out_dir / "hist_len.png")
    return [
        "<h2>History lengths</h2><img src='hist_len.png' alt='history length histogram'>",
        _table(["percentile", *h["percentiles"]], [("events", *h["percentiles"].values())]),
    ]


def _gate(gate: Mapping[str, Any]) -> list[str]:
    rows = [
        (d, "passed" if v.get("success") else "FAILED", v.get("expectations", ""), v.get("failed", ""),
         v.get("data_docs", ""))
        for d, v in gate.items()
    ]  # fmt: skip
    parts = [
        "<h2>Quality gate (Great Expectations)</h2>",
        _table(["date", "result", "expectations", "failed", "Data Docs"], rows),
    ]
    docs = next((v.get("data_docs") for v in gate.values() if v.get("data_docs")), None)
    if docs:
        link = f"<a href='{html.escape(str(docs))}'>Data Docs</a>"
        parts.append(f"<p>Open the {link} for every expectation's result.</p>")
    return parts


def _storage(s: Mapping[str, Any], out_dir: Path) -> list[str]:
    plot_storage(s, out_dir / "storage.png")
    rows = [("request-level", s["request_level_history_bytes"]),
            ("impression-level", s["impression_level_history_bytes"])]  # fmt: skip
    return [
        "<h2>Storage: request-level vs impression-level</h2><img src='storage.png' alt='storage comparison'>",
        _table(["layout", "history bytes"], rows),
        f"<p>Mean targets per request: {_fmt(s['mean_targets'])}. Saving: {s['saving']:.1%}.</p>",
    ]


def _training(training: Mapping[str, Any], out_dir: Path) -> list[str]:
    header = ["model", "steps", "train s", "requests/s", "history tokens/s", "parameters", "table version"]
    rows = [
        (m, r["train"]["steps"], r["train"]["seconds"], r["train"]["requests_per_s"],
         r["train"]["history_tokens_per_s"], r.get("parameters", ""), r.get("table_version", ""))
        for m, r in training.items()
    ]  # fmt: skip
    parts = ["<h2>Training and evaluation</h2>", _table(header, rows)]
    for metric in ("auc", "gauc"):
        name = f"{metric}_vs_length.png"
        plot_metric_vs_length(training, metric, out_dir / name)
        parts.append(f"<img src='{name}' alt='{metric} vs inference length'>")
    first = next(iter(training.values()))
    lengths = sorted(first["eval"], key=int)
    tasks = list(first["eval"][lengths[0]])
    for metric in ("auc", "gauc", "logloss"):
        parts.append(f"<h3>{metric.upper()} by model, task and inference length"
                     f"{' [95% user-bootstrap interval]' if metric != 'logloss' else ''}</h3>")
        parts.append(_table(["model", "task", *lengths], [
            (m, t, *(_with_interval(r["eval"][n][t], metric) for n in lengths))
            for m, r in training.items() for t in tasks
        ]))  # fmt: skip
    warnings = [(m, w["test"], w["message"]) for m, r in training.items() for w in r.get("warnings", [])]
    if warnings:
        parts.append("<h3 class='bad'>Warnings: history collapse</h3>")
        parts.append(_table(["model", "check", "message"], warnings))
    return parts


def _with_interval(cell: Mapping[str, Any], metric: str) -> str:
    """'0.6812 [0.6701, 0.6920]'; 'n/a' for an interval the run lacks; the reason for an absent
    metric (a task without positives)."""
    if metric not in cell:
        return f"absent ({cell.get('absent', 'not computed')})"
    if metric == "logloss":
        return f"{cell[metric]:.4f}"
    ci = cell.get(f"{metric}_ci")
    return f"{cell[metric]:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else f"{cell[metric]:.4f} [n/a]"


def _comparisons(comparisons: Mapping[str, Any]) -> list[str]:
    """Paired bootstrap differences (trainer.metrics.compare_runs): a win only when the interval of
    the difference excludes 0."""
    rows = [
        (pair, n, task, metric, f"{d['diff']:+.4f} [{d['diff_ci'][0]:+.4f}, {d['diff_ci'][1]:+.4f}]",
         d["verdict"])
        for pair, by_length in comparisons.items() for n, by_task in by_length.items()
        for task, by_metric in by_task.items() for metric, d in by_metric.items() if "diff" in d
    ]  # fmt: skip
    header = ["a vs b", "length", "task", "metric", "a - b", "verdict"]
    return ["<h3>Model comparisons (paired user bootstrap: a win only when the 95% interval of the "
            "difference excludes 0)</h3>", _table(header, rows)]


def _loader(lo: Mapping[str, Any]) -> list[str]:
    rows = [(k, v["requests_per_s"], v["tokens_per_s"]) for k, v in lo.items()]
    return ["<h2>Loader throughput</h2>", _table(["mode", "requests/s", "history tokens/s"], rows)]


def render(summary: Mapping[str, Any], out_dir: Path) -> Path:
    """Writes index.html and its PNGs into out_dir; returns the index path. Sections whose data
    the summary lacks (a partial run) are left out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [*_header(summary), *_cards(summary), *_stages(summary)]
    if "hist_len" in summary:
        parts += _hist_len(summary["hist_len"], out_dir)
    if summary.get("quality"):
        parts += _gate(summary["quality"])
    if "storage" in summary:
        parts += _storage(summary["storage"], out_dir)
    if summary.get("training"):
        parts += _training(summary["training"], out_dir)
    if summary.get("comparisons"):
        parts += _comparisons(summary["comparisons"])
    if "loader" in summary:
        parts += _loader(summary["loader"])
    config = html.escape(json.dumps(summary.get("config", {}), indent=2))
    parts.append("<h2>Configuration</h2><pre>" + config + "</pre>")
    parts.append(
        "<p class='sub'>Underlying numbers: <a href='summary.json'>summary.json</a></p></body></html>"
    )
    index = out_dir / "index.html"
    index.write_text("\n".join(parts))
    return index


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(
        prog="demo.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("summary", type=Path, help="a run's summary.json")
    args = p.parse_args(argv)
    index = render(json.loads(args.summary.read_text()), args.summary.parent)
    print(index)
    return index


if __name__ == "__main__":
    main()
