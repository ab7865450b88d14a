"""The demo report: every number on the page comes from summary.json and every image exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

from demo.report import main, render

TASKS = ("finish", "skip")


def summary() -> dict[str, object]:
    def run(base: float) -> dict[str, object]:
        return {
            "train": {"steps": 12, "seconds": 3.5, "requests_per_s": 101.5, "history_tokens_per_s": 45678},
            "parameters": 12345,
            "table_version": 3,
            "eval": {
                str(n): {
                    t: {"auc": base + n / 1e5, "gauc": base - 0.01, "logloss": 0.61, "n": 40.0} for t in TASKS
                }
                for n in (32, 512, 2000)
            },
        }

    return {
        "run": "20260101T000000Z",
        "seconds": 123.4,
        "scale_name": "tiny",
        "counts": {"requests": 4321, "targets": 43210, "quarantined": 17},
        "stages": {
            "generate_logs": {"rows": {"impressions": 50000}, "seconds": 10.0},
            "build_request_samples 2026-01-01": {
                "requests": 4321,
                "targets": 43210,
                "version": 7,
                "seconds": 4.2,
            },
        },
        "quarantine_by_reason": {"impressions": {"duplicate": 12, "null_user_id": 5}},
        "hist_len": {
            "edges": [1, 10, 100, 1000, 10000],
            "counts_per_bin": [5, 50, 500, 20],
            "percentiles": {"p50": 88, "p90": 900, "p99": 5000, "max": 9999},
        },
        "quality": {
            "2026-01-01": {
                "success": True,
                "expectations": 31,
                "failed": 0,
                "data_docs": "../../warehouse/_quality/docs/index.html",
            }
        },
        "storage": {
            "date": "2026-01-01",
            "request_level_history_bytes": 1_000_000,
            "impression_level_history_bytes": 9_000_000,
            "saving": 0.8889,
            "mean_targets": 9.87,
        },
        "training": {"stca": run(0.70), "mean_pool": run(0.60)},
        "loader": {"train": {"requests_per_s": 850.5, "tokens_per_s": 1234567}},
        "config": {"scale": {"num_users": 60}},
    }


def test_report_shows_the_json_numbers_and_every_image_exists(tmp_path: Path) -> None:
    s = summary()
    index = render(s, tmp_path)
    page = index.read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    assert set(images) == {"hist_len.png", "storage.png", "auc_vs_length.png", "gauc_vs_length.png"}
    for name in images:
        assert (tmp_path / name).stat().st_size > 5_000, f"{name} is missing or empty"
    for text in ("4,321", "43,210", "17", "duplicate", "null_user_id", "89%", "passed", "Data Docs", "101.5",
                 "45,678", "850.5", "1,234,567", "0.7200", "0.6200", "9.9", "20260101T000000Z"):
        assert text in page, f"{text!r} is not on the page"


def test_report_command_rerenders_a_run(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(summary()))
    assert main([str(tmp_path / "summary.json")]) == tmp_path / "index.html"
    assert "stca" in (tmp_path / "index.html").read_text()


def test_report_of_a_real_tiny_demo_run_matches_its_json(tmp_path: Path) -> None:
    """summary.json kept from `python -m demo --scale tiny` (tests/data): the page carries its numbers."""
    s = json.loads((Path(__file__).parent / "data" / "demo_summary_tiny.json").read_text())
    page = render(s, tmp_path).read_text()
    for name in re.findall(r"<img src='([^']+)'", page):
        assert (tmp_path / name).stat().st_size > 5_000, name
    assert f"{s['counts']['requests']:,}" in page and f"{s['counts']['targets']:,}" in page
    for model, run in s["training"].items():
        for length, tasks in run["eval"].items():
            for task, m in tasks.items():
                assert f"{m['auc']:,.4f}" in page, (model, length, task)
    for source, reasons in s["quarantine_by_reason"].items():
        for reason, n in reasons.items():
            assert f"<td>{source}</td><td>{reason}</td><td>{n:,}</td>" in page


def test_report_shows_intervals_absent_metrics_warnings_and_comparisons(tmp_path: Path) -> None:
    s = summary()
    stca = s["training"]["stca"]  # type: ignore[index]
    stca["eval"]["512"]["finish"]["auc_ci"] = [0.6543, 0.7654]
    stca["eval"]["512"]["skip"] = {"absent": "no positives", "logloss": 0.1, "n": 40.0}
    stca["warnings"] = [
        {"kind": "history_collapse", "test": "history_probe", "message": "ignores the history"}
    ]
    s["comparisons"] = {"stca vs mean_pool": {"512": {"finish": {"auc": {
        "metric": "auc", "diff": 0.1, "diff_ci": [0.05, 0.15], "verdict": "a wins"}}}}}
    page = render(s, tmp_path).read_text()
    for text in ("0.7051 [0.6543, 0.7654]", "0.7003 [n/a]", "absent (no positives)", "ignores the history",
                 "+0.1000 [+0.0500, +0.1500]", "a wins"):
        assert text in page, f"{text!r} is not on the page"
