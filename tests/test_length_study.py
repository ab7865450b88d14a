"""The length study (benchmarks/length_study.py): its docs page is what its results JSON gives, and
a smoke run on the MIND cut kept in the repository goes through import, build, training,
evaluation, paired comparisons and the page renderer with intervals everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from benchmarks import length_study
from benchmarks.length_study import RESULT, render_page, svg_chart, write_page

MIND_CUT = Path(__file__).resolve().parent / "data" / "mind-small-cut"


def test_docs_page_and_charts_are_current() -> None:
    """docs/length-study.md and its SVGs are generated: a hand edit or a rerun without --page fails."""
    assert write_page(json.loads(RESULT.read_text()), check=True) == 0, (
        "docs/length-study.md is not what benchmarks/results/length_study.json gives: "
        "run python -m benchmarks.length_study --page"
    )


def test_svg_chart_draws_every_point_and_interval() -> None:
    series = [("a", "#000", [0.6, 0.62, None], [[0.58, 0.63], None, None])]
    svg = svg_chart("t", ["16", "64", "10000"], series)
    assert svg.count("<circle") == 2 and svg.count('stroke-width="1"') == 1
    assert ">full</text>" in svg and svg.startswith("<svg") and svg.endswith("</svg>\n")


@pytest.mark.spark
def test_smoke_run_on_the_mind_cut(spark: SparkSession, tmp_path: Path) -> None:
    out = tmp_path / "study.json"
    argv = ["--datasets", "mind", "--mind", str(MIND_CUT), "--quick", "--variants", "stca,mean_pool",
            "--workdir", str(tmp_path / "work"), "--out", str(out)]  # fmt: skip
    assert length_study.main(argv) == 0
    result = json.loads(out.read_text())
    data = result["datasets"]["mind"]
    assert data["tasks"] == ["finish"] and data["import"]["requests"] == 44
    assert data["split"]["eval"]["targets"] == data["evidence"]["eval_targets"]
    for run in data["runs"].values():
        assert set(run) >= {"finish", "length_effect", "warnings"} and "like" not in run
        for n, value in run["finish"]["auc"].items():
            lo, hi = run["finish"]["auc_ci"][n]
            assert lo <= value <= hi
        assert set(run["length_effect"]["finish"]["auc"]) == {"16"}  # full - each shorter length
        # the collapse alarm from training itself: probe, entropy (attention models), gradient share
        alarm = run["alarm"]
        assert alarm["source"] == "training" and alarm["history_gradient_ratio"] is not None
        assert (alarm["attention_entropy"] is None) == (run is data["runs"]["mean_pool"])
    comparison = data["comparisons"]["stca vs mean_pool"]
    assert set(comparison) == {"16", "10000"} and "diff_ci" in comparison["10000"]["finish"]["auc"]
    files = render_page(result)
    assert set(files) == {"docs/length-study.md", "docs/length-study/mind-finish-auc.svg",
                          "docs/length-study/mind-finish-gauc.svg"}  # fmt: skip
    assert "| MIND sample | STCA |" in files["docs/length-study.md"]
    assert "### Collapse alarm" in files["docs/length-study.md"]
