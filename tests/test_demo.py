"""demo/app.py's guards: a rerun replaces only a warehouse the demo created, and bad flags fail
before minutes of Spark."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.app import DEMO_MARKER, SCALES, fresh_warehouse, main


def test_fresh_warehouse_creates_then_replaces_only_its_own_folder(tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    fresh_warehouse(str(wh))
    assert (wh / DEMO_MARKER).exists()
    (wh / "user_history").mkdir()  # a previous run's state, as of its last day
    fresh_warehouse(str(wh))
    assert sorted(p.name for p in wh.iterdir()) == [DEMO_MARKER]

    theirs = tmp_path / "theirs"
    (theirs / "request_samples").mkdir(parents=True)
    with pytest.raises(SystemExit, match="not created by the demo"):
        fresh_warehouse(str(theirs))
    assert (theirs / "request_samples").exists()  # refused, not deleted
    fresh_warehouse(str(tmp_path / "empty"))  # a new or empty folder is fine
    assert (tmp_path / "empty" / DEMO_MARKER).exists()


def test_unknown_model_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--warehouse", str(tmp_path / "wh"), "--models", "stca,transformer"])
    assert "unknown ['transformer']" in capsys.readouterr().err
    assert not (tmp_path / "wh").exists()


def test_cpu_scales_plant_the_signal_the_quality_test_checks() -> None:
    """The default chart is only worth looking at on data a CPU budget can learn (see Scale)."""
    for name in ("tiny", "default"):
        s = SCALES[name]
        assert (s.num_items, s.interest_logit, s.affinity_logit) == (400, 0.0, 3.0), name
        assert "stca" in s.models and "mean_pool" in s.models
