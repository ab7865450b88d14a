"""benchmarks/gpu_check.py is run once on a lent GPU machine, with no time to debug it there: its
whole path runs here on CPU at toy size, so it cannot rot between those leases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.gpu_check import main

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_gpu_check_runs_end_to_end_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    main(["--device", "cpu", "--requests", "48", "--l-max", "300", "--batch-size", "16", "--steps", "4",
          "--d", "32", "--layers", "1", "--item-buckets", "4096", "--workers", "2",
          "--workdir", str(tmp_path / "work"), "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    a, b, c = result["a_loader_to_device"], result["b_fed_training"], result["c_longest_step"]
    assert a["requests"] == result["table"]["requests"] == 96 and a["batches"] == 6
    assert b["steps"] == 4 and b["loss_finite"] and 0.0 <= b["loader_wait_share"] < 1.0
    assert c["history_len"] <= 300 and c["loss_finite"]
    assert result["environment"]["device"] == "cpu" and set(result["checks"]) == {
        "loss_finite",
        "loss_falls",
        "loader_keeps_up",
    }
