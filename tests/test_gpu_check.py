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
          "--d", "32", "--layers", "1", "--item-buckets", "4096", "--workers", "2", "--user-days", "12",
          "--mrlb-batch-size", "4", "--workdir", str(tmp_path / "work"), "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    a, b, c = result["a_loader_to_device"], result["b_fed_training"], result["c_longest_step"]
    assert a["requests"] == result["table"]["requests"] == 96 and a["batches"] == 6
    assert b["steps"] == 4 and b["loss_finite"] and 0.0 <= b["loader_wait_share"] < 1.0
    assert c["history_len"] <= 300 and c["loss_finite"]
    # (d) MRLB: CPU runs it in fp32 (bf16 autocast is the CUDA part) and must match RLB tightly.
    d = result["d_mrlb"]
    assert d["steps"] == 4 and d["loss_finite"] and d["autocast"] == "off (CPU)"
    assert d["mrlb_matches_rlb"] and d["window_tokens_per_s"] <= d["history_tokens_per_s"]
    assert result["environment"]["device"] == "cpu" and set(result["checks"]) == {
        "loss_finite",
        "loss_falls",
        "loader_keeps_up",
        "mrlb_matches_rlb",
    }
